"""What AWS offers (regions, zones, Aurora versions, the permissions CloudFormation needs), read
from the data cfn-lint ships.

We read cfn-lint's tables rather than keep our own: they are maintained with every release, and
they are the same tables the lint gate checks templates against, so the settings and the lint
never disagree (a version the settings accept is one cfn-lint accepts, and not deprecated).

They are read straight from cfn-lint's package folder, which is located without importing it:
importing any ``cfnlint`` module runs ``cfnlint/__init__.py``, which loads its linter, rules and
their dependencies (sympy, networkx): about 0.4 s of CPU, more than generating every environment
takes. Only the bundled tables of the pinned cfn-lint are read (not a schema cache a user may have
downloaded with ``cfn-lint --update-specs``), so the same inputs always give the same templates.
``tests/test_catalog.py`` checks that each table read here equals what cfn-lint's own API returns.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from infra_templates import derived


@cache
def _cfnlint_folder() -> Path:
    """cfn-lint's package folder, found without running its ``__init__`` (``find_spec`` of a
    top-level package only locates it)."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cfn-lint is not installed (run `make venv`)")
    return Path(next(iter(spec.submodule_search_locations)))


def _read_json(*parts: str) -> Any:
    return json.loads(_cfnlint_folder().joinpath(*parts).read_text(encoding="utf-8"))


def _availability_zones() -> dict[str, list[str]]:
    """``cfnlint.helpers.AVAILABILITY_ZONES`` (region -> its zones), a literal in that module's source:
    evaluated as a literal, never imported (``cfnlint.helpers`` imports the whole linter)."""
    source = (_cfnlint_folder() / "helpers.py").read_text(encoding="utf-8")
    start = source.find("\nAVAILABILITY_ZONES = {")
    end = source.find("\n}\n", start)
    if start < 0 or end < 0:
        raise RuntimeError("cfn-lint's helpers.py has no AVAILABILITY_ZONES table: another cfn-lint version?")
    table = ast.literal_eval(source[source.index("{", start) : end + 2])
    return {str(region): [str(zone) for zone in zones] for region, zones in table.items()}


AVAILABILITY_ZONES: dict[str, list[str]] = _availability_zones()
REGIONS: tuple[str, ...] = tuple(sorted(AVAILABILITY_ZONES))


def zones_of(region: str) -> tuple[str, ...]:
    return tuple(AVAILABILITY_ZONES.get(region, ()))


@cache
def aurora_versions(engine: str) -> tuple[str, ...]:
    """Engine versions CloudFormation accepts for a new ``engine`` cluster, deprecated ones left out."""
    folder = ("data", "schemas", "extensions", "aws_rds_dbcluster")
    known = _versions(_read_json(*folder, "engine_version.json"), engine, "then")
    deprecated = _versions(_read_json(*folder, "engine_version_deprecated.json"), engine, "if")
    # "-limitless" versions belong to Aurora Limitless Database, another engine mode.
    usable = {v for v in set(known) - set(deprecated) if not v.endswith("-limitless")}
    return tuple(sorted(usable, key=_version_key))


def _versions(schema: dict[str, Any], engine: str, branch: str) -> list[str]:
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
def _provider_types(region: str) -> dict[str, str]:
    """Resource type -> the file name (a hash) of its provider schema in ``region``, as cfn-lint's
    schema manager maps them (``data/schemas/providers/<region>.json``; us-east-1's for a region
    it has no table for)."""
    folder = _cfnlint_folder() / "data" / "schemas" / "providers"
    path = folder / f"{region}.json"
    return dict(json.loads((path if path.is_file() else folder / "us-east-1.json").read_text(encoding="utf-8")))


@cache
def resource_schema(region: str, resource_type: str) -> dict[str, Any]:
    """The CloudFormation resource provider schema of ``resource_type`` in ``region``, as cfn-lint
    ships it (``PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, type).schema``).

    Raises ``KeyError`` when the region has no such type (a custom resource, a type not offered
    there). The returned dict is shared: do not change it.
    """
    digest = _provider_types(region)[resource_type]
    schema: dict[str, Any] = _read_json("data", "schemas", "resources", f"{digest}.json")
    return schema


@cache
def handler_permissions(region: str, resource_type: str) -> tuple[str, ...]:
    """The IAM actions CloudFormation needs to manage a resource of this type, as its resource
    provider schema lists them (cfn-lint ships the schemas); empty if the schema lists none.

    Raises ``KeyError`` when the region has no such type, as ``resource_schema``. Read from the
    derived table HANDLERS (a few bytes per schema) rather than from the type's whole schema."""
    actions: list[str] = HANDLERS.get(_provider_types(region)[resource_type])
    return tuple(actions)


def _handlers_of(schema: dict[str, Any]) -> list[str]:
    """The actions of a provider schema's stack handlers (create, read, update, delete), sorted."""
    handlers = schema.get("handlers", {})
    found = {p for name in STACK_HANDLERS for p in handlers.get(name, {}).get("permissions", [])}
    # Only actions IAM knows (cfn-lint's table of them): a schema may list one that IAM never
    # authorizes (an API operation name, not an action), which a policy need not name.
    return sorted(p for p in found if _iam_knows(p.lower()))


def _handler_sources() -> list[Path]:
    """The schemas' folder (its modification time moves when cfn-lint's files are replaced; a
    schema's file name is its digest) and the IAM table the actions are filtered by."""
    return [_cfnlint_folder() / "data" / "schemas" / "resources", *_policies_file()]


def _derive_handlers() -> dict[str, list[str]]:
    """Schema file name (its digest, as the provider tables name it) -> its handlers' actions
    (_handlers_of): every schema cfn-lint ships (18 MB), read once."""
    folder = _cfnlint_folder() / "data" / "schemas" / "resources"
    return {
        path.stem: _handlers_of(json.loads(path.read_text(encoding="utf-8"))) for path in sorted(folder.glob("*.json"))
    }


def _iam_knows(action: str) -> bool:
    """True when IAM knows ``service:action`` (lower-case), by the table cfn-lint checks policies with."""
    service, _, name = action.partition(":")
    return name in _iam_actions(service)


@cache
def _iam_actions(service: str) -> frozenset[str]:
    """Every action of ``service`` IAM knows, lower-case (``Policies.json``'s keys, as cfn-lint lists them)."""
    return frozenset(IAM_ACTIONS.get(service) or ())


def _policies_file() -> list[Path]:
    return [_cfnlint_folder() / "data" / "AdditionalSpecs" / "Policies.json"]


def _derive_iam_actions() -> dict[str, list[str]]:
    """Service prefix -> its actions' names as ``Policies.json`` lists them (2 MB)."""
    table = _read_json("data", "AdditionalSpecs", "Policies.json")
    return {service: sorted(spec.get("Actions", {})) for service, spec in table.items()}


# cfn-lint's IAM actions by service, read one service at a time (derived.py).
IAM_ACTIONS = derived.Table("cfnlint-iam-actions", _policies_file, _derive_iam_actions)
# The handlers' actions of every resource provider schema, by its file name (derived.py): the deployer
# asks for some 60 types in 3 regions, which read 130 whole schema files (15 ms of every build).
HANDLERS = derived.Table("cfnlint-handlers", _handler_sources, _derive_handlers)


# --- database instance classes and Fargate task sizes: "did you mean" -------------------------

# The two tables cfn-lint checks an AWS::RDS::DBInstance's DBInstanceClass against: rule E3025 per
# region and engine (gathered from AWS's pricing API), rule E3062 per engine and engine version.
# Several MB each: read only when a provisioned database is validated.
_DB_INSTANCE_FOLDER = ("data", "schemas", "extensions", "aws_rds_dbinstance")


def _instance_class_files() -> list[Path]:
    folder = _cfnlint_folder().joinpath(*_DB_INSTANCE_FOLDER)
    return [folder / "dbinstanceclass_enum.json", folder / "db_instance_class.json"]


def _derive_classes_by_region() -> dict[str, dict[str, list[str]]]:
    """region -> engine -> the instance classes offered there (``dbinstanceclass_enum.json``, the
    rules without a license model, as an Aurora cluster's instances have none)."""
    by_region: dict[str, dict[str, list[str]]] = {}
    for region, schema in _read_json(*_DB_INSTANCE_FOLDER, "dbinstanceclass_enum.json").items():
        found: dict[str, list[str]] = {}
        for rule in schema.get("allOf", []):
            condition = rule.get("if", {}).get("properties", {})
            engine = condition.get("Engine", {}).get("const")
            if engine and condition.get("LicenseModel") is False:
                found[engine] = sorted(rule["then"]["properties"]["DBInstanceClass"]["enum"])
        by_region[region] = found
    return by_region


def _derive_classes_by_version() -> dict[str, list[list[Any]]]:
    """engine -> [[engine version pattern, instance classes]] (``db_instance_class.json``), in its order."""
    found: dict[str, list[list[Any]]] = {}
    for rule in _read_json(*_DB_INSTANCE_FOLDER, "db_instance_class.json").get("allOf", []):
        condition = rule.get("if", {}).get("properties", {})
        engine = condition.get("Engine", {}).get("const")
        pattern = condition.get("EngineVersion", {}).get("pattern")
        if engine and pattern:
            classes = sorted(rule["then"]["properties"]["DBInstanceClass"]["enum"])
            found.setdefault(engine, []).append([pattern, classes])
    return found


# The two tables, several MB each, read one region and one engine at a time (derived.py).
CLASSES_BY_REGION = derived.Table("cfnlint-db-classes-by-region", _instance_class_files, _derive_classes_by_region)
CLASSES_BY_VERSION = derived.Table("cfnlint-db-classes-by-version", _instance_class_files, _derive_classes_by_version)


@cache
def _classes_by_region(region: str) -> dict[str, frozenset[str]]:
    """engine -> the instance classes offered in ``region`` (``dbinstanceclass_enum.json``, the rules
    without a license model, as an Aurora cluster's instances have none)."""
    return {engine: frozenset(classes) for engine, classes in (CLASSES_BY_REGION.get(region) or {}).items()}


@cache
def _classes_by_version(engine: str) -> list[tuple[str, str, frozenset[str]]]:
    """[(engine version pattern, the text every version it matches starts with, instance classes)]
    of ``engine`` (``db_instance_class.json``)."""
    return [
        (pattern, _literal_start(pattern), frozenset(classes))
        for pattern, classes in CLASSES_BY_VERSION.get(engine) or []
    ]


def _literal_start(pattern: str) -> str:
    """The text every version ``pattern`` matches starts with, for cfn-lint's version patterns
    ``^(X\\..+|X)$`` (X: letters, digits, ``-``, ``_`` and escaped dots; "16.9" for
    ``^(16\\.9\\..+|16\\.9)$``); "" for a pattern of any other shape. Spares compiling the
    patterns of the other versions (some 60 for an engine) to find the one that matches."""
    shape = re.fullmatch(r"\^\((?P<start>(?:[A-Za-z0-9_-]|\\\.)+)\\\.\.\+\|(?P=start)\)\$", pattern)
    return shape["start"].replace("\\.", ".") if shape else ""


def database_instance_classes(engine: str, region: str, engine_version: str) -> tuple[str, ...]:
    """The DB instance classes an ``engine`` instance of ``engine_version`` can have in ``region``,
    sorted: the intersection of cfn-lint's two tables (its rules E3025 and E3062). Empty when cfn-lint
    has no table for that region or engine (then nothing is refused here: the lint decides)."""
    offered = _classes_by_region(region).get(engine)
    if offered is None:
        return ()
    for pattern, literal, classes in _classes_by_version(engine):
        # A version not starting with the pattern's literal start cannot match: not compiled
        if engine_version.startswith(literal) and re.match(pattern, engine_version):
            offered = offered & classes
            break
    return tuple(sorted(offered))


def nearest(value: str, choices: Iterable[str], count: int = 3) -> list[str]:
    """Up to ``count`` of ``choices`` closest to a mistyped ``value`` (``difflib``'s ratio), best first."""
    import difflib  # noqa: PLC0415 - only for a mistyped value: 5 ms a build need not import

    return difflib.get_close_matches(value, list(choices), n=count, cutoff=0.6)


def nearest_numbers(value: int, choices: Iterable[int]) -> list[int]:
    """The choices either side of ``value``: the largest below it and the smallest above it (one of
    them when ``value`` lies outside the choices' range), ascending."""
    below = [c for c in choices if c < value]
    above = [c for c in choices if c > value]
    return [*([max(below)] if below else []), *([min(above)] if above else [])]
