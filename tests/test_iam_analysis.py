"""The gate's IAM analysis: findings on policies that break the rules, none on policies that keep
them, the accepted list honest (each entry with a reason, each still needed), the output clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra_templates import checks, iam_analysis

GOLDEN = Path(__file__).parent / "golden"


def golden_policies() -> tuple[tuple[str, str], ...]:
    files = checks.template_files(checks.load_manifests(GOLDEN))
    return tuple((str(f.path), f.stack) for f in files if f.path.suffix == ".json")


def role(*statements: dict) -> dict:
    return {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Statement": [{"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "sts:AssumeRole"}]
                    },
                    "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": list(statements)}}],
                },
            }
        }
    }


def allow(sid: str, actions: list[str], resource: object = "*") -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}


def findings(body: dict) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(f.check, f.sid, f.actions) for f in iam_analysis.analyse_template(body, "shop-dev-x")}


# --- what breaks the rules, and what keeps them --------------------------------------------------


def test_star_on_an_action_that_takes_a_resource_is_a_finding() -> None:
    body = role(allow("ReadEverything", ["s3:GetObject", "ec2:DescribeSecurityGroups"]))
    # ec2:DescribeSecurityGroups has no resource type in IAM's data: "*" is its only way, no finding.
    assert findings(body) == {("resource-wildcard", "ReadEverything", ("s3:GetObject",))}


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (["sqs:*"], {("resource-wildcard", ("sqs:*",)), ("permissions-management", ("sqs:*",))}),
        (["s3:Get*"], {("resource-wildcard", ("s3:Get*",))}),
        (["*"], {("resource-wildcard", ("*",)), ("permissions-management", ("*",))}),
        # every action this pattern matches has no resource type: "*" is their only way
        (["ecr:GetAuthorization*"], set()),
    ],
)
def test_a_wildcard_action_is_judged_by_every_action_it_matches(actions: list[str], expected: set) -> None:
    assert {(check, acts) for check, _, acts in findings(role(allow("Wide", actions)))} == expected


def test_allow_with_not_action_is_a_finding() -> None:
    statement = {"Sid": "AllBut", "Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"}
    assert findings(role(statement)) == {("not-action", "AllBut", ("iam:*",))}


def test_the_same_actions_scoped_to_an_arn_keep_the_rules() -> None:
    body = role(allow("ReadOneBucket", ["s3:GetObject"], ["arn:aws:s3:::bucket/*"]))
    assert findings(body) == set()


def test_a_create_conditioned_on_the_resources_tags_is_a_finding() -> None:
    """From an audit against AWS's documentation: the deployer granted CreateLoadBalancer,
    CreateDistribution, PutMetricAlarm... only on resources tagged with the environment, which a
    resource being created never is: every first create would have been denied. A create is granted
    on aws:RequestTag or without a tag condition; the existing resources' actions keep theirs."""
    arn = "arn:aws:elasticloadbalancing:eu-west-1:111111111111:loadbalancer/app/shop-dev-*"
    tagged = {"StringEquals": {"aws:ResourceTag/Project": "shop", "aws:ResourceTag/Environment": "dev"}}
    creating = ["elasticloadbalancing:CreateLoadBalancer", "cloudfront:CreateDistribution", "cloudwatch:PutMetricAlarm"]
    existing = [
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "ec2:CreateRoute",
        "elasticloadbalancing:RegisterTargets",
    ]
    body = role({**allow("ByTag", [*creating, *existing], arn), "Condition": tagged})
    assert findings(body) == {("create-on-resource-tag", "ByTag", tuple(sorted(creating)))}
    on_request = {"StringEquals": {"aws:RequestTag/Project": "shop"}}
    assert findings(role({**allow("OnRequest", creating, arn), "Condition": on_request})) == set()
    absent = {"Null": {"aws:ResourceTag/Project": "true"}}  # a Null test may ask for no tag at all
    assert findings(role({**allow("Untagged", creating, arn), "Condition": absent})) == set()
    for action in creating:
        assert iam_analysis.creates(action), action
    for action in [*existing, "elasticloadbalancing:*", "nosuch:CreateThing"]:
        assert not iam_analysis.creates(action), action


def test_a_misspelt_action_is_a_finding_in_any_policy() -> None:
    body = role(allow("Typo", ["s3:GetObjekt", "s3:Get*", "s3:Nothing*"], ["arn:aws:s3:::bucket/*"]))
    body["Resources"]["Key"] = {
        "Type": "AWS::KMS::Key",
        "Properties": {"KeyPolicy": {"Statement": [allow("KeyTypo", ["kms:Decrypts"])]}},
    }
    assert findings(body) == {
        ("unknown-action", "Typo", ("s3:GetObjekt", "s3:Nothing*")),
        ("unknown-action", "KeyTypo", ("kms:Decrypts",)),
    }


def test_permissions_management_is_a_finding_and_a_key_policys_star_is_not() -> None:
    body = role(allow("PassOne", ["iam:PassRole"], ["arn:aws:iam::111111111111:role/x"]))
    # In a key policy "*" means the key itself: only identity policies are judged on "*".
    body["Resources"]["Key"] = {
        "Type": "AWS::KMS::Key",
        "Properties": {"KeyPolicy": {"Statement": [allow("UseTheKey", ["kms:Decrypt"])]}},
    }
    assert findings(body) == {("permissions-management", "PassOne", ("iam:PassRole",))}


def test_deny_statements_are_never_findings() -> None:
    body = role({"Sid": "NoPlainHttp", "Effect": "Deny", "Action": ["s3:*", "iam:PassRole"], "Resource": "*"})
    assert findings(body) == set()


# --- the accepted list ---------------------------------------------------------------------------


def test_an_accepted_entry_covers_only_its_actions(tmp_path: Path) -> None:
    body = role(allow("PassOne", ["iam:PassRole", "iam:AttachRolePolicy"], ["arn:aws:iam::1:role/x"]))
    accepted = tmp_path / "accepted.yaml"
    accepted.write_text(
        "- {check: permissions-management, stack: '*-x', resource: Role, sid: PassOne, actions: [iam:PassRole],"
        " reason: passes one role}\n"
    )
    left, used = iam_analysis.unaccepted(
        iam_analysis.analyse_template(body, "shop-dev-x"), iam_analysis.load_accepted(accepted)
    )
    assert [(f.check, f.actions) for f in left] == [("permissions-management", ("iam:AttachRolePolicy",))]
    assert used == {0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {check: resource-wildcard, stack: '*', resource: '*', sid: '*', reason: ''}\n", "needs its reason"),
        ("- {check: resource-wildcard, stack: '*', resource: '*', sid: '*'}\n", "needs exactly"),
        ("- {check: everything, stack: '*', resource: '*', sid: '*', reason: x}\n", "is none of"),
        (  # a create the tag condition denies is a fault, whatever the reason given
            "- {check: create-on-resource-tag, stack: '*', resource: '*', sid: '*', reason: x}\n",
            "is a fault AWS denies at deploy time, not a finding to accept",
        ),
    ],
)
def test_a_malformed_accepted_list_fails_the_check_naming_the_entry(tmp_path: Path, text: str, message: str) -> None:
    accepted = tmp_path / "accepted.yaml"
    accepted.write_text(text)
    (problem,) = checks.check_iam(golden_policies()[:1], str(accepted))
    assert problem.check == "iam" and "entry 0" in problem.message and message in problem.message


def codedeploy_findings(codedeploy_built) -> list[iam_analysis.Finding]:
    """The findings of the fixtures built with ``deployment.controller: codedeploy``: a user may
    choose it, so its accepted findings stay in the list although the default output lacks them."""
    return [
        finding
        for env, stacks in codedeploy_built.stacks.items()
        for stack in stacks.values()
        for finding in iam_analysis.analyse_template(stack.body, stack.name, f"{env}/{stack.layer}.json")
    ]


def test_the_shipped_list_gives_every_entry_a_reason_and_each_is_still_needed(codedeploy_built) -> None:
    accepted = iam_analysis.load_accepted()
    assert all(len(entry.reason) > 40 for entry in accepted)
    everything = iam_analysis.analyse_files(golden_policies()) + codedeploy_findings(codedeploy_built)
    _, used = iam_analysis.unaccepted(everything, accepted)
    stale = [accepted[i] for i in range(len(accepted)) if i not in used]
    assert stale == [], "accepted findings that no longer occur: remove them from iam_accepted.yaml"


# --- the output ----------------------------------------------------------------------------------


def test_the_output_has_no_finding_beyond_the_accepted_list() -> None:
    assert checks.check_iam(golden_policies()) == []


def test_a_codedeploy_build_has_no_finding_beyond_the_accepted_list(codedeploy_built) -> None:
    left, _ = iam_analysis.unaccepted(codedeploy_findings(codedeploy_built), iam_analysis.load_accepted())
    assert left == []


def test_without_the_accepted_list_the_deployers_findings_fail_the_check(tmp_path: Path) -> None:
    empty = tmp_path / "accepted.yaml"
    empty.write_text("[]\n")
    problems = checks.check_iam(golden_policies(), str(empty))
    assert any("resource-wildcard: shop-prod-deployer ExecutionPolicy" in p.message for p in problems)
    assert any("permissions-management: shop-prod-svc-api ReleaseRole" in p.message for p in problems)
    assert all("accept it there with a reason" in p.message for p in problems)


def test_the_gate_runs_the_iam_analysis() -> None:
    assert "iam" in checks.CHECKS
