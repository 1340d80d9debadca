"""Shared fixtures and helpers: the shipped environments, their built stacks, and small queries."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra_templates.config import Environment, available_environments, load_environment
from infra_templates.pipeline import Stack, build_stacks
from templates import LAYERS

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "environments"
ENVIRONMENTS = available_environments(SETTINGS)
LAYER_NAMES = [layer.name for layer in LAYERS]


@pytest.fixture(scope="session")
def environments() -> dict[str, Environment]:
    return {name: load_environment(name, SETTINGS) for name in ENVIRONMENTS}


@pytest.fixture(scope="session")
def stacks(environments: dict[str, Environment]) -> dict[str, dict[str, Stack]]:
    """``stacks[env][layer]`` for every shipped environment."""
    return {name: {s.layer: s for s in build_stacks(env, LAYERS)} for name, env in environments.items()}


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    """A writable copy of environments/ to break on purpose."""
    folder = tmp_path / "environments"
    shutil.copytree(SETTINGS, folder)
    return folder


def edit_yaml(path: Path, **changes: Any) -> None:
    """Set keys in a YAML file; ``network__cidr=...`` reaches into mappings (``__`` for ``.``)."""
    data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def resources(body: dict[str, Any], type_: str | None = None) -> dict[str, dict[str, Any]]:
    """The resources of a template, optionally only those of one type."""
    return {k: v for k, v in body.get("Resources", {}).items() if type_ is None or v["Type"] == type_}


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar in a template, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def all_stacks(stacks: dict[str, dict[str, Stack]]) -> list[tuple[str, str, Stack]]:
    return [(env, layer, stack) for env, by_layer in stacks.items() for layer, stack in by_layer.items()]
