"""Golden files: every environment x layer, compared as data. Re-record with `make golden` and
review the diff like code: a changed logical ID of a stateful resource replaces that resource."""

from __future__ import annotations

import json

import pytest
from conftest import ALL_CASES, BUILT, ENVIRONMENTS, ROOT, stack_of

from infra_templates.handover import FILES as HANDOVER_FILES
from infra_templates.pipeline import environment_files, manifest, project_files, project_manifest

GOLDEN = ROOT / "tests" / "golden"
HINT = "output changed: if that is intended, run `make golden` and review the diff"

# Logical IDs of stateful resources are an API: renaming one makes CloudFormation replace it.
PINNED_STATEFUL_IDS = {
    "keys": {"LogsKey", "DataKey"},
    "network": {"FlowLogGroup"},
    "security": set(),
    "data": {"Cluster", "PostgresqlLogGroup"},
    "platform": {"AccessLogBucket", "WafLogGroup"},
    "edge-waf": {"LogsKey", "WafLogGroup"},
    "edge": {"AssetsBucket"},
    **{f"svc-{service}": {"LogGroup"} for service in BUILT.project.services},
}
PINNED_PROJECT_IDS = {"registry": {"RegistryKey", *(f"{s.capitalize()}Repository" for s in BUILT.project.services)}}


def golden(env: str, name: str) -> dict:
    path = GOLDEN / env / name
    assert path.is_file(), f"{path} is missing: run `make golden`"
    return json.loads(path.read_text())


@pytest.mark.parametrize(("env", "layer"), ALL_CASES)
def test_template_matches_golden(env, layer) -> None:
    assert stack_of(env, layer).body == golden(env, f"{layer}.json"), HINT


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_manifest_matches_golden(env) -> None:
    expected = manifest(BUILT.environments[env], list(BUILT.stacks[env].values()), list(BUILT.project_stacks.values()))
    assert expected == golden(env, "manifest.json"), HINT


def test_project_manifest_matches_golden() -> None:
    assert project_manifest(BUILT.project, list(BUILT.project_stacks.values())) == golden("project", "manifest.json")


@pytest.mark.parametrize(("env", "name"), [(e, n) for e in [*ENVIRONMENTS, "project"] for n in HANDOVER_FILES])
def test_deploy_guide_and_script_match_golden(env, name) -> None:
    path = GOLDEN / env / name
    assert path.is_file(), f"{path} is missing: run `make golden`"
    project_stacks = list(BUILT.project_stacks.values())
    if env == "project":
        files = project_files(BUILT.project, project_stacks)
    else:
        files = environment_files(BUILT.environments[env], list(BUILT.stacks[env].values()), project_stacks)
    assert files[name] == path.read_text(), HINT


def test_golden_has_no_environment_that_is_gone() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == sorted([*ENVIRONMENTS, "project"])


def stateful_ids(body: dict) -> set[str]:
    # An Aurora instance holds no data (the cluster volume does): replacing one loses nothing.
    return {
        name for name, r in body["Resources"].items() if "DeletionPolicy" in r and r["Type"] != "AWS::RDS::DBInstance"
    }


@pytest.mark.parametrize(("env", "layer"), ALL_CASES)
def test_stateful_logical_ids_are_pinned(env, layer) -> None:
    pinned = PINNED_PROJECT_IDS if env == "project" else PINNED_STATEFUL_IDS
    assert stateful_ids(stack_of(env, layer).body) == pinned[layer], f"{env}/{layer}: a stateful logical ID changed"


@pytest.mark.parametrize("env", [*ENVIRONMENTS, "project"])
def test_golden_files_are_what_make_golden_writes(env) -> None:
    # The golden folder is a full output folder: YAML too, so reviewers read diffs in YAML.
    layers = BUILT.project_stacks if env == "project" else BUILT.stacks[env]
    names = sorted(p.name for p in (GOLDEN / env).iterdir())
    expected = [f"{la}.{ext}" for la in layers for ext in ("json", "yaml")] + ["manifest.json", *HANDOVER_FILES]
    expected.append("architecture.dot")  # the diagram's source (tests/test_diagram.py); SVG and PNG are not kept
    assert names == sorted(expected)
