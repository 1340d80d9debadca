"""Shared fixtures and helpers: the shipped environments, their built stacks, and small queries."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra_templates.config import (
    Environment,
    Project,
    SettingsError,
    available_environments,
    load_environment,
    load_settings,
)
from infra_templates.pipeline import PROJECT_FOLDER, Stack, build_project_stacks, project_files
from templates import PROJECT_LAYERS, environment_output

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "environments"
ENVIRONMENTS = available_environments(SETTINGS)


@dataclass(frozen=True)
class Built:
    environments: dict[str, Environment]
    project: Project
    project_stacks: dict[str, Stack]
    stacks: dict[str, dict[str, Stack]]  # env -> stack layer ("network", "svc-api") -> stack
    files: dict[str, dict[str, str]]  # output folder ("dev", "project") -> file name -> text


def build_all(settings: Path = SETTINGS) -> Built:
    _, project, everyone = load_settings(settings)
    environments = {env.name: env for env in everyone}
    shared = build_project_stacks(project, PROJECT_LAYERS)
    stacks: dict[str, dict[str, Stack]] = {}
    files = {PROJECT_FOLDER: project_files(project, shared)}
    for name, env in environments.items():
        built, files[name] = environment_output(env, list(environments.values()), shared)
        stacks[name] = {s.layer: s for s in built}
    return Built(environments, project, {s.layer: s for s in shared}, stacks, files)


# Built once at collection, so tests can be parametrized over every stack that exists.
BUILT = build_all()
STACK_CASES = [(env, layer) for env in ENVIRONMENTS for layer in BUILT.stacks[env]]
PROJECT_CASES = [("project", layer) for layer in BUILT.project_stacks]
ALL_CASES = PROJECT_CASES + STACK_CASES
SERVICES = sorted(BUILT.project.services)


def stack_of(env: str, layer: str) -> Stack:
    """A built stack; ``env`` "project" names the project-wide stacks."""
    return BUILT.project_stacks[layer] if env == "project" else BUILT.stacks[env][layer]


@pytest.fixture(scope="session")
def environments() -> dict[str, Environment]:
    return BUILT.environments


@pytest.fixture(scope="session")
def stacks() -> dict[str, dict[str, Stack]]:
    """``stacks[env][layer]`` for every shipped environment; services are ``svc-<name>``."""
    return BUILT.stacks


@pytest.fixture(scope="session")
def project_stacks() -> dict[str, Stack]:
    return BUILT.project_stacks


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    """A writable copy of environments/ to break on purpose."""
    folder = tmp_path / "environments"
    shutil.copytree(SETTINGS, folder)
    return folder


def refusal(settings_dir: Path, env: str = "staging") -> str:
    """The message loading ``env`` from ``settings_dir`` is refused with (failing if it loads)."""
    with pytest.raises(SettingsError) as caught:
        load_environment(env, settings_dir)
    return str(caught.value)


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


def all_stacks() -> list[tuple[str, str, Stack]]:
    return [(env, layer, stack_of(env, layer)) for env, layer in ALL_CASES]


@pytest.fixture(scope="session")
def codedeploy_built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The shipped settings with ``deployment.controller: codedeploy``: blue/green services that
    CodeDeploy releases (the ECS controller is the default)."""
    folder = tmp_path_factory.mktemp("codedeploy") / "environments"
    shutil.copytree(SETTINGS, folder)
    edit_yaml(folder / "defaults.yaml", deployment__controller="codedeploy")
    return build_all(folder)
