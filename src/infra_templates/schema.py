"""JSON Schema of one environment file, for editors (yaml-language-server and the like).

Generated from the pydantic models in :mod:`infra_templates.config`, so it cannot drift from them
unnoticed: a test compares the committed file with a fresh one. Two differences from
``Environment.model_json_schema()``, both because a file is only part of an environment:

- nothing is required: a key may come from ``defaults.yaml`` (the merged result is validated by the
  models when the templates are built, and a missing key is reported then);
- no ``name``: it comes from the file name, and a file that sets it is refused.

Unknown keys stay refused (``additionalProperties: false``). Rules that live in validators (CIDR
overlaps, subnets inside the VPC, the retention values CloudWatch Logs accepts, known regions, the
zones a region has) are not in the schema; ``generate.py`` reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra_templates.config import Environment
from infra_templates.render import to_json

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DESCRIPTION = (
    "One file of environments/: defaults.yaml or <env>.yaml. A file may leave out any key that "
    "defaults.yaml sets; `python generate.py` validates the merged result, including the rules this "
    "schema cannot express (CIDR overlaps, subnets inside the VPC, log retention values, regions)."
)


def environment_file_schema() -> dict[str, Any]:
    """The schema of a partial environment file: the models' schema, nothing required, and none
    of the fields the generator sets itself (``name``, ``standby``)."""
    schema = Environment.model_json_schema()
    for derived in ("name", "standby"):
        schema["properties"].pop(derived, None)
    schema.get("$defs", {}).pop("Standby", None)
    _drop_required(schema)
    schema["description"] = DESCRIPTION
    return {"$schema": DRAFT, **schema}


def _drop_required(node: Any) -> None:
    """Remove every ``required`` keyword (a list; a property called "required" would be a mapping)."""
    if isinstance(node, dict):
        if isinstance(node.get("required"), list):
            del node["required"]
        for value in node.values():
            _drop_required(value)
    elif isinstance(node, list):
        for item in node:
            _drop_required(item)


def schema_text() -> str:
    return to_json(environment_file_schema())


def write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")


def is_current(path: Path) -> bool:
    """Whether the file at ``path`` is exactly what the models generate today."""
    return path.is_file() and path.read_text(encoding="utf-8") == schema_text()
