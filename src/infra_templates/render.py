"""Deterministic JSON and YAML, laid out like a hand-written template, written atomically."""

from __future__ import annotations

import ctypes
import errno
import io
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from functools import cache
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
    without a bucket. The YAML beside it is the one written for reading.

    The text of ``json.dumps(data, indent=1, ensure_ascii=False)``, written twice as fast (the
    standard library's C encoder takes no indent): a template's types directly, anything else
    (a float, a tuple, a key that is not a string) by ``json.dumps`` itself.
    """
    chunks: list[str] = []
    try:
        _json_chunks(data, "", chunks.append)
    except _NotPlainError:
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    chunks.append("\n")
    return "".join(chunks)


class _NotPlainError(Exception):
    """A value ``_json_chunks`` leaves to ``json.dumps``."""


_json_string = json.encoder.encode_basestring  # the C function json.dumps uses with ensure_ascii=False


def _json_chunks(value: Any, indent: str, append: Callable[[str], None]) -> None:
    kind = type(value)
    if kind is str:
        append(_json_string(value))
    elif kind is dict:
        if not value:
            append("{}")
            return
        inner = indent + " "
        separator = "{\n" + inner
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlainError
            append(separator)
            append(_json_string(key))
            append(": ")
            _json_chunks(item, inner, append)
            separator = ",\n" + inner
        append("\n" + indent + "}")
    elif kind is list:
        if not value:
            append("[]")
            return
        inner = indent + " "
        separator = "[\n" + inner
        for item in value:
            append(separator)
            _json_chunks(item, inner, append)
            separator = ",\n" + inner
        append("\n" + indent + "]")
    else:
        append(_json_scalar(value))


def _json_scalar(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)  # as json writes a finite float (NaN and infinities its own way)
    if value is None:
        return "null"
    raise _NotPlainError


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


@cache
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
_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}  # (scalar text, implicit) -> the tag it resolves to
if yaml.__with_libyaml__:  # PyYAML built with libyaml: its C emitter is 5x faster, same text (tests/test_render.py)

    class _CCfnDumper(yaml.CSafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

        def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
            # libyaml's serializer asks twice for each scalar whether its text would read back
            # as the same type without a tag; for a scalar the answer depends on the text alone
            # (a dumper has no path resolvers), and templates repeat their texts: remember it.
            if kind is not yaml.ScalarNode:
                return str(super().resolve(kind, value, implicit))
            key = (value, implicit)
            tag = _RESOLVED.get(key)
            if tag is None:
                tag = _RESOLVED[key] = str(super().resolve(kind, value, implicit))
            return tag

    _CCfnDumper.add_representer(dict, _represent_dict)
    _CCfnDumper.add_representer(str, _represent_str)
    _FastCfnDumper = _CCfnDumper

_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_ScalarNode, _MappingNode, _SequenceNode = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode


def _node(data: Any, fallback: yaml.representer.SafeRepresenter) -> yaml.Node:
    """The YAML node ``_CfnDumper``'s representers make of ``data`` (a template: dicts, lists,
    strings, numbers, booleans), made directly: PyYAML's generic representer looks up a function
    per object and tracks aliases, which was most of the time a template took to render.
    Anything else (a float, a subclass) goes to ``fallback``, the representer itself."""
    kind = type(data)
    node: yaml.Node | None
    if kind is str:
        node = _ScalarNode(_STR, data, style="|" if "\n" in data else None)
    elif kind is dict:
        node = _short_form(data, fallback) if len(data) == 1 else None
        if node is None:
            pairs = [(_node(k, fallback), _node(v, fallback)) for k, v in data.items()]
            node = _MappingNode(_MAP, pairs, flow_style=False)
    elif kind is list:
        node = _SequenceNode(_SEQ, [_node(item, fallback) for item in data], flow_style=False)
    elif kind is bool:
        node = _ScalarNode("tag:yaml.org,2002:bool", "true" if data else "false")
    elif kind is int:
        node = _ScalarNode("tag:yaml.org,2002:int", str(data))
    elif data is None:
        node = _ScalarNode("tag:yaml.org,2002:null", "null")
    else:
        node = fallback.represent_data(data)
    return node


def _short_form(data: dict[str, Any], fallback: yaml.representer.SafeRepresenter) -> yaml.Node | None:
    """A one-key intrinsic function (``{"Ref": x}``, ``{"Fn::Sub": ...}``) as its short form
    (``!Ref x``), as ``_represent_dict`` writes it; None for any other mapping."""
    ((key, value),) = data.items()
    if key == "Ref" and type(value) is str:
        tag = "!Ref"
    elif key == "Fn::GetAtt" and type(value) is list and all(type(v) is str for v in value):
        tag, value = "!GetAtt", ".".join(value)
    elif key.startswith("Fn::") or key == "Condition":
        tag = "!" + key.removeprefix("Fn::")
    else:
        return None
    if type(value) is list:
        return _SequenceNode(tag, [_node(item, fallback) for item in value], flow_style=False)
    if type(value) is dict:
        return _MappingNode(tag, [(_node(k, fallback), _node(v, fallback)) for k, v in value.items()], flow_style=False)
    if type(value) is str:
        return _ScalarNode(tag, value, style=_tagged_style(value))
    return None


def to_yaml(data: Any, *, pure_python: bool = False) -> str:
    """The YAML text of a template: the same bytes from libyaml's emitter (when PyYAML has it),
    fed nodes made by ``_node``, or from PyYAML's Python representers and emitter
    (``pure_python``); ``tests/test_render.py`` holds them to the same text."""
    if pure_python or _FastCfnDumper is None:
        text: str = yaml.dump(
            data, Dumper=_CfnDumper, sort_keys=False, default_flow_style=False, width=100_000, allow_unicode=True
        )
        return text
    stream = io.StringIO()
    dumper = _FastCfnDumper(stream, default_flow_style=False, width=100_000, allow_unicode=True, sort_keys=False)
    try:
        dumper.open()
        dumper.serialize(_node(data, dumper))
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()


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
    """Replace ``output/<name>`` for each name with exactly the given files (``{name: {relative path:
    text}}``), all or nothing. Raises OSError when the disk refuses; ``output`` is then as it was.

    Nothing under ``output`` is touched until every file is on disk: they are written to a staging
    folder beside ``output`` (``.<output>-staging-*`` in the same parent, so the same filesystem and
    a rename, never a copy, moves it).

    * A full build (``prune``) stages the whole new ``output``: the given folders plus a copy of what
      the tool did not generate there (entries without a ``manifest.json``: a user's notes), so the
      folders of an environment whose file was deleted are dropped (they must not linger and be
      uploaded). Then the stage and ``output`` change places in one step: Linux's
      ``renameat2(RENAME_EXCHANGE)``, atomic, a reader sees the old or the new ``output`` and never a
      mix. Where the kernel or filesystem has no exchange (other systems), two renames (``output``
      aside, the stage in, the old one put back if the second fails): ``output`` is missing for the
      instant between them, never half written.
    * With named folders only (``generate.py --env``), each folder is swapped the same way, one at a
      time: POSIX has no rename of several directories at once, so each folder changes atomically
      on its own, and if one swap fails those already swapped are swapped back before the error
      is raised. Other folders of ``output`` are never touched.
    """
    parent = output.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-staging-", dir=parent))
    try:
        if prune:
            _replace_whole(output, folders, staging)
        else:
            _replace_each(output, folders, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_whole(output: Path, folders: Mapping[str, Mapping[str, str]], staging: Path) -> None:
    new = staging / "new"
    new.mkdir()
    for name, files in folders.items():
        (new / name).mkdir()
        write_tree(files, new / name)
    if output.is_dir():
        for entry in sorted(output.iterdir()):
            generated = (entry / "manifest.json").is_file()
            if entry.name in folders or generated or entry.name.startswith(".staging-"):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, new / entry.name, symlinks=True)
            else:
                shutil.copy2(entry, new / entry.name, follow_symlinks=False)
        new.chmod(output.stat().st_mode & 0o7777)
    _swap_in(new, output, staging / "old")


def _replace_each(output: Path, folders: Mapping[str, Mapping[str, str]], staging: Path) -> None:
    for name, files in folders.items():
        (staging / "new" / name).mkdir(parents=True)
        write_tree(files, staging / "new" / name)
    output.mkdir(exist_ok=True)
    (staging / "old").mkdir()
    done: list[str] = []
    try:
        for name in folders:
            _swap_in(staging / "new" / name, output / name, staging / "old" / name)
            done.append(name)
    except BaseException:
        for name in reversed(done):  # put back what was there (or remove what was not)
            old, target = staging / "old" / name, output / name
            if old.exists():
                _swap_in(old, target, staging / "new" / name)
            else:
                os.replace(target, staging / "new" / name)
        raise


def _swap_in(new: Path, target: Path, aside: Path) -> None:
    """Put folder ``new`` at ``target``; what was at ``target`` ends at ``aside`` (if anything was)."""
    if not target.exists() and not target.is_symlink():
        os.rename(new, target)
        return
    if _exchange(new, target):
        os.rename(new, aside)  # ``new`` now holds the old folder
        return
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE) (man 2 rename); False where
    the system or the filesystem cannot (the caller falls back to two renames)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # a C library without renameat2 (glibc < 2.28, musl < 1.2.?)
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(b))
