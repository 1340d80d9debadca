"""IAM policy builders on awacs: least privilege, a Sid on every statement, partition-aware ARNs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from awacs import kms
from awacs.aws import (
    Action,
    Allow,
    ArnLike,
    Condition,
    ConditionElement,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import AccountId, Sub
from troposphere.iam import Policy, Role

from infra_templates.iam_analysis import service_privileges

VERSION = "2012-10-17"

# What a key administrator needs, per AWS's "default key policy" guide, spelled out instead of kms:*.
KEY_ADMIN_ACTIONS = (
    kms.CancelKeyDeletion, kms.CreateAlias, kms.CreateGrant, kms.DeleteAlias,
    kms.DisableKey, kms.DisableKeyRotation, kms.EnableKey, kms.EnableKeyRotation, kms.GetKeyPolicy,
    kms.GetKeyRotationStatus, kms.ListAliases, kms.ListGrants, kms.ListKeyPolicies,
    kms.ListResourceTags, kms.PutKeyPolicy, kms.RetireGrant, kms.RevokeGrant, kms.ScheduleKeyDeletion,
    kms.TagResource, kms.UntagResource, kms.UpdateAlias, kms.UpdateKeyDescription,
)  # fmt: skip
KEY_USE_ACTIONS = (
    kms.Decrypt, kms.DescribeKey, kms.Encrypt, kms.GenerateDataKey, kms.GenerateDataKeyWithoutPlaintext,
    kms.ReEncryptFrom, kms.ReEncryptTo,
)  # fmt: skip


def allow(
    sid: str,
    actions: Sequence[Action],
    resources: Sequence[Any],
    conditions: Sequence[ConditionElement] = (),
    principal: Principal | None = None,
) -> Statement:
    """One Allow statement. ``resources`` are ARNs (``GetAtt``/``Sub``); never an empty list."""
    if not actions or not resources:
        raise ValueError(f"statement {sid} needs actions and resources")
    # Keys in the order people write them: Sid, Effect, Principal, Action, Resource, Condition.
    fields: dict[str, Any] = {"Sid": sid, "Effect": Allow}
    if principal is not None:
        fields["Principal"] = principal
    fields["Action"] = list(actions)
    fields["Resource"] = list(resources)
    if conditions:
        fields["Condition"] = condition(conditions)
    return Statement(**fields)


def condition(elements: Sequence[ConditionElement]) -> Condition:
    """A Condition block of ``elements``, those of one operator merged into one (their keys ANDed,
    as IAM reads several keys under one operator). awacs' Condition writes each element as
    ``{operator: {key: value}}`` into one mapping, so a second element of the same operator
    replaced the first and its key was silently dropped (a statement two ``StringEquals`` keys
    narrow lost one). Raises ValueError when one operator names a key twice with two values."""
    merged: dict[str, ConditionElement] = {}
    for element in elements:
        operator, keys = element.condition, element.get_dict()
        if operator not in merged:
            merged[operator] = element
            continue
        have = merged[operator].get_dict()
        clash = [k for k in keys if k in have and have[k] != keys[k]]
        if clash:
            raise ValueError(f"condition {operator} names {', '.join(clash)} twice with different values")
        merged[operator] = type(element)({**have, **keys})
    return Condition(list(merged.values()))


def document(*statements: Statement) -> PolicyDocument:
    return PolicyDocument(Version=VERSION, Statement=list(statements))


def service_trust(service: str, source_arn: Any | None = None) -> PolicyDocument:
    """Trust policy letting one AWS service assume a role, only on behalf of this account.

    ``aws:SourceAccount`` (and ``aws:SourceArn`` where given) guard against the confused deputy.
    """
    conditions: list[ConditionElement] = [StringEquals("aws:SourceAccount", AccountId)]
    if source_arn is not None:
        conditions.append(ArnLike("aws:SourceArn", source_arn))
    return document(
        Statement(
            Sid="TrustService",
            Effect=Allow,
            Principal=Principal("Service", service),
            Action=[Action("sts", "AssumeRole")],
            Condition=condition(conditions),
        )
    )


def arn(service: str, resource: str, region: bool = True, account: bool = True) -> Sub:
    """``arn:${AWS::Partition}:service:${AWS::Region}:${AWS::AccountId}:resource`` (resource may use ${})."""
    return Sub(
        "arn:${AWS::Partition}:%s:%s:%s:%s"
        % (service, "${AWS::Region}" if region else "", "${AWS::AccountId}" if account else "", resource)
    )


def account_root() -> Principal:
    return Principal("AWS", Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root"))


def key_policy(*users: Statement) -> PolicyDocument:
    """A KMS key policy: the account administers the key and may delegate its use through IAM (so a
    role still needs its own policy naming the key); ``users`` name the services that use it.

    In a key policy ``Resource: "*"`` means "this key": a key policy cannot name anything else.
    """
    admin = allow(
        "AccountAdministersKeyAndDelegatesUseToIam",
        KEY_ADMIN_ACTIONS + KEY_USE_ACTIONS,
        ["*"],
        principal=account_root(),
    )
    return document(admin, *users)


def service_role(
    logical_id: str,
    *,
    service: str,
    description: str,
    policy_name: str,
    statements: Sequence[Statement],
    source_arn: Any | None = None,
) -> Role:
    """A role one AWS service assumes (for this account only), with one inline policy."""
    return Role(
        logical_id,
        Description=description,
        AssumeRolePolicyDocument=service_trust(service, source_arn=source_arn),
        Policies=[Policy(PolicyName=policy_name, PolicyDocument=document(*statements))],
    )


def iam_writes() -> list[str]:
    """IAM's actions that change IAM (access levels Write, Permissions management, Tagging, from its
    service authorization data), as few patterns as the data allows: ``iam:Create*`` where every
    action of that verb changes IAM, the action itself otherwise. iam:PassRole is left out: it
    changes nothing, and the release and deployment roles must pass their task roles."""
    return list(_iam_writes())


@cache  # every permissions boundary asks (one per environment and the project's): IAM's data is fixed in a run
def _iam_writes() -> tuple[str, ...]:
    actions = service_privileges("iam")
    changes = {
        name
        for name, entry in actions.items()
        if entry["access_level"] in ("Write", "Permissions management", "Tagging") and name != "PassRole"
    }
    by_verb: dict[str, list[str]] = {}
    for name in actions:
        by_verb.setdefault(_verb(name), []).append(name)
    patterns = set()
    for name in changes:
        verb = _verb(name)
        patterns.add(f"iam:{verb}*" if all(n in changes for n in by_verb[verb]) else f"iam:{name}")
    return tuple(sorted(patterns))


def _verb(name: str) -> str:
    """``CreateRole`` -> ``Create``: the first word of an action's name."""
    for index in range(1, len(name)):
        if name[index].isupper():
            return name[:index]
    return name


# Turning off the account's record of what happened: no workload of ours needs it.
TRAIL_AND_LOG_OFF = (
    "cloudtrail:DeleteTrail",
    "cloudtrail:PutEventSelectors",
    "cloudtrail:StopLogging",
    "cloudtrail:UpdateTrail",
    "ec2:DeleteFlowLogs",
    "logs:DeleteLogGroup",
    "logs:DeleteLogStream",
)
