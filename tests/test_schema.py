"""The environment files' JSON Schema (editor support): current, accepting every shipped file, and
refusing what the settings models refuse, as far as a schema can say it.

Rules that live only in validators cannot be expressed by a schema generated from the models, so an
editor does not flag them and `generate.py` does: a retention CloudWatch Logs does not accept (2),
an unknown region, a malformed or overlapping CIDR, a subnet outside the VPC, more zones than the
region has, a reserved tag key, an interface endpoint listed twice.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import ROOT, SETTINGS, walk

import generate
from infra_templates.config import SettingsError, load_environment
from infra_templates.schema import schema_text

SCHEMA_FILE = ROOT / "schema" / "environment.schema.json"
MODELINE = "# yaml-language-server: $schema=../schema/environment.schema.json"


def validator() -> jsonschema.protocols.Validator:
    return _validator(SCHEMA_FILE.read_text())


@functools.cache
def _validator(text: str) -> jsonschema.protocols.Validator:
    """The validator of the schema file's text, checked against its metaschema, once per text (the
    parse and the check took 0.1 s of CPU per test)."""
    schema = yaml.safe_load(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(data: Any) -> list[str]:
    """``field.path: message`` per error; an unknown key is reported at the mapping that holds it."""
    return [f"{dotted(e.absolute_path)}: {e.message}" for e in validator().iter_errors(data)]


def dotted(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def test_committed_schema_is_what_the_models_generate() -> None:
    assert SCHEMA_FILE.is_file(), "schema/environment.schema.json is missing: run `make schema`"
    assert SCHEMA_FILE.read_text() == schema_text(), "the settings models changed: run `make schema` and commit"


def test_schema_check_exits_1_when_stale_and_0_once_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "schema" / "environment.schema.json"
    monkeypatch.setattr(generate, "SCHEMA_FILE", target)
    assert generate.main(["schema", "--check"]) == 1  # missing
    assert generate.main(["schema"]) == 0
    assert target.read_text() == schema_text()
    assert generate.main(["schema", "--check"]) == 0
    target.write_text(target.read_text().replace('"integer"', '"string"', 1))
    assert generate.main(["schema", "--check"]) == 1


def test_nothing_is_required_and_unknown_keys_are_refused_everywhere() -> None:
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    objects = [n for n in walk(schema) if isinstance(n, dict) and "properties" in n]
    assert len(objects) >= 4  # Environment, Network, Subnets, FlowLogs
    for node in objects:
        assert "required" not in node, node.get("title")
        assert node.get("additionalProperties") is False, node.get("title")
    assert "name" not in schema["properties"]


@pytest.mark.parametrize("path", sorted(SETTINGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_file_validates_and_names_the_schema(path: Path) -> None:
    # MODELINE as written in environments/; a fixture names the same file relative to its own folder.
    prefix = MODELINE.partition("=")[0] + "="
    first = path.read_text().splitlines()[0]
    assert first.startswith(prefix)
    assert (path.parent / first.removeprefix(prefix)).resolve() == SCHEMA_FILE
    assert schema_errors(yaml.safe_load(path.read_text())) == []


def test_an_empty_partial_file_is_valid() -> None:
    assert schema_errors({}) == []
    assert schema_errors({"network": {"flow_logs": {"retention_days": 30}}}) == []


REFUSED = {
    "unknown key": ({"network": {"flow_logs": {"trafic_type": "ALL"}}}, "network.flow_logs.trafic_type"),
    "string where int": ({"network": {"availability_zones": "3"}}, "network.availability_zones"),
    "invalid enum": ({"network": {"nat_gateways": "some"}}, "network.nat_gateways"),
    "unknown endpoint": ({"network": {"interface_endpoints": ["s3"]}}, "network.interface_endpoints[0]"),
    "too many zones": ({"network": {"availability_zones": 4}}, "network.availability_zones"),
    "account id as a number": ({"account_id": 123456789012}, "account_id"),
    "project name": ({"project": "Shop"}, "project"),
    "name in the file": ({"name": "dev"}, "name"),
    "wrong type of section": ({"network": ["10.0.0.0/16"]}, "network"),
}


@pytest.mark.parametrize(("change", "field"), REFUSED.values(), ids=REFUSED.keys())
def test_schema_refuses_what_the_models_refuse(settings_dir: Path, change: dict, field: str) -> None:
    path = settings_dir / "dev.yaml"
    data = _merge(yaml.safe_load(path.read_text()), change)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    parent, _, key = field.rpartition(".")
    errors = schema_errors(data)
    assert any(
        e.startswith(f"{field}: ") or (e.startswith(f"{parent}: ") and f"'{key}' was unexpected" in e) for e in errors
    ), f"the schema does not refuse {field}: {errors}"
    with pytest.raises(SettingsError) as refused:
        load_environment("dev", settings_dir)
    assert any(field in problem for problem in refused.value.problems), refused.value.problems


def _merge(base: dict, change: dict) -> dict:
    merged = dict(base)
    for key, value in change.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged
