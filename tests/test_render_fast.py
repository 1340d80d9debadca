"""The fast writers (to_json's own encoder, to_yaml's direct nodes for libyaml) write exactly what
the standard library's json.dumps and PyYAML's own representers write."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import troposphere
import yaml
from conftest import SETTINGS, Generated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from troposphere import Template

import generate
from infra_templates import config, pipeline, render

ENCODE_TO_DICT = troposphere.encode_to_dict

ODD_VALUES = [
    {},
    [],
    {"a": {}, "b": [], "c": [[]], "d": [{}]},
    {"Description": 'quotes " and \\ and tabs \t and é, ü, 中文 and \u2028'},
    {"n": 0, "neg": -7, "big": 10**20, "t": True, "f": False, "none": None, "float": 0.5, "e": 1e17},
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "tiny": 1e-7, "neg": -0.0},
    {"tuple": (1, 2)},  # not a template type: json.dumps writes it
    {1: "an integer key"},  # json.dumps makes it "1"
    {"Fn::GetAtt": ["A", 1]},
    {"Ref": 3},
    {"Fn::Sub": ["${A}", {"A": "x"}]},
    {"Fn::If": ["C", {"Ref": "AWS::NoValue"}, "yes"]},
    {"Condition": "IsProd"},
    {"k": "multi\nline\n"},
    {"k": "true", "l": "123", "m": "", "n": "null", "o": "- dash", "p": "a: b"},
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_to_json_writes_what_json_dumps_writes(value: object) -> None:
    assert render.to_json(value) == json.dumps(value, indent=1, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("value", [v for v in ODD_VALUES if "tuple" not in v and 1 not in v], ids=str)
def test_to_yaml_writes_what_pyyaml_writes(value: object) -> None:
    """What libyaml writes when PyYAML's representers feed it (the writer before this one), and,
    but for a lone scalar (libyaml leaves out the "..." after it), what PyYAML's emitter writes."""
    before = yaml.dump(
        value,
        Dumper=render._FastCfnDumper,
        sort_keys=False,
        default_flow_style=False,
        width=100_000,
        allow_unicode=True,
    )
    assert render.to_yaml(value) == before
    if render.to_yaml(value, pure_python=True).endswith("\n...\n"):
        assert len(value) == 1 and isinstance(value, dict)  # {"Ref": x} and the like: a scalar
    else:
        assert render.to_yaml(value) == render.to_yaml(value, pure_python=True)


def test_to_yaml_refuses_a_key_that_is_not_a_string_as_pyyaml_does() -> None:
    with pytest.raises(AttributeError):
        render.to_yaml({1: "x"})
    with pytest.raises(AttributeError):
        render.to_yaml({1: "x"}, pure_python=True)


def test_shipped_output_is_the_same_by_either_writer(generated: Generated) -> None:
    """Every template and manifest a build writes (the session's build of the fixtures): the fast
    and the reference writers agree."""
    for path in sorted(generated.output.glob("*/*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert path.read_text(encoding="utf-8") == json.dumps(data, indent=1, ensure_ascii=False) + "\n", path
        if path.with_suffix(".yaml").is_file():
            assert render.to_yaml(data) == render.to_yaml(data, pure_python=True), path
            # written by the direct writer (render._direct_yaml), none of them left to libyaml
            assert render._direct_yaml(data) == path.with_suffix(".yaml").read_text(encoding="utf-8"), path


def test_settings_read_by_libyaml_are_those_pyyaml_reads() -> None:
    for path in sorted(SETTINGS.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=config._FastStrictLoader) == yaml.load(text, Loader=config._StrictLoader)
    assert config._FastStrictLoader is not config._StrictLoader  # libyaml is there: the fast one is used


# --- the direct YAML writer against libyaml ---------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list("aZ09 -:#'\"|>!&*?{}[],%@`~.\n_/$")), max_size=12)
_INTRINSICS = ["Ref", "Fn::Sub", "Fn::GetAtt", "Fn::Join", "Condition", "Fn::If"]
_KEY = st.one_of(_TEXT.map(lambda t: t.replace("\n", " ")), st.sampled_from(_INTRINSICS))
_SCALAR = st.one_of(
    _TEXT,
    st.sampled_from(["true", "no", "1.5", "0x1F", "~", "null", "2026-11-30", "- a", "a: b", "---", " y\n", "a\n\nb"]),
    st.integers(),
    st.booleans(),
    st.none(),
    st.sampled_from([0.5, 60.0, -0.0, 1e17]),
)
_TREE = st.recursive(
    _SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEY, inner, max_size=4), max_leaves=25
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEY, _TREE, min_size=1, max_size=5))
def test_the_direct_yaml_writer_writes_what_libyaml_writes(data: dict[str, object]) -> None:
    direct = render._direct_yaml(data)
    if direct is not None:  # None: left to libyaml (an exponent, a line ending in space...)
        assert direct == render._libyaml_yaml(data)


@pytest.mark.parametrize(
    "value", [{"a": "tab\there"}, {"é": 1}, {"a": "x\n\n"}, {"a": 1e17}, {"x" * 130: 1}, {"a": {"Ref": "a\u2028"}}]
)
def test_the_direct_yaml_writer_leaves_what_it_does_not_write_to_libyaml(value: dict[str, object]) -> None:
    assert render._direct_yaml(value) is None
    assert render.to_yaml(value) == render._libyaml_yaml(value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("a0 -:#?'\"!&*,[]{}|>%@`.")), min_size=1, max_size=8))
def test_the_plain_patterns_are_pyyamls_analysis(text: str) -> None:
    analysis = render._ANALYSER.analyze_scalar(text)
    assert render._block_plain(text) == analysis.allow_block_plain
    assert render._flow_plain(text) == analysis.allow_flow_plain


def test_template_dict_is_troposphere_s_own_to_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every template of a build: render's encoder (which does not walk again what it made plain)
    gives what troposphere's own ``Template.to_dict()`` gives, and leaves troposphere's in place."""
    compared: list[str] = []
    original = render.template_dict

    def both(template: Template) -> dict[str, object]:
        ours = original(template)
        assert troposphere.encode_to_dict is ENCODE_TO_DICT
        theirs = template.to_dict()
        assert json.dumps(render._plain_dict(template)) == json.dumps(theirs)
        assert ours == {**render._order(theirs, render.SECTION_ORDER), "Resources": ours.get("Resources", {})}
        compared.append(template.description or "")
        return ours

    monkeypatch.setattr(pipeline, "template_dict", both)
    assert generate.run_build(None, SETTINGS, tmp_path, quiet=True) == 0
    assert len(compared) > 50


def test_the_block_plain_test_is_pyyamls_analysis_on_every_short_text() -> None:
    """_block_plain (str searches) against analyze_scalar on every text of up to three characters
    of the indicators, a letter, a digit and a space: each first-character, pair and ending rule."""
    alphabet = "a0 -:#?'\"!&*,[]{}|>%@`."
    texts = ["".join(chars) for n in (1, 2, 3) for chars in itertools.product(alphabet, repeat=n)]
    for text in [*texts, "----", "....", "a:b", "a :", "a#b", "a # b"]:
        analysis = render._ANALYSER.analyze_scalar(text)
        assert render._block_plain(text) == analysis.allow_block_plain, text


def test_printable_is_printable_ascii_or_a_line_break() -> None:
    allowed = {chr(c) for c in range(0x20, 0x7F)} | {"\n"}
    for code in [*range(0x3000), 0xD800, 0xFEFF, 0x1F600, 0x10FFFF]:  # ASCII, Latin, controls, spaces, beyond
        assert render._printable(chr(code)) == (chr(code) in allowed), hex(code)
    assert render._printable("") and render._printable("a b\nc~") and not render._printable("a\tb")


def test_a_text_reads_as_a_string_as_pyyamls_resolver_says(generated: Generated) -> None:
    """_reads_as_string skips the resolver where no implicit resolver starts with the text's first
    character: the same answer as the resolver on every string of the shipped templates and odd ones."""
    texts: set[str] = set()

    def collect(node: object) -> None:
        if isinstance(node, str):
            texts.add(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                collect(key)
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    for path in generated.output.glob("*/*.json"):
        collect(json.loads(path.read_text()))
    odd = ["true", "No", "~", "null", "1.5", "0x1F", "2026-11-30", "+1", ".inf", "<<", "=", "y", "Yes", "OFF"]
    assert len(texts) > 1000
    for text in [*texts, *odd]:
        if text:
            expected = render._RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str"
            assert render._reads_as_string(text) == expected, text
