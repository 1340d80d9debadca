"""Resource builders with secure defaults, so a default lives in one place and not in copies."""

from __future__ import annotations

from typing import Any

from awacs.aws import PolicyDocument
from troposphere import AWSObject, Ref, Tags, kms, logs

from infra_templates.config import Environment


def protect(resource: AWSObject, env: Environment, always: bool = False) -> None:
    """Set DeletionPolicy and UpdateReplacePolicy on a stateful resource.

    Production keeps the resource when the stack deletes or replaces it; other environments let it
    go, unless ``always`` (keys: deleting a key loses every byte it encrypted, in any environment).
    """
    policy = "Retain" if (always or env.production) else "Delete"
    resource.DeletionPolicy = policy
    resource.UpdateReplacePolicy = policy


def kms_key(logical_id: str, env: Environment, description: str, policy: PolicyDocument) -> kms.Key:
    """A symmetric customer managed key with yearly rotation and a 30-day deletion window."""
    key = kms.Key(
        logical_id,
        Description=description,
        EnableKeyRotation=True,
        PendingWindowInDays=30,
        KeyPolicy=policy,
    )
    protect(key, env, always=True)
    return key


def kms_alias(logical_id: str, name: str, key: kms.Key) -> kms.Alias:
    return kms.Alias(logical_id, AliasName=f"alias/{name}", TargetKeyId=Ref(key))


def log_group(logical_id: str, env: Environment, retention_days: int, kms_key_arn: Any) -> logs.LogGroup:
    """A log group encrypted with the environment's logs key, with a retention (never 'forever').

    Its name is left to CloudFormation (``{stack}-{LogicalId}-{suffix}``): the logs key's policy
    trusts log groups whose names start with ``{project}-{env}-``, which that pattern guarantees.
    """
    group = logs.LogGroup(logical_id, RetentionInDays=retention_days, KmsKeyId=kms_key_arn)
    protect(group, env)
    return group


def name_tag(value: str) -> Tags:
    return Tags(Name=value)
