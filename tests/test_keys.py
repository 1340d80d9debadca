"""Keys layer: rotated customer managed keys whose policies name who may use them."""

from __future__ import annotations

import pytest
from conftest import ENVIRONMENTS, resources


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_logs_key_rotates_and_is_never_deleted_with_the_stack(stacks, env) -> None:
    key = resources(stacks[env]["keys"].body, "AWS::KMS::Key")["LogsKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_logs_key_serves_only_this_environments_log_groups(stacks, env) -> None:
    policy = stacks[env]["keys"].body["Resources"]["LogsKey"]["Properties"]["KeyPolicy"]
    (logs,) = [s for s in policy["Statement"] if s["Principal"].get("Service")]
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    condition = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    prefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    assert condition == [
        {"Fn::Sub": f"{prefix}shop-{env}-*"},
        {"Fn::Sub": f"{prefix}aws-waf-logs-shop-{env}-*"},
        {"Fn::Sub": f"{prefix}/aws/rds/cluster/shop-{env}/*"},
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_account_statement_spells_out_actions_instead_of_kms_star(stacks, env) -> None:
    policy = stacks[env]["keys"].body["Resources"]["LogsKey"]["Properties"]["KeyPolicy"]
    (account,) = [s for s in policy["Statement"] if "AWS" in s["Principal"]]
    assert "kms:*" not in account["Action"]
    assert all(not a.endswith("*") for a in account["Action"])
    assert account["Principal"]["AWS"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_log_group_falls_under_the_logs_keys_policy(stacks, env) -> None:
    # The logs key trusts log groups named "shop-{env}-*" (CloudFormation starts generated names
    # with the stack name), "aws-waf-logs-shop-{env}-*" (WAF accepts no other name) and
    # "/aws/rds/cluster/shop-{env}/*" (where RDS exports the database's logs).
    for stack in stacks[env].values():
        assert stack.name.startswith(f"shop-{env}-")
        if stack.region != stacks[env]["keys"].region:
            continue  # another region's log groups use that region's key (edge-waf's own)
        for name, group in resources(stack.body, "AWS::Logs::LogGroup").items():
            explicit = group["Properties"].get("LogGroupName")
            assert explicit in (None, f"aws-waf-logs-{stack.name}", stack.name) or explicit.startswith(
                f"/aws/rds/cluster/shop-{env}/"
            ), name  # a service's group is named after its stack: its release's taskdef.json names it
            assert group["Properties"]["KmsKeyId"] == {"Fn::ImportValue": f"shop-{env}-keys-LogsKeyArn"}
