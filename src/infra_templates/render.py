"""Deterministic JSON and YAML, laid out like a hand-written template, written atomically."""

from __future__ import annotations

import ctypes
import errno
import io
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

import awacs
import troposphere
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
    raw = _plain_dict(t)
    ordered = {key: raw[key] for key in SECTION_ORDER if key in raw}
    ordered.update({key: value for key, value in raw.items() if key not in ordered})
    if "Resources" in ordered:
        ordered["Resources"] = {
            name: _order(resource, RESOURCE_KEY_ORDER) for name, resource in ordered["Resources"].items()
        }
    return ordered


_SCALARS = frozenset((str, int, bool, type(None)))  # returned as they are (exactly these types)


def _plain_dict(t: Template) -> dict[str, Any]:
    """``t.to_dict()`` (every object validated as troposphere validates it), with troposphere's
    ``encode_to_dict`` replaced for the call by one that leaves alone the lists and dicts it has
    already made plain: troposphere's walks each object's result again at every level above it
    (171,000 calls for the shipped templates' 55,000 values, the most of ``to_dict``'s time).
    Otherwise the same steps in the same order: ``to_dict()`` where an object has one, lists and
    tuples item by item, dicts value by value, ``JSONrepr()`` (awacs' policies), anything else as is.
    The ``to_dict`` of troposphere's objects and intrinsic functions is taken here, step by step,
    and an awacs object goes to ``JSONrepr()`` without looking for a ``to_dict`` its class lacks
    (``_to_dict_kind``: decided once per class; 4 ms of a build). tests/test_render_fast.py and
    tests/test_troposphere_speed.py hold the result, and each error, to troposphere's own."""
    made: dict[int, Any] = {}  # id -> a container made here (kept, so that no other object gets its id)
    scalars = _SCALARS

    def encode(value: Any) -> Any:
        kind = type(value)
        if kind in scalars:
            return value
        if kind is dict or kind is list:  # a plain dict or list has no to_dict: straight to its items
            if made.get(id(value)) is value:
                return value
            plain: Any = (  # a scalar item is kept as it is without a call (half the items)
                {name: prop if type(prop) in scalars else encode(prop) for name, prop in value.items()}
                if kind is dict
                else [item if type(item) in scalars else encode(item) for item in value]
            )
            made[id(plain)] = plain
            return plain
        how = _to_dict_of.get(kind)
        if how is None:
            how = _to_dict_kind(kind)
        if (  # any other object, or one with a to_dict of its own (an attribute, or an awacs property)
            how is _OTHER
            or "to_dict" in (state := value.__dict__)
            or (how is _JSONREPR and "to_dict" in state.get("properties", ()))
        ):
            return _other(value, encode, made)
        if how is _JSONREPR:  # awacs: no to_dict
            return encode(value.JSONrepr())
        if how is _HELPER:  # an intrinsic function: troposphere's AWSHelperFn.to_dict() is encode(data)
            result = encode(value.data)
        else:  # troposphere's BaseAWSObject.to_dict(), its steps here (how: the required names)
            if value.do_validation:
                properties = value.properties
                for name in how:
                    if name not in properties:
                        value._validate_props()  # raises troposphere's own error for the first one missing
                value.validate()
            result = encode(value.resource) if value.properties else value.to_dict(validation=False)
        return result if made.get(id(result)) is result else encode(result)  # most often made here: not walked again

    original = troposphere.encode_to_dict
    troposphere.encode_to_dict = encode
    try:
        raw: dict[str, Any] = t.to_dict()
    finally:
        troposphere.encode_to_dict = original
    return raw


def _other(value: Any, encode: Callable[[Any], Any], made: dict[int, Any]) -> Any:
    """``_plain_dict``'s ``encode`` of any other object: ``to_dict()`` where it has one, a list,
    tuple or dict item by item, ``JSONrepr()``, or the value as it is."""
    if hasattr(value, "to_dict"):
        result = value.to_dict()
        return result if made.get(id(result)) is result else encode(result)
    if isinstance(value, (list, tuple, dict)):
        plain = (
            [encode(item) for item in value]
            if isinstance(value, (list, tuple))
            else {name: encode(prop) for name, prop in value.items()}
        )
        made[id(plain)] = plain
        return plain
    return encode(value.JSONrepr()) if hasattr(value, "JSONrepr") else value


_HELPER: tuple[str, ...] = ("intrinsic function",)
_OTHER: tuple[str, ...] = ("other",)
_JSONREPR: tuple[str, ...] = ("awacs",)
_to_dict_of: dict[type, tuple[str, ...]] = {}  # class -> _HELPER, _OTHER or its required property names


def _to_dict_kind(kind: Any) -> tuple[str, ...]:
    """How ``_plain_dict`` makes an object of class ``kind`` plain: for a troposphere object class
    whose ``to_dict`` and ``_validate_props`` are ``BaseAWSObject``'s (every class of troposphere
    4.11.1), the names of its required properties in ``props`` order (those ``_validate_props``
    checks); ``_HELPER`` for an intrinsic function whose ``to_dict`` is ``AWSHelperFn``'s;
    ``_JSONREPR`` for an awacs class without ``to_dict`` with ``JSONrepr``; else ``_OTHER``
    (``to_dict()``, ``JSONrepr()`` or the value as it is). An object of the first three has a
    ``to_dict`` of its own only as an attribute (or, through awacs' ``__getattr__``, a property):
    ``encode`` checks each one and takes the ``_OTHER`` way for it."""
    base, helper = troposphere.BaseAWSObject, troposphere.AWSHelperFn
    how = _OTHER
    if issubclass(kind, base) and kind.to_dict is base.to_dict and kind._validate_props is base._validate_props:
        how = tuple(name for name, (_, required) in kind.props.items() if required)
    elif issubclass(kind, helper) and kind.to_dict is helper.to_dict:
        how = _HELPER
    elif (
        issubclass(kind, (awacs.AWSObject, awacs.AWSHelperFn))
        and not issubclass(kind, (list, tuple, dict))
        and not hasattr(kind, "to_dict")
        and hasattr(kind, "JSONrepr")
        and getattr(kind, "__getattr__", None) in (None, awacs.AWSObject.__getattr__)
    ):
        how = _JSONREPR
    _to_dict_of[kind] = how
    return how


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
        _json_mapping(value, indent, append)
    elif kind is list:
        _json_sequence(value, indent, append)
    else:
        append(_json_scalar(value))


# The items of a mapping or sequence are dispatched in its own loop (a string, most of them,
# without a call): a call less per value than through _json_chunks.


_JSON_KEY: dict[str, str] = {}  # a key's JSON text and the separator after it, by key: made once in a run


def _json_key(key: str) -> str:
    text = _JSON_KEY[key] = _json_string(key) + ": "
    return text


def _json_mapping(value: dict[Any, Any], indent: str, append: Callable[[str], None]) -> None:
    if not value:
        append("{}")
        return
    inner = indent + " "
    separator = "{\n" + inner
    keys = _JSON_KEY
    for key, item in value.items():
        if type(key) is not str:
            raise _NotPlainError
        append(separator)
        append(keys.get(key) or _json_key(key))
        kind = type(item)
        if kind is str:
            append(_json_string(item))
        elif kind is dict:
            _json_mapping(item, inner, append)
        elif kind is list:
            _json_sequence(item, inner, append)
        else:
            append(_json_scalar(item))
        separator = ",\n" + inner
    append("\n" + indent + "}")


def _json_sequence(value: list[Any], indent: str, append: Callable[[str], None]) -> None:
    if not value:
        append("[]")
        return
    inner = indent + " "
    separator = "[\n" + inner
    for item in value:
        append(separator)
        kind = type(item)
        if kind is str:
            append(_json_string(item))
        elif kind is dict:
            _json_mapping(item, inner, append)
        elif kind is list:
            _json_sequence(item, inner, append)
        else:
            append(_json_scalar(item))
        separator = ",\n" + inner
    append("\n" + indent + "]")


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
    """The YAML text of a template: the bytes libyaml's emitter writes when fed the nodes ``_node``
    makes (PyYAML's representers, made directly), written by ``_direct_yaml`` where it can
    (everything but rare scalars: a float, a tab, a non-ASCII character...), by libyaml itself
    otherwise, or by PyYAML's Python representers and emitter (``pure_python``).
    ``tests/test_render.py`` and ``tests/test_render_fast.py`` hold them to the same text."""
    if pure_python or _FastCfnDumper is None:
        text: str = yaml.dump(
            data, Dumper=_CfnDumper, sort_keys=False, default_flow_style=False, width=100_000, allow_unicode=True
        )
        return text
    direct = _direct_yaml(data)
    return direct if direct is not None else _libyaml_yaml(data)


def _libyaml_yaml(data: Any) -> str:
    """libyaml's C emitter fed the nodes ``_node`` makes."""
    stream = io.StringIO()
    dumper = _FastCfnDumper(stream, default_flow_style=False, width=100_000, allow_unicode=True, sort_keys=False)
    try:
        dumper.open()
        dumper.serialize(_node(data, dumper))
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()


# --- the direct YAML writer -------------------------------------------------------------------
#
# libyaml, fed nodes, spent most of a build's rendering time calling back into Python (a resolver
# per scalar, twice) and the nodes themselves had to be made (61,000 for the shipped templates).
# A template is a small language: mappings with string keys, sequences, strings, integers,
# booleans, null, short-form intrinsics. Its block layout (two spaces, sequences in a mapping not
# indented, a collection in a sequence started on the dash's line, empty ones as {} and []) is
# written here directly; each distinct scalar's style (plain, quoted, literal block) is decided
# once by PyYAML's own analysis and resolver, as its emitter decides it. Anything outside that
# language (a float, a tab or another character needing escapes, a non-ASCII character, a key of
# 128 characters or more, a "|+" block) sends the whole template to libyaml: same text, slower.


class _NotDirectError(Exception):
    """A value ``_direct_yaml`` leaves to libyaml."""


_ANALYSER = yaml.emitter.Emitter(io.StringIO(), allow_unicode=True)  # only its analyze_scalar, which keeps no state
_RESOLVER = yaml.resolver.Resolver()
_LITERAL = "|"  # _scalar's answer for a literal block, written by _literal at its indent
_FLOAT = "tag:yaml.org,2002:float"
_MAX_PLAIN = 10_000  # far below the width (100,000) at which the emitter would fold a line
_MAX_KEY = 100  # libyaml writes a key of more than 128 characters as "? key"


@cache
def _scalar(value: str, key: bool) -> str:
    """The text of an untagged string (a mapping key when ``key``), as PyYAML's emitter chooses its
    style (``Emitter.choose_scalar_style``): plain where the text reads back as the same string,
    else single-quoted; a multi-line value as a literal block (``_LITERAL``)."""
    if len(value) > (_MAX_KEY if key else _MAX_PLAIN) or not _printable(value):
        raise _NotDirectError  # a long key is no simple key ("? key"), a line may be folded, characters escaped
    if "\n" not in value:
        if value and _block_plain(value) and _reads_as_string(value):
            return value
        return "'" + value.replace("'", "''") + "'"
    if key or not _allows_block(value):
        raise _NotDirectError  # a multi-line key, or a text only double quotes can hold
    if value.endswith("\n") and (len(value) == 1 or value[-2] == "\n"):
        raise _NotDirectError  # "|+": the emitter ends the document with "..."
    return _LITERAL


def _printable(value: str) -> bool:
    """Every character printable ASCII (space to ``~``) or a line break, asked of str's own C
    methods (a set lookup per character took a third of the time of deciding the styles)."""
    return value.isascii() and value.replace("\n", " ").isprintable()


def _reads_as_string(value: str) -> bool:
    """``_RESOLVER.resolve(ScalarNode, value, (True, False)) == _STR`` for a non-empty text: PyYAML
    tries only the implicit resolvers of its first character (and any for every character), then
    its path resolvers; with none of them it is a string without trying (most keys and names)."""
    resolvers = _RESOLVER.yaml_implicit_resolvers
    if value[0] not in resolvers and None not in resolvers and not _RESOLVER.yaml_path_resolvers:
        return True
    return bool(_RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR)


# What PyYAML's ``Emitter.analyze_scalar`` finds of a one-line printable ASCII text: a block
# indicator ("---" or "..." first, an indicator character first, "? ", ": ", "- " first, ": " or a
# final ":", " #") or a space at either end rules out a plain scalar in block context
# (_block_plain); a flow indicator (any of ",?[]{}:") also in flow context.
# tests/test_render_fast.py holds them to analyze_scalar's answers.
_FLOW_INDICATOR = re.compile(r"[,?\[\]{}:]")


def _allows_block(value: str) -> bool:
    """``analyze_scalar(value).allow_block`` for a printable ASCII text (line breaks allowed): no
    space at its end and none just before a line break (its ``trailing_space`` and ``space_break``;
    its ``special_characters`` cannot be found in such a text). analyze_scalar's loop over every
    character took about 1 ms for each long literal block (a function's code, a dashboard's body)."""
    return not value.endswith(" ") and " \n" not in value


def _block_plain(value: str) -> bool:
    """``analyze_scalar(value).allow_block_plain`` for a non-empty one-line printable ASCII text, by
    str's own searches (a regex of the same alternatives took twice as long)."""
    first = value[0]
    return not (
        first in _INDICATORS
        or (first in "?:-" and (len(value) == 1 or value[1] == " "))
        or value.startswith(("---", "..."))
        or ": " in value
        or " #" in value
        or value.endswith((":", " "))
    )


_INDICATORS = frozenset("#,[]{}&*!|>'\"%@` ")  # a first character ruling out a plain scalar (" ": a space first)


def _flow_plain(value: str) -> bool:
    """``analyze_scalar(value).allow_flow_plain`` for a non-empty one-line printable ASCII text."""
    return _block_plain(value) and _FLOW_INDICATOR.search(value) is None


@cache
def _tagged(tag: str, value: str) -> str:
    """``!Tag value`` of a short-form intrinsic's string, in ``_tagged_style``'s style: plain where
    plain is unambiguous in block and flow context, else single-quoted."""
    if len(value) > _MAX_PLAIN or not _printable(value) or "\n" in value or not tag[1:].isalnum():
        raise _NotDirectError
    if value and _flow_plain(value):
        return f"{tag} {value}"
    return tag + " '" + value.replace("'", "''") + "'"


def _literal(value: str, indent: str) -> str:
    """A literal block's header and lines (``Emitter.write_literal``), its lines at ``indent``."""
    hints = ("2" if value[0] in " \n" else "") + ("" if value.endswith("\n") else "-")
    lines = (value[:-1] if value.endswith("\n") else value).split("\n")
    return "|" + hints + "\n" + "".join(indent + line + "\n" if line else "\n" for line in lines)


def _direct_yaml(data: Any) -> str | None:
    """The text libyaml writes for ``data`` (a template: a mapping), or None for what it leaves to libyaml."""
    out: list[str] = []
    try:
        if type(data) is not dict or not data or (len(data) == 1 and _intrinsic(data) is not None):
            return None
        _mapping(data, "", out, False)
    except _NotDirectError:
        return None
    return "".join(out)


def _intrinsic(data: dict[str, Any]) -> tuple[str, Any] | None:
    """A one-key mapping written in short form (``_short_form``'s choice): its tag and value."""
    ((key, value),) = data.items()
    if type(key) is not str:
        raise _NotDirectError
    if key == "Ref" and type(value) is str:
        return "!Ref", value
    if key == "Fn::GetAtt" and type(value) is list and all(type(v) is str for v in value):
        return "!GetAtt", ".".join(value)
    if (key.startswith("Fn::") or key == "Condition") and type(value) in (list, dict, str):
        return "!" + key.removeprefix("Fn::"), value
    return None


# Texts of the direct writer by string, made once in a run (the same keys and values recur in
# every template): a key with its colon (``Type:``), a value after its key (`` AWS::SQS::Queue`` and
# the line break), a sequence item with its dash (``- sqs:SendMessage`` and the line break). A
# literal block (its lines at an indent) is written each time.
_KEY_TEXT: dict[str, str] = {}
_VALUE_LINE: dict[str, str] = {}
_ITEM_LINE: dict[str, str] = {}


def _key_text(key: str) -> str:
    text = _KEY_TEXT[key] = _scalar(key, True) + ":"
    return text


def _mapping(data: dict[str, Any], indent: str, out: list[str], inline: bool) -> None:
    """The entries of a non-empty mapping at ``indent``; the first on the current line when ``inline``."""
    keys, lines = _KEY_TEXT, _VALUE_LINE
    for key, value in data.items():
        if type(key) is not str:
            raise _NotDirectError
        if inline:
            inline = False
        else:
            out.append(indent)
        out.append(keys.get(key) or _key_text(key))
        kind = type(value)
        if kind is str:  # most values: _value's first case, written here without the call
            line = lines.get(value)
            if line is None:
                text = _scalar(value, False)
                if text is _LITERAL:
                    out.append(" " + _literal(value, indent + "  "))
                    continue
                line = lines[value] = " " + text + "\n"
            out.append(line)
        elif kind is dict:  # the next most: straight to _value's case of a mapping
            _dict_value(value, indent, out, True)
        else:
            _value(value, indent, out, True)


def _sequence(data: list[Any], indent: str, out: list[str], inline: bool) -> None:
    """The items of a non-empty sequence, dashes at ``indent``; the first on the current line when ``inline``."""
    lines = _ITEM_LINE
    for item in data:
        if inline:
            inline = False
        else:
            out.append(indent)
        kind = type(item)
        if kind is str:  # as _value writes it, without the call
            line = lines.get(item)
            if line is None:
                text = _scalar(item, False)
                if text is _LITERAL:
                    out.append("- " + _literal(item, indent + "  "))
                    continue
                line = lines[item] = "- " + text + "\n"
            out.append(line)
        elif kind is dict:
            out.append("- ")
            _dict_value(item, indent, out, False)
        else:
            out.append("- ")
            _value(item, indent, out, False)


def _value(value: Any, indent: str, out: list[str], in_mapping: bool) -> None:
    """A mapping's value after ``key:`` (``in_mapping``) or a sequence's item after ``- ``, the
    collection's entries being at ``indent``."""
    space = " " if in_mapping else ""
    kind = type(value)
    if kind is str:
        text = _scalar(value, False)
        out.append(space + (_literal(value, indent + "  ") if text is _LITERAL else text + "\n"))
    elif kind is dict:
        _dict_value(value, indent, out, in_mapping)
    elif kind is list:
        if not value:
            out.append(space + "[]\n")
        elif in_mapping:
            out.append("\n")
            _sequence(value, indent, out, False)
        else:
            _sequence(value, indent + "  ", out, True)
    elif kind is bool:
        out.append(space + ("true\n" if value else "false\n"))
    elif kind is int:
        out.append(space + int.__repr__(value) + "\n")
    elif value is None:
        out.append(space + "null\n")
    elif kind is float:
        out.append(space + _float(value) + "\n")
    else:
        raise _NotDirectError


def _dict_value(value: dict[str, Any], indent: str, out: list[str], in_mapping: bool) -> None:
    """``_value`` of a mapping: a block mapping, ``{}``, or a short-form intrinsic."""
    space = " " if in_mapping else ""
    if not value:
        out.append(space + "{}\n")
        return
    short = _intrinsic(value) if len(value) == 1 else None
    if short is None:
        if in_mapping:
            out.append("\n")
            _mapping(value, indent + "  ", out, False)
        else:
            _mapping(value, indent + "  ", out, True)
        return
    tag, inner = short
    if type(inner) is str:
        out.append(space + _tagged(tag, inner) + "\n")
    elif not tag[1:].isalnum():
        raise _NotDirectError
    elif not inner:
        out.append(space + tag + (" {}\n" if type(inner) is dict else " []\n"))
    elif type(inner) is dict:
        out.append(space + tag + "\n")
        _mapping(inner, indent + "  ", out, False)
    else:
        out.append(space + tag + "\n")
        _sequence(inner, indent if in_mapping else indent + "  ", out, False)


def _float(value: float) -> str:
    """A float as PyYAML's representer writes it (``repr``, lower-case), where that text is plain
    and reads back as a float (60.0, 0.5); NaN, infinities and exponents are left to libyaml."""
    text = repr(value).lower()
    if not math.isfinite(value) or not _plain_float(text):
        raise _NotDirectError
    return text


@cache  # by text: a cache by value would take -0.0 for 0.0 (equal, same hash)
def _plain_float(text: str) -> bool:
    return "e" not in text and _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _FLOAT


# --- what is derived from a template's data, once ----------------------------------------------

# id(body) -> (body, {what: result}); set inside keep_derived() (pipeline.build_once). Each
# environment's stacks are asked for several times (its folder, its DR pair's, the deployer's, the
# infrastructure pipeline's), each time as new objects around the same template data: its texts
# and what is read from them are made once. The body is kept with its results, so its id is not
# reused by another while the block lasts.
_DERIVED: ContextVar[dict[int, tuple[Any, dict[str, Any]]] | None] = ContextVar("derived", default=None)


@contextmanager
def keep_derived() -> Iterator[None]:
    """Within this block, ``once`` keeps what it derives from each template's data (which must not
    change in the block); outside it nothing is kept."""
    token = _DERIVED.set({})
    try:
        yield
    finally:
        _DERIVED.reset(token)


def once(body: Any, what: str, derive: Callable[[Any], Any]) -> Any:
    """``derive(body)``, made once per body (and ``what``) inside keep_derived(), every time outside."""
    derived = _DERIVED.get()
    if derived is None:
        return derive(body)
    entry = derived.get(id(body))
    if entry is None or entry[0] is not body:
        entry = derived[id(body)] = (body, {})
    if what not in entry[1]:
        entry[1][what] = derive(body)
    return entry[1][what]


def made(body: Any, what: str) -> Any | None:
    """What ``once(body, what, ...)`` has already made inside keep_derived(), or None."""
    derived = _DERIVED.get()
    entry = derived.get(id(body)) if derived is not None else None
    return entry[1].get(what) if entry is not None and entry[0] is body else None


# --- writing ----------------------------------------------------------------------------------


def write_tree(files: Mapping[str, str], staging: Path, previous: Path | None = None) -> None:
    """Write ``{relative path: text}`` below ``staging`` (which must be empty or missing).

    Scripts (``*.sh``) are made executable; everything else is written with the usual mode. A file
    that ``previous`` (the folder being replaced) already holds with exactly these bytes, this mode
    and no other link is linked into ``staging`` instead of written again (:func:`_link_unchanged`).
    """
    # os.open/os.write: pathlib's write_text builds a text wrapper and an encoder for each file,
    # a third of the time of writing some 200 files; each folder is made once.
    made: set[Path] = set()
    mask = _umask()
    # The folders of ``previous`` that are its own (no link on the way to elsewhere), by relative path
    real: dict[str, bool] = {}
    root = os.path.realpath(previous) if previous is not None else ""
    for relative, text in sorted(files.items()):
        path = staging / relative
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        encoded = text.encode("utf-8")
        mode = 0o755 if path.suffix == ".sh" else 0o666 & ~mask
        if previous is not None:
            folder = os.path.dirname(relative)
            if folder not in real:
                real[folder] = os.path.realpath(previous / folder) == os.path.normpath(os.path.join(root, folder))
            if real[folder] and _link_unchanged(previous / relative, path, encoded, mode):
                continue
        data = memoryview(encoded)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            while data:
                data = data[os.write(descriptor, data) :]
            if path.suffix == ".sh":
                os.fchmod(descriptor, 0o755)
        finally:
            os.close(descriptor)


def _umask() -> int:
    """The process's file mode creation mask (read by setting it, then setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _link_unchanged(old: Path, new: Path, data: bytes, mode: int) -> bool:
    """Hard-link ``old`` at ``new`` when ``old`` is a regular file of this user holding exactly
    ``data`` with permissions ``mode`` and no other link (so that once the folder holding ``old``
    is removed, as a replaced folder is, ``new`` is as independent as a file written anew); False,
    and nothing done, otherwise.

    Most of a build's files are the same as the last build's, and creating a file costs far more
    than reading one: ext4 searches its inode tables for a free inode not recently freed (the
    files a build just retired), which took 17% of the CPU of a build of every shipped environment
    (`perf record`: ext4_create, recently_deleted). A link keeps the bytes, the permissions and the
    modification time of the last build's file; every file's content is the build's own."""
    try:
        descriptor = os.open(old, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        status = os.fstat(descriptor)
        if (
            not stat.S_ISREG(status.st_mode)
            or status.st_size != len(data)
            or status.st_nlink != 1
            or stat.S_IMODE(status.st_mode) != mode
            or status.st_uid != os.geteuid()
        ):
            return False
        chunks = []
        while chunk := os.read(descriptor, len(data) + 1):
            chunks.append(chunk)
        if b"".join(chunks) != data:
            return False
        try:
            os.link(old, new, follow_symlinks=False)
        except OSError:  # a filesystem without hard links, or one that refuses this one
            return False
        if os.stat(new, follow_symlinks=False).st_ino != status.st_ino:  # old was replaced meanwhile
            os.unlink(new)
            return False
        return True
    finally:
        os.close(descriptor)


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
        write_tree(files, new / name, _previous(output / name))
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
        write_tree(files, staging / "new" / name, _previous(output / name))
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


def _previous(folder: Path) -> Path | None:
    """The folder a new one replaces, when it is a real folder (not a link to one elsewhere)."""
    return folder if folder.is_dir() and not folder.is_symlink() else None


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
