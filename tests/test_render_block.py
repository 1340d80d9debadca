"""render._allows_block is PyYAML's own answer (Emitter.analyze_scalar's allow_block) for every
printable ASCII text with line breaks: the direct YAML writer's choice of a literal block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from infra_templates import render


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("a0 -:#'\"|\n")), min_size=1, max_size=12))
def test_allows_block_is_pyyamls_analysis(text: str) -> None:
    assert render._allows_block(text) == render._ANALYSER.analyze_scalar(text).allow_block


def test_a_literal_block_with_a_space_before_a_line_break_is_left_to_libyaml() -> None:
    for value in ({"a": "x \ny\n"}, {"a": "x\ny "}):
        assert render._direct_yaml(value) is None
        assert render.to_yaml(value) == render._libyaml_yaml(value)
    assert render._direct_yaml({"a": "x\n y\n"}) == render._libyaml_yaml({"a": "x\n y\n"})
