"""Any settings file either builds or is refused cleanly (property-based, hypothesis).

Each example takes a shipped environment file and sets one to three of its settings to values
drawn from the settings models' own JSON Schema (``schema/environment.schema.json``, generated
from ``config.py``): a setting's type, range, pattern or choices, plus values just outside them.
Then ``generate.py``'s build runs in process: it must return 0 (and the written output pass the
gate's cheap whole-output checks: wiring, limits, quotas) or 2 with every line naming the file and
a field, and never raise. A traceback is a finding: fix it in the settings validators (the
narrowest right place) or in the layer that crashed.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ENVIRONMENTS, SETTINGS, refusal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import generate
from infra_templates import checks, quotas

SCHEMA = json.loads((generate.SCHEMA_FILE).read_text(encoding="utf-8"))
SERVICE_NAMES = ("web", "api")  # the shipped services: settings below services.<name> go to one of them


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        resolved: dict[str, Any] = SCHEMA["$defs"][ref.rsplit("/", 1)[-1]]
        return resolved
    return node


def leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every setting that holds a value (not a mapping of settings), with its schema."""
    node = _resolve(node)
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        objects = [_resolve(o) for o in options if _resolve(o).get("type") == "object"]
        if objects:
            for option in objects:
                yield from leaves(option, path)
            return
    if node.get("type") == "object" and "properties" in node:
        for key, child in node["properties"].items():
            yield from leaves(child, (*path, key))
        return
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        child = _resolve(node["additionalProperties"])
        if child.get("type") == "object" and path == ("services",):
            for name in SERVICE_NAMES:
                yield from leaves(child, (*path, name))
        return
    yield path, node


LEAVES = sorted(dict(leaves(SCHEMA)).items())


def values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a setting: mostly valid by its schema, some just outside it."""
    schema = _resolve(schema)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return st.one_of([values(o) for o in options])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.one_of(st.sampled_from(schema["enum"]), st.sampled_from(["", "other"]))
    return _BY_TYPE.get(schema.get("type", ""), lambda _: st.just(None))(schema)


def _integers(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -10))
    high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100_000))
    return st.one_of(st.integers(low, high), st.integers(low - 2, high + 2))


def _numbers(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -10.0))
    high = schema.get("maximum", schema.get("exclusiveMaximum", low + 1000.0))
    return st.floats(low - 1, high + 1, allow_nan=False, allow_infinity=False)


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    texts = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=schema.get("maxLength", 40))
    pattern = schema.get("pattern")
    if pattern:
        with contextlib.suppress(re.error):
            return st.one_of(st.from_regex(pattern, fullmatch=True), texts)
    return texts


_BY_TYPE: dict[str, Any] = {
    "null": lambda _: st.none(),
    "boolean": lambda _: st.booleans(),
    "integer": _integers,
    "number": _numbers,
    "string": _strings,
    "array": lambda schema: st.lists(
        values(schema.get("items", {"type": "string"})), max_size=min(schema.get("maxItems", 4), 6)
    ),
}


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _refusal_lines_name_file_and_field(stderr: str, file: Path) -> list[str]:
    lines = [line.strip() for line in stderr.splitlines()[1:] if line.strip()]
    return [line for line in lines if not re.match(rf"{re.escape(str(file.parent))}/[\w.-]+\.yaml: \S", line)]


# Bounded and derandomized: the same 25 examples every run (make test stays deterministic); run
# with HYPOTHESIS_PROFILE-free exploration by raising max_examples locally to search further.
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_drawn_settings_build_or_are_refused_without_a_traceback(data: st.DataObject, tmp_path_factory: Any) -> None:
    scratch = tmp_path_factory.mktemp("drawn")
    _builds_or_is_refused(data, scratch)
    shutil.rmtree(scratch)  # passed: its output goes now, not with the session's (a failing example's stays)


def _builds_or_is_refused(data: st.DataObject, scratch: Path) -> None:
    folder = scratch / "environments"
    shutil.copytree(SETTINGS, folder)
    env = data.draw(st.sampled_from(ENVIRONMENTS), label="environment")
    file = folder / f"{env}.yaml"
    content = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    drawn = st.lists(st.sampled_from(LEAVES), min_size=1, max_size=3, unique_by=lambda leaf: leaf[0])
    for path, schema in data.draw(drawn, "settings"):
        _set(content, path, data.draw(values(schema), label=".".join(path)))
    file.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    output = scratch / "output"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = generate.run_build(None, folder, output, quiet=True)  # an exception fails the test
    if status == generate.EXIT_SETTINGS:
        assert stderr.getvalue().startswith("Refused: nothing was written."), stderr.getvalue()
        assert _refusal_lines_name_file_and_field(stderr.getvalue(), file) == [], stderr.getvalue()
        return
    assert status == 0, stderr.getvalue()
    manifests = checks.load_manifests(output)
    problems = [
        *(str(p) for p in checks.check_wiring(manifests)),
        *(str(p) for p in checks.check_limits(checks.template_files(manifests))),
        *quotas.check_output_quotas(manifests),
    ]
    assert problems == [], "\n".join(problems)


def test_the_settings_drawn_cover_every_part_of_the_models() -> None:
    """The draw reaches every top-level section and both shipped services."""
    tops = {path[0] for path, _ in LEAVES}
    assert tops == set(SCHEMA["properties"]) - {"tags"}  # tags: a free mapping, no leaf to draw
    assert {path[1] for path, _ in LEAVES if path[0] == "services"} == set(SERVICE_NAMES)
    assert len(LEAVES) > 100


# What the draw found, pinned (RDS, CreateDBCluster: each window at least 30 minutes, the two apart).
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"preferred_backup_window": "00:00-00:00"}, "database.preferred_backup_window = '00:00-00:00': must last"),
        ({"preferred_backup_window": "02:10-02:00"}, "its end at least 30 minutes from its start"),
        ({"preferred_maintenance_window": "sun:29:00-sun:29:40"}, "29:00 is not a time of day"),
        ({"preferred_maintenance_window": "mon:01:00-mon:01:10"}, "must last at least 30 minutes"),
        ({"preferred_backup_window": "03:00-04:00"}, "overlaps preferred_maintenance_window (sun:03:30-sun:04:30)"),
    ],
)
def test_database_windows_rds_refuses_are_refused(settings_dir: Path, changes: dict[str, str], expected: str) -> None:
    path = settings_dir / "staging.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.setdefault("database", {}).update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert expected in refusal(settings_dir)
