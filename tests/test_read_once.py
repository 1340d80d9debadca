"""load_settings parses defaults.yaml once for all the environments (settings.loading.read_once):
the same settings as each environment loaded on its own, each its own copy, and a file parsed
again when its bytes change or when it failed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from conftest import SETTINGS, edit_yaml

from infra_templates.config import SettingsError, load_environment, load_settings
from infra_templates.settings import loading


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each text the loader parses, in order."""
    texts: list[str] = []
    parse = loading._parse

    def counted(text: str, loader: Any) -> Any:
        texts.append(text)
        return parse(text, loader)

    monkeypatch.setattr(loading, "_parse", counted)
    return texts


def test_defaults_parsed_once_for_every_environment(parsed: list[str]) -> None:
    _environments, _project, everyone = load_settings(SETTINGS)
    names = loading.available_environments(SETTINGS)
    defaults = (SETTINGS / "defaults.yaml").read_text()
    assert len(names) >= 3
    assert len(parsed) == len(names) + 1  # each environment's file, and defaults.yaml once
    assert parsed.count(defaults) == 1
    parsed.clear()
    alone = [load_environment(name, SETTINGS) for name in names]  # outside load_settings: nothing kept
    assert parsed.count(defaults) == len(names)
    linked = sorted(everyone, key=lambda env: env.name)
    assert [env.model_dump(exclude={"standby"}) for env in linked] == [
        env.model_dump(exclude={"standby"}) for env in alone
    ]


def test_each_read_is_its_own_copy(tmp_path: Path) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text("platform:\n  tasks: [1, 2]\n  nested: {a: &x [1], b: *x}\n")
    with loading.read_once():
        first = loading._read_mapping(path)
        first["platform"]["tasks"].append(3)
        first["platform"]["nested"]["a"].append(2)
        second = loading._read_mapping(path)
        second["platform"]["tasks"].append(4)
        third = loading._read_mapping(path)
    assert second["platform"]["tasks"] == [1, 2, 4]
    assert third == {"platform": {"tasks": [1, 2], "nested": {"a": [1], "b": [1]}}}
    assert second["platform"]["nested"]["a"] is second["platform"]["nested"]["b"]  # a YAML alias, as parsed


def test_changed_bytes_are_parsed_again_and_a_failure_fails_again(tmp_path: Path, parsed: list[str]) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text("a: 1\n")
    with loading.read_once():
        assert loading._read_mapping(path) == {"a": 1}
        assert loading._read_mapping(path) == {"a": 1}
        edit_yaml(path, a=2)
        assert loading._read_mapping(path) == {"a": 2}
        path.write_text("a: [1\n")
        messages = []
        for _ in range(2):
            with pytest.raises(SettingsError) as caught:
                loading._read_mapping(path)
            messages.append(str(caught.value))
    assert parsed == ["a: 1\n", "a: 2\n", *["a: [1\n"] * 4]  # each failure read by both parsers
    assert messages[0] == messages[1] and "is not valid YAML" in messages[0]


def test_too_deep_to_copy_is_read_each_time(tmp_path: Path, parsed: list[str]) -> None:
    """A file nested more deeply than copy.deepcopy can follow (yet not too deeply to read) is kept
    out of the cache: read again each time, never a traceback."""
    path = tmp_path / "defaults.yaml"
    depth = 600  # _size walks it (a frame a level); deepcopy takes more than one and a half a level
    path.write_text("a: " + "[" * depth + "]" * depth + "\n")
    with loading.read_once():
        first = loading._read_mapping(path)
        second = loading._read_mapping(path)
    with pytest.raises(RecursionError):
        copy.deepcopy(first)
    assert first == second
    assert len(parsed) == 2
