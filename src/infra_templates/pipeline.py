"""From settings to files: run each layer's build, tag, render, and describe the stacks in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from troposphere import Template

from infra_templates.config import Environment
from infra_templates.handover import handover_files
from infra_templates.layer import Scope, apply_tags
from infra_templates.naming import stack_name, standard_tags
from infra_templates.render import template_dict, to_json, to_yaml


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the platform: its name, its build function and the layers it imports from."""

    name: str
    build: Callable[[Environment], Template]
    imports_from: tuple[str, ...] = ()
    scope: Scope = "environment"


@dataclass
class Stack:
    """One built stack: its template as data and as text, and what it exports and imports."""

    name: str
    layer: str
    region: str
    body: dict[str, Any]
    depends_on: list[str]
    yaml: str = field(repr=False)
    json: str = field(repr=False)

    @property
    def exports(self) -> list[str]:
        return sorted(out["Export"]["Name"] for out in self.body.get("Outputs", {}).values() if "Export" in out)

    @property
    def imports(self) -> list[str]:
        return sorted(set(find_imports(self.body)))

    @property
    def resource_count(self) -> int:
        return len(self.body.get("Resources", {}))


def find_imports(node: Any) -> Iterator[str]:
    """Every literal name passed to Fn::ImportValue anywhere in a template."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::ImportValue" and isinstance(value, str):
                yield value
            else:
                yield from find_imports(value)
    elif isinstance(node, list):
        for item in node:
            yield from find_imports(item)


def check_layer_order(layers: Sequence[LayerSpec]) -> None:
    """Each layer imports only from layers listed before it: the list is the deploy order."""
    seen: set[str] = set()
    for layer in layers:
        missing = [name for name in layer.imports_from if name not in seen]
        if missing:
            raise ValueError(f"layer {layer.name!r} imports from {missing}, which do not come before it")
        seen.add(layer.name)


def build_stacks(env: Environment, layers: Sequence[LayerSpec]) -> list[Stack]:
    check_layer_order(layers)
    stacks: list[Stack] = []
    names = {
        layer.name: stack_name(env.project, env.name if layer.scope == "environment" else None, layer.name)
        for layer in layers
    }
    for layer in layers:
        template = layer.build(env)
        apply_tags(template, standard_tags(env.project, env.name, layer.name, env.tags))
        body = template_dict(template)
        stacks.append(
            Stack(
                name=names[layer.name],
                layer=layer.name,
                region=env.region,
                body=body,
                depends_on=[names[n] for n in layer.imports_from],
                yaml=to_yaml(body),
                json=to_json(body),
            )
        )
    return stacks


def manifest(env: Environment, stacks: Sequence[Stack]) -> dict[str, Any]:
    """The deploy order of one environment: what a human or a script needs to upload the stacks."""
    return {
        "project": env.project,
        "environment": env.name,
        "account_id": env.account_id,
        "region": env.region,
        "stacks": [
            {
                "order": position,
                "name": stack.name,
                "layer": stack.layer,
                "region": stack.region,
                "templates": {"yaml": f"{stack.layer}.yaml", "json": f"{stack.layer}.json"},
                "depends_on": stack.depends_on,
                "exports": stack.exports,
                "imports": stack.imports,
            }
            for position, stack in enumerate(stacks, start=1)
        ],
    }


def environment_files(env: Environment, stacks: Sequence[Stack]) -> dict[str, str]:
    """The files of ``output/<env>/``: each template as YAML and JSON, the manifest, and the deploy
    guide and script (DEPLOY.md, deploy.sh) derived from them."""
    files: dict[str, str] = {}
    for stack in stacks:
        files[f"{stack.layer}.yaml"] = stack.yaml
        files[f"{stack.layer}.json"] = stack.json
    described = manifest(env, stacks)
    files["manifest.json"] = to_json(described)
    files.update(handover_files(described, {stack.name: stack.body for stack in stacks}))
    return files
