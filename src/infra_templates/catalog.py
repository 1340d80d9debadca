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
