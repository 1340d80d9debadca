"""The catalog reads cfn-lint's tables straight from its package folder, without importing cfn-lint
(0.4 s of CPU on every `make templates`): each table must equal what cfn-lint's own API gives."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from cfnlint.helpers import AVAILABILITY_ZONES
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from conftest import ROOT

from infra_templates import catalog
from infra_templates.config import FARGATE_SIZES

# Every resource type a shipped layer uses and one the deployer reads permissions for, in the
# regions the shipped environments use; one region cfn-lint has no table of its own for.
TYPES = ("AWS::ECS::Service", "AWS::RDS::DBCluster", "AWS::S3::Bucket", "AWS::IAM::Role", "AWS::WAFv2::WebACL")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")


def test_zones_and_regions_are_cfn_lints() -> None:
    assert catalog.AVAILABILITY_ZONES == AVAILABILITY_ZONES
    assert tuple(sorted(AVAILABILITY_ZONES)) == catalog.REGIONS
    assert catalog.zones_of("eu-west-1") == tuple(AVAILABILITY_ZONES["eu-west-1"])
    assert catalog.zones_of("nowhere-1") == ()


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("resource_type", TYPES)
def test_resource_schemas_are_cfn_lints(region: str, resource_type: str) -> None:
    assert catalog.resource_schema(region, resource_type) == (
        PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    )


def test_an_unknown_type_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        catalog.resource_schema("eu-west-1", "Custom::Nothing")


def test_generation_does_not_import_cfn_lint() -> None:
    """Importing what `python generate.py` imports, and reading every table, loads no cfn-lint module."""
    code = (
        f"import sys; sys.path[:0] = [{str(ROOT / 'src')!r}, {str(ROOT)!r}]; import generate; "
        "from infra_templates import catalog; catalog.aurora_versions('aurora-postgresql'); "
        "catalog.handler_permissions('eu-west-1', 'AWS::ECS::Service'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cfnlint', 'sympy', 'networkx')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- instance classes and Fargate sizes: what the settings accept is what cfn-lint accepts ------


def _lint(resources: dict[str, dict[str, Any]], region: str) -> list[Any]:
    from cfnlint.api import ManualArgs, lint  # noqa: PLC0415  (imports the whole linter: only here)

    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
    return list(lint(json.dumps(template), config=ManualArgs(regions=[region])))


ENGINES = ("aurora-postgresql", "aurora-mysql")
FARGATE_OUTSIDE = [(256, 4096), (1024, 1024), (4096, 31744), (16384, 16384)]
TEMPLATE = "(the template)"  # where linted keeps a finding outside any resource


def _instance_cases(engine: str) -> tuple[list[str], list[str], str]:
    """Classes offered for ``engine`` (three of them) and classes cfn-lint knows in the region but
    not for it (five), and the version: what the test below expects cfn-lint to accept and refuse."""
    region, version = "eu-west-1", catalog.aurora_versions(engine)[-1]
    offered = catalog.database_instance_classes(engine, region, version)
    assert "db.r7g.large" in offered and len(offered) > 20
    # every class cfn-lint knows for some engine in the region, but not offered for this one
    refused = sorted(set().union(*catalog._classes_by_region(region).values()) - set(offered))[:5]
    assert refused
    return [offered[0], offered[len(offered) // 2], offered[-1]], refused, version


def _task(cpu: int, memory: int) -> dict[str, Any]:
    return {
        "Type": "AWS::ECS::TaskDefinition",
        "Properties": {
            "Cpu": str(cpu),
            "Memory": str(memory),
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "ContainerDefinitions": [{"Name": "app", "Image": "nginx"}],
        },
    }


@pytest.fixture(scope="module")
def linted() -> dict[str, set[str]]:
    """cfn-lint's findings on one eu-west-1 template holding the instances of both engines (logical
    IDs ``<engine>I<n>``) and the Fargate task definitions (``T<n>``): the resources are independent
    of each other, so one run finds on each what a run of its own finds (each run of cfn-lint's API
    loads every rule again: 0.5 s of CPU). Logical ID -> the rule IDs found on it."""
    resources: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        accepted, refused, version = _instance_cases(engine)
        for i, instance_class in enumerate([*accepted, *refused]):
            properties = {"Engine": engine, "EngineVersion": version, "DBInstanceClass": instance_class}
            resources[f"{engine.replace('-', '')}I{i}"] = {
                "Type": "AWS::RDS::DBInstance",
                "Properties": {**properties, "DBClusterIdentifier": "c"},
            }
    pairs = [(cpu, memory) for cpu, sizes in FARGATE_SIZES.items() for memory in sizes]
    for i, pair in enumerate([*pairs, *FARGATE_OUTSIDE]):
        resources[f"T{i}"] = _task(*pair)
    found: dict[str, set[str]] = {logical: set() for logical in [*resources, TEMPLATE]}
    for match in _lint(resources, "eu-west-1"):
        in_resource = len(match.path) > 1 and match.path[0] == "Resources"
        found[match.path[1] if in_resource else TEMPLATE].add(match.rule.id)
    return found


# The tests reading `linted` run on one worker (make unit: --dist loadgroup), which lints once.
@pytest.mark.xdist_group("catalog-lint")
@pytest.mark.parametrize("engine", ENGINES)
def test_instance_classes_are_those_cfn_lint_accepts(engine: str, linted: dict[str, set[str]]) -> None:
    accepted, refused, _ = _instance_cases(engine)
    prefix = f"{engine.replace('-', '')}I"
    mine = {logical: rules for logical, rules in linted.items() if logical.startswith(prefix)}
    assert len(mine) == len(accepted) + len(refused)
    flagged = {logical for logical, rules in mine.items() if rules & {"E3025", "E3062"}}
    assert flagged == {f"{prefix}{i}" for i in range(len(accepted), len(accepted) + len(refused))}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_version_pattern_is_tried_only_on_versions_it_can_match(engine: str) -> None:
    """database_instance_classes skips a pattern whose literal start the version lacks: every version
    a pattern matches (each version cfn-lint's table names, its patch versions, odd texts) starts
    with it, and the classes are those the first matching pattern gives, tried without the shortcut."""
    rows = catalog._classes_by_version(engine)
    assert rows and all(literal for _, literal, _ in rows)  # cfn-lint's shape: each pattern has one
    versions = [*catalog.aurora_versions(engine), "16.9", "16.90", "8.0.mysql_aurora.3.08.0", "3.08.0", "16.9\n", ""]
    versions += [f"{v}.1" for v in versions] + [f"{v}-rds" for v in versions]
    for pattern, literal, _ in rows:
        assert catalog._literal_start(pattern) == literal
        for version in versions:
            if re.match(pattern, version):
                assert version.startswith(literal), (pattern, version)
    offered = catalog._classes_by_region("eu-west-1")[engine]
    for version in versions:
        first = next((classes for pattern, _, classes in rows if re.match(pattern, version)), None)
        expected = tuple(sorted(offered if first is None else offered & first))
        assert catalog.database_instance_classes(engine, "eu-west-1", version) == expected
    assert catalog._literal_start(r"^(16\.9\..+|16\.9)$") == "16.9"
    assert catalog._literal_start(r"^(16\.9\..+|16\.10)$") == ""  # another shape: every version tried
    assert catalog._literal_start(r"^16\.9$") == ""


def test_an_unknown_region_or_engine_refuses_nothing() -> None:
    assert catalog.database_instance_classes("aurora-postgresql", "nowhere-1", "16.4") == ()
    assert catalog.database_instance_classes("no-engine", "eu-west-1", "1") == ()


@pytest.mark.xdist_group("catalog-lint")
def test_fargate_sizes_are_the_pairs_cfn_lint_accepts(linted: dict[str, set[str]]) -> None:
    pairs = [(cpu, memory) for cpu, sizes in FARGATE_SIZES.items() for memory in sizes]
    cases = [*pairs, *FARGATE_OUTSIDE]
    flagged = {f"T{i}" for i in range(len(cases)) if any(rule.startswith("E") for rule in linted[f"T{i}"])}
    assert flagged == {f"T{i}" for i in range(len(pairs), len(cases))}
    assert not any(rule.startswith("E") for rule in linted[TEMPLATE])


@pytest.mark.parametrize(("value", "choices", "expected"), [
    ("db.t4g.medum", ("db.t4g.medium", "db.t4g.large", "db.r7g.large"), ["db.t4g.medium"]),
    ("db.r7g.lage", ("db.r6g.xlarge", "db.r7g.large", "db.r7g.xlarge"), ["db.r7g.large"]),
])  # fmt: skip
def test_nearest_names_the_closest_first(value: str, choices: tuple[str, ...], expected: list[str]) -> None:
    assert catalog.nearest(value, choices)[: len(expected)] == expected


def test_nearest_numbers() -> None:
    assert catalog.nearest_numbers(1000, FARGATE_SIZES) == [512, 1024]
    assert catalog.nearest_numbers(3000, FARGATE_SIZES[512]) == [2048, 3072]
    assert catalog.nearest_numbers(4096, FARGATE_SIZES[256]) == [2048]  # above the range: its top only
    assert catalog.nearest_numbers(100, FARGATE_SIZES) == [256]
