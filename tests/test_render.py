"""The YAML writer: libyaml's C emitter (fast) and PyYAML's Python emitter write the same bytes."""

from __future__ import annotations

import pytest
import yaml
from conftest import all_stacks

from infra_templates import render


def test_pyyaml_has_libyaml_so_the_fast_emitter_is_used() -> None:
    assert yaml.__with_libyaml__, "PyYAML without libyaml: generation falls back to the 5x slower Python emitter"
    assert render._FastCfnDumper is not None


@pytest.mark.parametrize(("env", "layer", "stack"), all_stacks(), ids=lambda v: v if isinstance(v, str) else "")
def test_fast_and_pure_python_yaml_are_identical(env, layer, stack) -> None:
    assert render.to_yaml(stack.body) == render.to_yaml(stack.body, pure_python=True)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"Ref": "Vpc"}, "A: !Ref Vpc\n"),
        ({"Ref": "AWS::AccountId"}, "A: !Ref 'AWS::AccountId'\n"),
        ({"Fn::GetAtt": ["Vpc", "CidrBlock"]}, "A: !GetAtt Vpc.CidrBlock\n"),
        ({"Fn::Sub": "arn:${AWS::Partition}:s3:::x"}, "A: !Sub 'arn:${AWS::Partition}:s3:::x'\n"),
        ({"Fn::Sub": ""}, "A: !Sub ''\n"),
        ("line one\nline two", "A: |-\n  line one\n  line two\n"),
    ],
)
def test_short_form_intrinsics_are_plain_only_where_unambiguous(value, text) -> None:
    for pure_python in (False, True):
        assert render.to_yaml({"A": value}, pure_python=pure_python) == text
