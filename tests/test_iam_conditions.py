"""Every policy statement keeps all the conditions the code gives it.

awacs' ``Condition`` writes each element as ``{operator: {key: value}}`` into one mapping, so two
elements of one operator (two ``StringEquals``) kept only the last key: a KMS key policy lost its
``kms:CallerAccount``, and the deployer's replica-key grant its tag conditions. ``iam.condition``
merges them; a build of every fixture environment is watched for any Condition block that would
still drop one."""

from __future__ import annotations

from pathlib import Path

import awacs.aws
import pytest
from awacs.aws import ArnLike, StringEquals
from conftest import generate_main

from infra_templates import iam


def test_elements_of_one_operator_are_merged_and_a_clash_is_refused() -> None:
    merged = iam.condition(
        [StringEquals("kms:CallerAccount", "1"), ArnLike("aws:SourceArn", "a"), StringEquals("kms:ViaService", "s")]
    ).JSONrepr()
    assert merged == {
        "StringEquals": {"kms:CallerAccount": "1", "kms:ViaService": "s"},
        "ArnLike": {"aws:SourceArn": "a"},
    }
    assert iam.condition([StringEquals("k", "v"), StringEquals("k", "v")]).JSONrepr() == {"StringEquals": {"k": "v"}}
    with pytest.raises(ValueError, match="StringEquals names k twice with different values"):
        iam.condition([StringEquals("k", "v"), StringEquals("k", "w")])


def test_no_statement_of_any_built_template_drops_a_condition(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dropped: list[list[tuple[str, dict]]] = []
    original = awacs.aws.Condition.JSONrepr

    def watched(self: awacs.aws.Condition) -> dict:
        operators = [element.condition for element in self.conditions]
        if len(operators) != len(set(operators)):
            dropped.append([(element.condition, element.get_dict()) for element in self.conditions])
        return original(self)

    monkeypatch.setattr(awacs.aws.Condition, "JSONrepr", watched)
    status, _, err = generate_main("--quiet", "--diagrams", "none", "--output", str(tmp_path / "out"))
    assert status == 0, err
    assert dropped == []
    # the watch itself sees a drop (else the assertion above proves nothing)
    awacs.aws.Condition([StringEquals("a", "1"), StringEquals("b", "2")]).JSONrepr()
    assert len(dropped) == 1
