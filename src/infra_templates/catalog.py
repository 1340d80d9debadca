"""What AWS offers (regions, zones, Aurora versions), read from the data cfn-lint ships.

We read cfn-lint's tables rather than keep our own: they are maintained with every release, and
they are the same tables the lint gate checks templates against, so the settings and the lint
never disagree (a version the settings accept is one cfn-lint accepts, and not deprecated).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from cfnlint.helpers import AVAILABILITY_ZONES
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

REGIONS: tuple[str, ...] = tuple(sorted(AVAILABILITY_ZONES))


def zones_of(region: str) -> tuple[str, ...]:
    return tuple(AVAILABILITY_ZONES.get(region, ()))


@cache
def aurora_versions(engine: str) -> tuple[str, ...]:
    """Engine versions CloudFormation accepts for a new ``engine`` cluster, deprecated ones left out."""
    folder = resources.files("cfnlint.data.schemas.extensions.aws_rds_dbcluster")
    known = _versions(json.loads(folder.joinpath("engine_version.json").read_text()), engine, "then")
    deprecated = _versions(json.loads(folder.joinpath("engine_version_deprecated.json").read_text()), engine, "if")
    # "-limitless" versions belong to Aurora Limitless Database, another engine mode.
    usable = {v for v in set(known) - set(deprecated) if not v.endswith("-limitless")}
    return tuple(sorted(usable, key=_version_key))


def _versions(schema: dict, engine: str, branch: str) -> list[str]:
    for rule in schema.get("allOf", []):
        condition = rule.get("if", {}).get("properties", {})
        if condition.get("Engine", {}).get("const") == engine:
            return [str(v) for v in rule[branch]["properties"]["EngineVersion"].get("enum", [])]
    return []


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Numeric parts compare as numbers (16.10 after 16.9); words compare as words."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.replace("_", ".").split("."))


# The handlers CloudFormation runs on a stack's resources: create, update and delete them, and read
# them back (drift, change sets). "list" is left out: CloudFormation lists only to import.
STACK_HANDLERS = ("create", "read", "update", "delete")


@cache
def handler_permissions(region: str, resource_type: str) -> tuple[str, ...]:
    """The IAM actions CloudFormation needs to manage a resource of this type, as its resource
    provider schema lists them (cfn-lint ships the schemas); empty if the schema lists none."""
    handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema.get("handlers", {})
    found = {p for name in STACK_HANDLERS for p in handlers.get(name, {}).get("permissions", [])}
    # Only actions IAM knows (cfn-lint's table of them): a schema may list one that IAM never
    # authorizes (an API operation name, not an action), which a policy need not name.
    known = _iam_actions()
    return tuple(sorted(p for p in found if p.lower() in known))


@cache
def _iam_actions() -> frozenset[str]:
    """Every ``service:action`` IAM knows, lower-case, from the table cfn-lint checks policies with."""
    table = json.loads(resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text())
    return frozenset(f"{service}:{action}" for service, spec in table.items() for action in spec.get("Actions", {}))
