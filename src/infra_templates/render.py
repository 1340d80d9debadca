"""Deterministic JSON and YAML, laid out like a hand-written template, written atomically."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from troposphere import Template

SECTION_ORDER = (
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
)
RESOURCE_KEY_ORDER = (
    "Type",
    "Condition",
    "DependsOn",
    "Metadata",
    "Properties",
    "CreationPolicy",
    "UpdatePolicy",
    "DeletionPolicy",
    "UpdateReplacePolicy",
)


def template_dict(t: Template) -> dict[str, Any]:
    """The template as plain data, sections and resource attributes in CloudFormation's usual order."""
    raw = t.to_dict()
    ordered = {key: raw[key] for key in SECTION_ORDER if key in raw}
    ordered.update({key: value for key, value in raw.items() if key not in ordered})
    if "Resources" in ordered:
        ordered["Resources"] = {
            name: _order(resource, RESOURCE_KEY_ORDER) for name, resource in ordered["Resources"].items()
        }
    return ordered


def _order(mapping: Mapping[str, Any], first: tuple[str, ...]) -> dict[str, Any]:
    ordered = {key: mapping[key] for key in first if key in mapping}
    ordered.update({key: value for key, value in mapping.items() if key not in ordered})
    return ordered


def to_json(data: Any) -> str:
    """JSON indented by one space: still one key a line, and a third smaller than two spaces, which
    keeps a large service stack within the 51,200-byte body ``aws cloudformation deploy`` uploads
    without a bucket. The YAML beside it is the one written for reading."""
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


# --- YAML with CloudFormation's short-form intrinsic functions --------------------------------


class _CfnDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # never emit &anchors / *aliases
        return True

    def choose_scalar_style(self) -> str:
        # PyYAML quotes every scalar with an explicit tag; `!Ref Vpc` reads better than `!Ref 'Vpc'`
        # and means the same, so write short-form intrinsics plain wherever plain is unambiguous.
        event = self.event
        if isinstance(event, yaml.ScalarEvent) and self.analysis is None:
            self.analysis = self.analyze_scalar(event.value)
        if (
            isinstance(event, yaml.ScalarEvent)
            and event.tag
            and event.tag.startswith("!")
            and not event.style
            and self.analysis is not None
            and self.analysis.allow_block_plain
            and self.analysis.allow_flow_plain
            and not self.analysis.empty
            and not self.analysis.multiline
        ):
            return ""
        style: str = super().choose_scalar_style()
        return style


_PROBE = yaml.emitter.Emitter(io.StringIO())  # only its analyze_scalar, which keeps no state


def _tagged_style(value: str) -> str | None:
    """The style of a short-form intrinsic's scalar: plain where plain is unambiguous (the test of
    ``_CfnDumper.choose_scalar_style``), else quoted. Decided here, so that libyaml's C emitter,
    which takes no Python hook, writes exactly what the pure-Python dumper writes."""
    analysis = _PROBE.analyze_scalar(value)
    plain = analysis.allow_block_plain and analysis.allow_flow_plain and not analysis.empty and not analysis.multiline
    return None if plain else "'"


def _represent_dict(dumper: yaml.representer.SafeRepresenter, data: dict[str, Any]) -> yaml.Node:
    if len(data) == 1:
        ((key, value),) = data.items()
        if key == "Ref" and isinstance(value, str):
            return dumper.represent_scalar("!Ref", value, style=_tagged_style(value))
        if key == "Fn::GetAtt" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            joined = ".".join(value)
            return dumper.represent_scalar("!GetAtt", joined, style=_tagged_style(joined))
        if key.startswith("Fn::") or key == "Condition":
            tag = "!" + key.removeprefix("Fn::")
            if isinstance(value, list):
                return dumper.represent_sequence(tag, value)
            if isinstance(value, dict):
                return dumper.represent_mapping(tag, value.items())
            if isinstance(value, str):
                return dumper.represent_scalar(tag, value, style=_tagged_style(value))
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items())


def _represent_str(dumper: yaml.representer.SafeRepresenter, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_CfnDumper.add_representer(dict, _represent_dict)
_CfnDumper.add_representer(str, _represent_str)

_FastCfnDumper: Any = None  # the libyaml dumper class, when PyYAML has libyaml
if yaml.__with_libyaml__:  # PyYAML built with libyaml: its C emitter is 5x faster, same text (tests/test_render.py)

    class _CCfnDumper(yaml.CSafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    _CCfnDumper.add_representer(dict, _represent_dict)
    _CCfnDumper.add_representer(str, _represent_str)
    _FastCfnDumper = _CCfnDumper


def to_yaml(data: Any, *, pure_python: bool = False) -> str:
    """The YAML text of a template: the same bytes from libyaml's emitter (when PyYAML has it) or
    PyYAML's Python one (``pure_python``); the emitter was most of the generation time."""
    dumper = _CfnDumper if pure_python or _FastCfnDumper is None else _FastCfnDumper
    text: str = yaml.dump(
        data, Dumper=dumper, sort_keys=False, default_flow_style=False, width=100_000, allow_unicode=True
    )
    return text


# --- writing ----------------------------------------------------------------------------------


def write_tree(files: Mapping[str, str], staging: Path) -> None:
    """Write ``{relative path: text}`` below ``staging`` (which must be empty or missing).

    Scripts (``*.sh``) are made executable; everything else is written with the usual mode.
    """
    for relative, text in sorted(files.items()):
        path = staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if path.suffix == ".sh":
            path.chmod(0o755)


def replace_folders(output: Path, folders: Mapping[str, Mapping[str, str]], prune: bool = False) -> None:
    """Replace ``output/<name>`` for each name with exactly the given files, all or nothing.

    Everything is written to a staging folder inside ``output`` first; only when every file is on
    disk are the old folders swapped out by renames, so a failure leaves ``output`` as it was.
    ``prune`` also retires generated folders (those with a manifest.json) not in ``folders``: the
    output of an environment whose file was deleted must not linger and be uploaded.
    """
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output))
    retired = staging / ".retired"
    try:
        for name, files in folders.items():
            write_tree(files, staging / name)
        retired.mkdir()
        stale = {p.parent.name for p in output.glob("*/manifest.json")} - set(folders) if prune else set()
        for name in sorted(stale):
            os.replace(output / name, retired / name)
        for name in folders:
            target = output / name
            if target.exists():
                os.replace(target, retired / name)
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
