"""Deployer layer, first in every environment: the two roles through which the infrastructure
pipeline (in the registry's account) deploys this environment's stacks.

- ``{project}-{env}-deployer-action``: the pipeline's hand in this account. Only the pipeline's role
  may assume it; it creates and executes change sets of this environment's stacks, passes the
  execution role to CloudFormation, and reads templates from (and writes stack outputs to) the
  pipeline's artifact buckets in the registry's account.
- ``{project}-{env}-deployer-cfn``: what CloudFormation runs as. Not AdministratorAccess: its actions
  are exactly those CloudFormation's resource provider schemas list for the resource types this
  environment's own templates hold (create, read, update, delete handlers), allowed only in the
  regions its stacks go to and the regions their resources act in (a secret's replica); its IAM
  actions reach only roles named after the environment's stacks (``{project}-{env}-*``), never the
  deployer's own roles.

The pipeline never deploys this stack: a commit must not be able to widen the roles it runs with.
Deploy it by hand (``deploy.sh`` deploys it first) whenever the layers gain a resource type.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from awacs import cloudformation as cfn_actions
from awacs import iam as iam_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import secretsmanager as secretsmanager_actions
from awacs import ssm as ssm_actions
from awacs import sts as sts_actions
from awacs.aws import (
    Action,
    Allow,
    ArnEquals,
    Condition,
    Deny,
    ForAnyValueStringEquals,
    Principal,
    Statement,
    StringEquals,
    StringNotEquals,
)
from troposphere import Output, Ref, Sub, Template
from troposphere.iam import ManagedPolicy, Policy, Role

from infra_templates import constructs, iam
from infra_templates.catalog import handler_permissions
from infra_templates.config import CLOUDFRONT_REGION, Environment
from infra_templates.iam_analysis import (
    creates,
    has_resource_types,
    is_known,
    privilege,
    service_resources,
    squashed,
)
from infra_templates.layer import LayerContext
from infra_templates.naming import (
    artifact_bucket_name,
    artifact_key_alias,
    deployer_role_name,
    infrastructure_pipeline_role_name,
    permissions_boundary_name,
    stack_name,
)
from infra_templates.pipeline import LayerSpec, Stack, boundary_arn, build_stacks
from infra_templates.regions import acting_regions

CHANGE_SET_NAME = "infrastructure-pipeline"
# IAM counts a managed policy's characters without white space: at most 6,144, and a role takes 10
# managed policies by default (IAM User Guide, "IAM and AWS STS quotas",
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html). Keep a margin, and
# measure the template's own text (its ${AWS::Partition} is longer than the "aws" it becomes).
POLICY_CHARACTERS = 6000
MAX_MANAGED_POLICIES = 10  # attached to one role (IAM's default quota)
# Global services (IAM, CloudFront, ...) take their requests in us-east-1 (aws:RequestedRegion).
GLOBAL_REGION = CLOUDFRONT_REGION


def build(env: Environment, layers: Sequence[LayerSpec]) -> Template:
    """The deployer roles of ``env``, derived from the stacks ``layers`` build for it."""
    ctx = LayerContext(env, "deployer")
    t = ctx.new_template("the roles the infrastructure pipeline deploys this environment's stacks with")
    stacks = build_stacks(env, layers)
    regions = sorted({s.region for s in stacks})
    # CloudFormation's role acts where the resources act, not only where the stacks are: a secret's
    # replica is created with its permissions in the replica's region (regions.py cites AWS).
    acting = sorted({*regions, *(r for s in stacks for r in acting_regions(s.body))})
    t.add_resource(_boundary(env, acting))
    execution = t.add_resource(_execution_role(env, stacks, acting, t))
    t.add_resource(_action_role(env, regions))
    t.add_output(
        Output("ExecutionRoleArn", Description="CloudFormation's role", Value=Sub("${%s.Arn}" % execution.title))
    )
    return t


def role_arn(env: Environment, purpose: str) -> Sub:
    return Sub(
        "arn:${AWS::Partition}:iam::%s:role/%s" % (env.account_id, deployer_role_name(env.project, env.name, purpose))
    )


def _action_role(env: Environment, regions: list[str]) -> Role:
    registry = env.registry.account_id
    prefix = stack_name(env.project, env.name, "")
    stacks = [
        Sub("arn:${AWS::Partition}:cloudformation:%s:${AWS::AccountId}:stack/%s*/*" % (region, prefix))
        for region in regions
    ]
    change_sets = [
        Sub("arn:${AWS::Partition}:cloudformation:%s:${AWS::AccountId}:changeSet/%s/*" % (region, CHANGE_SET_NAME))
        for region in regions
    ]
    statements = [
        iam.allow(
            "ChangeThisEnvironmentsStacksThroughChangeSets",
            [
                cfn_actions.CreateChangeSet,
                cfn_actions.DeleteChangeSet,
                cfn_actions.DescribeChangeSet,
                cfn_actions.DescribeStacks,
                cfn_actions.ExecuteChangeSet,
            ],
            stacks + change_sets,
        ),
        # cloudformation:ValidateTemplate has no resource-level permissions: AWS accepts only "*".
        iam.allow("ValidateTemplates", [cfn_actions.ValidateTemplate], ["*"]),
        iam.allow(
            "HandTheExecutionRoleToCloudFormation",
            [iam_actions.PassRole],
            [
                Sub(
                    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/%s"
                    % deployer_role_name(env.project, env.name, "cfn")
                )
            ],
            conditions=[StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")],
        ),
        _read_image_tags(env, regions),
        iam.allow(
            "ReadTemplatesAndWriteStackOutputs",
            [s3_actions.GetObject, s3_actions.GetObjectVersion, s3_actions.PutObject],
            [
                Sub("arn:${AWS::Partition}:s3:::%s/*" % artifact_bucket_name(env.project, registry, region))
                for region in regions
            ],
        ),
        iam.allow(
            "UseTheArtifactKeys",
            [kms_actions.Decrypt, kms_actions.DescribeKey, kms_actions.Encrypt, kms_actions.GenerateDataKey],
            [Sub("arn:${AWS::Partition}:kms:%s:%s:key/*" % (region, registry)) for region in regions],
            conditions=[ForAnyValueStringEquals("kms:ResourceAliases", artifact_key_alias(env.project))],
        ),
    ]
    pipeline_role = "arn:${AWS::Partition}:iam::%s:role/%s" % (registry, infrastructure_pipeline_role_name(env.project))
    return Role(
        "ActionRole",
        RoleName=deployer_role_name(env.project, env.name, "action"),
        Description=f"The infrastructure pipeline (account {registry}) deploys {env.name}'s stacks with this role",
        AssumeRolePolicyDocument=iam.document(
            Statement(
                Sid="TrustTheInfrastructurePipeline",
                Effect=Allow,
                Principal=Principal("AWS", Sub("arn:${AWS::Partition}:iam::%s:root" % registry)),
                Action=[sts_actions.AssumeRole],
                Condition=Condition([ArnEquals("aws:PrincipalArn", Sub(pipeline_role))]),
            )
        ),
        Policies=[Policy(PolicyName="deploy", PolicyDocument=iam.document(*statements))],
    )


def _read_image_tags(env: Environment, regions: list[str]) -> Statement:
    """A service stack's ImageTag is an SSM parameter type: creating a change set resolves the
    environment's ``/{project}/{env}/<service>/image-tag`` parameters (CloudFormation User Guide,
    "Specify existing resources at runtime with CloudFormation-supplied parameter types")."""
    return iam.allow(
        "ResolveTheReleasedImageTags",
        [ssm_actions.GetParameters],
        [
            Sub("arn:${AWS::Partition}:ssm:%s:${AWS::AccountId}:parameter/%s/%s/*" % (region, env.project, env.name))
            for region in regions
        ],
    )


# A dynamic reference to a secret by name: {{resolve:secretsmanager:NAME:...}} (AWS Secrets Manager
# User Guide, "Get an AWS Secrets Manager secret in an AWS CloudFormation resource").
SECRET_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:([A-Za-z0-9/_+=.@-]+)[:}]")


def _referenced_secrets(stacks: Sequence[Stack], own: Sequence[str]) -> Statement | None:
    """CloudFormation resolves a template's ``{{resolve:secretsmanager:NAME...}}`` with the caller's
    permissions: secretsmanager:GetSecretValue on each secret named so that the environment's own
    secrets (``own``: name patterns, which the Secret handler's grant covers) do not include (a DR
    environment's stacks name their primary's origin-verify secret, replicated into their region),
    in the stack's region."""
    found = sorted(
        {
            (stack.region, name)
            for stack in stacks
            # The template's JSON text, written anyway (made once for each template: build_once)
            for name in SECRET_REFERENCE.findall(stack.json)
            if not name.startswith("arn:") and not any(wildcard_match(name, pattern) for pattern in own)
        }
    )
    if not found:
        return None
    return iam.allow(
        "ResolveTheSecretsTheTemplatesName",
        [secretsmanager_actions.GetSecretValue],
        [
            Sub(
                "arn:${AWS::Partition}:secretsmanager:%s:${AWS::AccountId}:secret:%s%s"
                % (region, name, NAME_SUFFIX["secretsmanager"])
            )
            for region, name in found
        ],
    )


def permissions(stacks: Sequence[Stack]) -> dict[str, list[str]]:
    """The actions CloudFormation needs for every resource type of ``stacks``, by service prefix."""
    by_service: dict[str, set[str]] = {}
    # Each type once per region (a type has the same handlers for every resource of it)
    kinds = {
        (stack.region, resource["Type"]) for stack in stacks for resource in stack.body.get("Resources", {}).values()
    }
    for region, kind in kinds:
        for action in handler_permissions(region, kind):
            service, _, name = action.partition(":")
            by_service.setdefault(service, set()).add(name)
    return {service: sorted(names) for service, names in sorted(by_service.items())}


def _encrypt_secret_replicas(env: Environment, stacks: Sequence[Stack]) -> list[Statement]:
    """CloudFormation creates a secret with ``ReplicaRegions`` (the standby's region, its own data
    key) as the caller: Secrets Manager then needs the caller to hold kms:GenerateDataKey and
    kms:Encrypt on the replica's key ("To encrypt the replicated secret with a KMS key other than
    aws/secretsmanager, you need kms:GenerateDataKey and kms:Encrypt to the key": AWS Secrets Manager
    API Reference, ReplicateSecretToRegions). That key is the standby environment's (tagged with its
    name), which no other statement of this role reaches: granted on keys of the replica's region
    tagged with the project and the standby's name, only through Secrets Manager there. Empty when
    no stack replicates a secret."""
    replicas = sorted(
        {
            str(replica["Region"])
            for stack in stacks
            for resource in stack.body.get("Resources", {}).values()
            if resource.get("Type") == "AWS::SecretsManager::Secret"
            for replica in resource.get("Properties", {}).get("ReplicaRegions", [])
            if "KmsKeyId" in replica
        }
    )
    if not replicas or env.standby is None:
        return []
    return [
        iam.allow(
            f"EncryptSecretReplicasWithTheStandbysKey{region.title().replace('-', '')}",
            [kms_actions.Encrypt, kms_actions.GenerateDataKey],
            [Sub("arn:${AWS::Partition}:kms:%s:${AWS::AccountId}:key/*" % region)],
            [
                StringEquals(
                    {
                        "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
                        "aws:ResourceTag/Project": env.project,
                        "aws:ResourceTag/Environment": env.standby.environment,
                    }
                )
            ],
        )
        for region in replicas
    ]


def _execution_role(env: Environment, stacks: Sequence[Stack], regions: list[str], t: Template) -> Role:
    needed = permissions(stacks)
    prefix = stack_name(env.project, env.name, "")
    roles = Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/%s*" % prefix)
    linked = Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*")
    deployer = Sub(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/%s" % deployer_role_name(env.project, env.name, "*")
    )
    statements: list[Statement] = [_read_image_tags(env, regions)]
    statements.extend(_encrypt_secret_replicas(env, stacks))
    names = name_patterns(env, stacks)
    referenced = _referenced_secrets(stacks, names.get("secretsmanager", []))
    if referenced:
        statements.append(referenced)
    iam_names = needed.pop("iam", [])
    # The actions IAM lets condition on iam:PermissionsBoundary (its service authorization data:
    # CreateRole, PutRolePolicy, AttachRolePolicy, ...) are allowed only when the role carries the
    # environment's boundary: a template cannot create or widen a role beyond it (the pattern of
    # CDK's bootstrap, IAM User Guide "Permissions boundaries for IAM entities").
    bounded = [n for n in iam_names if _takes_boundary_condition(f"iam:{n}")]
    others = [n for n in iam_names if n not in bounded]
    boundary = boundary_arn(env)
    if bounded:
        statements.append(
            iam.allow(
                "ChangeThisEnvironmentsRolesOnlyWithTheBoundary",
                [Action("iam", n) for n in bounded],
                [roles],
                [StringEquals("iam:PermissionsBoundary", boundary)],
            )
        )
    if others:
        statements.append(
            iam.allow("ManageOnlyThisEnvironmentsRoles", [Action("iam", n) for n in others], [roles, linked])
        )
    statements.append(
        Statement(
            Sid="NeverRemoveTheBoundary",
            Effect=Deny,
            Action=[iam_actions.DeleteRolePermissionsBoundary],
            Resource=["*"],
        )
    )
    statements.append(
        Statement(
            Sid="NeverChangeTheBoundary",
            Effect=Deny,
            Action=[
                iam_actions.CreatePolicyVersion,
                iam_actions.DeletePolicy,
                iam_actions.DeletePolicyVersion,
                iam_actions.SetDefaultPolicyVersion,
            ],
            Resource=[boundary],
        )
    )
    statements.append(
        Statement(
            Sid="NeverChangeTheDeployerRoles",
            Effect=Deny,
            Action=[Action("iam", "*")],
            Resource=[deployer],
        )
    )
    # Only in the regions its stacks go to and their resources act in: one Deny for every statement
    # (global services such as IAM and CloudFront take their requests in us-east-1).
    statements.append(
        Statement(
            Sid="StayInTheEnvironmentsRegions",
            Effect=Deny,
            Action=[Action("*")],
            Resource=["*"],
            Condition=Condition(StringNotEquals("aws:RequestedRegion", sorted({*regions, GLOBAL_REGION}))),
        )
    )
    untagged = untagged_types(stacks)
    grants = [g for service, actions in needed.items() for g in _grants(service, actions, names, untagged)]
    statements.extend(_route_statements(env, grants))
    policies = []
    for index, chunk in enumerate(_chunks(statements), start=1):
        policy = t.add_resource(
            ManagedPolicy(
                f"ExecutionPolicy{index}",
                Description=f"What CloudFormation may do for {env.name}'s stacks ({index}): derived from the "
                "resource types of its templates",
                PolicyDocument=iam.document(*chunk),
            )
        )
        policies.append(Ref(policy))
    if len(policies) > MAX_MANAGED_POLICIES:
        raise ValueError(f"{env.name}: the execution role needs {len(policies)} managed policies; IAM attaches 10")
    return Role(
        "ExecutionRole",
        RoleName=deployer_role_name(env.project, env.name, "cfn"),
        Description=f"CloudFormation deploys {env.name}'s stacks with this role (for the infrastructure pipeline)",
        AssumeRolePolicyDocument=iam.service_trust("cloudformation.amazonaws.com"),
        ManagedPolicyArns=policies,
    )


def _takes_boundary_condition(action: str) -> bool:
    """True when IAM's data lists the condition key iam:PermissionsBoundary for ``action``."""
    entry = privilege(action)
    return entry is not None and any(
        "iam:PermissionsBoundary" in resource["condition_keys"] for resource in entry["resource_types"].values()
    )


def _boundary(env: Environment, regions: list[str]) -> ManagedPolicy:
    """The permissions boundary of every role the environment's other stacks create (pipeline.py
    applies it): see constructs.permissions_boundary."""
    return constructs.permissions_boundary(
        "PermissionsBoundary",
        name=permissions_boundary_name(env.project, env.name),
        description=f"The permissions boundary of every role of {env.name}'s stacks but the deployer's",
        regions=sorted({*regions, GLOBAL_REGION}),
    )


# The resource types (IAM's names) of the services whose resources this environment names itself,
# so their ARNs are predictable: a name the templates set (``ClusterName: shop-prod``), or the name
# CloudFormation generates when they set none, which begins with the stack's name, itself
# ``{project}-{env}-<layer>`` (CloudFormation Template Reference, "resource custom naming":
# "MyStack-MyBucket-abcdefghijk1"). Every other resource type of these services is one the
# environment does not create. tests/test_deployer_scope.py checks every such resource of the output
# against the patterns name_patterns() derives.
NAMED_TYPES: dict[str, tuple[str, ...]] = {
    "ecs": ("cluster", "service", "task", "task-definition", "task-set"),
    "events": ("rule-on-default-event-bus",),
    "lambda": ("function", "function alias", "function version"),
    "logs": ("log-group", "log-stream"),
    "s3": ("bucket", "object"),
    "secretsmanager": ("Secret",),
    "sns": ("topic",),
    "sqs": ("queue",),
    "ssm": ("parameter",),
}
# The CloudFormation namespace of each of those services, and the property that names a resource
# of a type (CloudFormation Template Reference of each type).
NAMESPACES = {
    "ECS": "ecs", "Events": "events", "Lambda": "lambda", "Logs": "logs", "S3": "s3",
    "SecretsManager": "secretsmanager", "SNS": "sns", "SQS": "sqs", "SSM": "ssm",
}  # fmt: skip
NAME_PROPERTIES = {
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::ECS::TaskDefinition": "Family",
    "AWS::Events::Rule": "Name",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SSM::Parameter": "Name",
}
# Types whose generated name does not begin with the stack's name (an SSM parameter's is
# ``CFN-<logical id>-...``, a secret's ``<logical id>-...``): an unnamed one makes its service's ARNs
# unpredictable, and the service is scoped by tags instead.
NOT_STACK_PREFIXED = frozenset({"AWS::SSM::Parameter", "AWS::SecretsManager::Secret"})
# Secrets Manager appends "-" and six random characters to a secret's name in its ARN (Secrets
# Manager User Guide, "Secret ARN"); an SSM parameter's ARN drops the name's leading "/".
NAME_SUFFIX = {"secretsmanager": "-??????"}
# The tags every resource of the environment carries (naming.standard_tags, CloudFormation's stack
# tags), which the tag-scoped statements condition on.
SCOPE_TAGS = ("Project", "Environment")


# CloudFormation types whose IAM resource type has another name than the type's own (IAM's data).
IAM_TYPE_OF = {
    "AWS::EC2::SecurityGroupEgress": "security-group-rule",
    "AWS::EC2::SecurityGroupIngress": "security-group-rule",
}


def untagged_types(stacks: Sequence[Stack]) -> frozenset[tuple[str, str]]:
    """The IAM resource types (service, type) of which the stacks create a resource that does not
    carry the Project and Environment tags: CloudFormation gives the type no tags (an origin access
    control, a KMS alias), or a backup plan's and vault's tags are their own properties the layers do
    not set. A tag condition would deny CloudFormation on them, so no action reaching them is scoped
    by tag. A type is matched to IAM's by its service (the handler permissions' prefix) and name."""
    found: set[tuple[str, str]] = set()
    for stack in stacks:
        for resource in stack.body.get("Resources", {}).values():
            kind = str(resource["Type"])
            if _carries_scope_tags(resource.get("Properties", {})):
                continue
            found.update(_iam_types(stack.region, kind))
    return frozenset(found)


@cache  # by (region, type): asked for each untagged resource of every environment, IAM's data fixed in a run
def _iam_types(region: str, kind: str) -> frozenset[tuple[str, str]]:
    """The IAM resource types (service, type) a CloudFormation type is matched to (untagged_types)."""
    services = sorted({a.split(":")[0] for a in handler_permissions(region, kind)})
    wanted = squashed(IAM_TYPE_OF.get(kind, kind.rsplit("::", 1)[-1]))
    return frozenset(
        (service, name) for service in services for name in service_resources(service) if squashed(name) == wanted
    )


def _carries_scope_tags(properties: dict[str, Any]) -> bool:
    for key, value in properties.items():
        if not key.endswith("Tags") or not isinstance(value, (dict, list)):
            continue  # PropagateTags, EnableECSManagedTags: switches, not tags
        tags = (
            value if isinstance(value, dict) else {t.get("Key"): t.get("Value") for t in value if isinstance(t, dict)}
        )
        if all(k in tags for k in SCOPE_TAGS):
            return True
    return False


def name_patterns(env: Environment, stacks: Sequence[Stack]) -> dict[str, list[str]]:
    """The name patterns (IAM wildcards) of this environment's resources of each service of
    NAMED_TYPES whose names are predictable: ``{project}-{env}-*`` (the stacks' names, which
    CloudFormation's generated names begin with) and every name the templates set that does not
    match it (``shop-prod``, ``/aws/rds/cluster/shop-prod/postgresql``, a global database's or a
    secret's name). A service with a resource whose name cannot be predicted is left out."""
    prefix = f"{stack_name(env.project, env.name, '')}*"
    found: dict[str, set[str]] = {service: {prefix} for service in NAMED_TYPES}
    unpredictable: set[str] = set()
    for stack in stacks:
        for resource in stack.body.get("Resources", {}).values():
            kind = str(resource["Type"])
            namespace = kind.split("::")[1] if kind.count("::") == 2 else ""
            service = NAMESPACES.get(namespace)
            if service is None:
                continue
            name = resource.get("Properties", {}).get(NAME_PROPERTIES.get(kind, ""))
            if name is None:
                if kind in NOT_STACK_PREFIXED:
                    unpredictable.add(service)
                continue
            literal = _literal_prefix(name)
            if literal is None:
                unpredictable.add(service)
                continue
            if service == "ssm":
                literal = literal.lstrip("/")
            if not wildcard_match(literal, prefix):
                found[service].add(literal + NAME_SUFFIX.get(service, ""))
    return {service: sorted(patterns) for service, patterns in found.items() if service not in unpredictable}


def _literal_prefix(name: Any) -> str | None:
    """A name property's value as an IAM pattern: the string itself, or a ``Fn::Sub``'s text up to
    its first ``${...}`` followed by ``*``; None for any other intrinsic (its value is unknown here)."""
    if isinstance(name, str):
        return name
    if isinstance(name, dict) and set(name) == {"Fn::Sub"} and isinstance(name["Fn::Sub"], str):
        text = name["Fn::Sub"]
        if text.startswith("${AWS::StackName}"):
            return None if "${" in text[len("${AWS::StackName}") :] else text
        return text if "${" not in text else text[: text.index("${")] + "*"
    return None


def _arn(service: str, resource_type: str, name: str | None) -> str:
    """IAM's ARN format of ``resource_type`` (service authorization data) for ``Fn::Sub``: partition
    and account of the stack, any region (a Deny on aws:RequestedRegion limits them), the first
    variable of the resource part ``name`` (None: ``*``), every other variable ``*``."""
    fields = str(service_resources(service)[resource_type]["arn"]).split(":", 5)
    variables = re.findall(r"\$\{[A-Za-z]+\}", fields[5])
    resource = fields[5]
    for index, variable in enumerate(variables):
        resource = resource.replace(variable, name if index == 0 and name is not None else "*", 1)
    return ":".join(
        [
            "arn",
            "${AWS::Partition}",
            fields[2],
            "*" if fields[3] else "",
            "${AWS::AccountId}" if fields[4] else "",
            re.sub(r"\*+", "*", resource),
        ]
    )


def _account_wide(service: str, resource_types: Sequence[str]) -> list[str]:
    """Every resource of ``resource_types`` of ``service`` in this account (any region): IAM's ARN
    formats up to the resource part, then ``*``."""
    patterns = set()
    for resource_type in resource_types:
        fields = str(service_resources(service)[resource_type]["arn"]).split(":", 5)
        if "$" in fields[2]:
            # backup's recoveryPoint: an ARN of whichever service's resource was backed up; AWS Backup
            # creates recovery points, never CloudFormation, so the deployer needs none of them.
            continue
        region = "*" if fields[3] else ""
        account = "${AWS::AccountId}" if fields[4] else ""
        patterns.add(f"arn:${{AWS::Partition}}:{fields[2]}:{region}:{account}:*")
    return sorted(patterns)


def _without_covered(patterns: Sequence[str]) -> list[str]:
    """``patterns`` less those another of them already matches (``function:shop-prod-*`` covers
    ``function:shop-prod-*:*``)."""
    unique = sorted(set(patterns))
    return [p for p in unique if not any(o != p and wildcard_match(p, o) for o in unique)]


def wildcard_match(text: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase(text, pattern)``: shell-style, case-sensitive. A pattern whose only
    special character is ``*`` (every IAM name pattern and ARN here) is matched by its literal
    parts in order, without the regular expression fnmatch compiles for each new pattern (some 80
    patterns of the deployer's ARNs per build: most of the time it spent matching); a pattern with
    ``?`` or ``[`` goes to fnmatch itself."""
    if "?" in pattern or "[" in pattern:
        return fnmatch.fnmatchcase(text, pattern)
    if "*" not in pattern:
        return text == pattern
    first, *middle, last = pattern.split("*")
    if len(text) < len(first) + len(last) or not text.startswith(first) or not text.endswith(last):
        return False
    position, end = len(first), len(text) - len(last)
    for part in middle:  # the leftmost place of each literal part leaves the most room for the rest
        found = text.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


@cache  # asked for each action at every route decision: IAM's data does not change in a run
def _condition_keys(service: str, action: str, resource_type: str) -> tuple[str, ...]:
    """The condition keys IAM lists for ``action`` on ``resource_type``: the action's own where it
    lists any, else the resource type's."""
    entry = privilege(f"{service}:{action}")
    own = () if entry is None else tuple(entry["resource_types"][resource_type]["condition_keys"])
    return own or tuple(service_resources(service)[resource_type]["condition_keys"])


@cache
def _resource_types(service: str, action: str) -> tuple[str, ...]:
    entry = privilege(f"{service}:{action}")
    return () if entry is None else tuple(name for name in entry["resource_types"] if name)


def _tag_scoped(service: str, action: str, untagged: frozenset[tuple[str, str]]) -> bool:
    """True when IAM lets every resource type of ``action`` be conditioned on its tags
    (aws:ResourceTag), none of them being a resource the action creates (``creates``: aws:RequestTag
    instead) or one of the environment's untagged ones (untagged_types)."""
    types = _resource_types(service, action)
    return (
        bool(types)
        and not creates(f"{service}:{action}")
        and all(
            "aws:ResourceTag/${TagKey}" in _condition_keys(service, action, t) and (service, t) not in untagged
            for t in types
        )
    )


# The routes of an action, as the Sids of their statements (iam_accepted.yaml names the accepted ones).
WITHOUT_TYPES = "UseActionsWithoutResourceTypes"
BY_NAME = "ManageResourcesByName"
BY_TAG = "ManageResourcesByTag"
IN_ACCOUNT = "ManageResourcesInThisAccount"
NEWER = "UseActionsNewerThanIamData"
# A merged statement's text at most (its actions and resources), well within a managed policy's.
MERGED_CHARACTERS = 4000


def scope_of(
    service: str, action: str, names: dict[str, list[str]], untagged: frozenset[tuple[str, str]] = frozenset()
) -> str:
    """How the deployer grants ``service:action`` (IAM's service authorization data decides):

    - ``ManageResourcesByName``: the ARNs of the environment's resources (NAMED_TYPES, name_patterns);
    - ``ManageResourcesByTag``: every resource type takes aws:ResourceTag and the action neither creates one
      (aws:RequestTag instead) nor reads (a describe call may list without naming a resource, where
      no tag can be evaluated): the service's ARNs in this account tagged with the environment's
      Project and Environment;
    - ``ManageResourcesInThisAccount``: the rest: an action creating a resource whose id AWS generates, reading,
      or tagging (a handler that creates a resource, then tags it, tags it before it carries the
      environment's tags): the service's ARNs in this account;
    - ``UseActionsNewerThanIamData``: IAM's data does not list the action: on ``*``.
    Actions without a resource type (``UseActionsWithoutResourceTypes``) are not routed here: "*" is
    all IAM accepts for them."""
    known, named, level = _scope_facts(service, action)
    if not known:
        return NEWER
    if named and service in names:
        return BY_NAME
    if level in ("List", "Read", "Tagging"):
        return IN_ACCOUNT
    return BY_TAG if _tag_scoped(service, action, untagged) else IN_ACCOUNT


@cache  # asked for each action of every environment: IAM's data does not change in a run
def _scope_facts(service: str, action: str) -> tuple[bool, bool, str | None]:
    """What scope_of reads of IAM's data: whether it lists ``service:action``, whether a resource
    type of the action is one of NAMED_TYPES' (of the service), and its access level."""
    entry = privilege(f"{service}:{action}")
    if entry is None:
        return False, False, None
    named = bool(set(_resource_types(service, action)) & set(NAMED_TYPES.get(service, ())))
    return True, named, str(entry["access_level"])


@dataclass
class _Grant:
    """Actions of one route (scope_of) on resources: a statement to be, merged where that grants
    nothing more (_merged)."""

    route: str
    actions: list[str]  # service:Action
    resources: list[str]  # ARN patterns for Fn::Sub, or "*"

    def namespaces(self) -> set[str]:
        return {_namespace(r) for r in self.resources if r != "*"}

    def reach(self) -> set[str]:
        """The ARN namespaces the actions' resource types live in (wafv2:AssociateWebACL: a load
        balancer's elasticloadbalancing ARN too)."""
        found: set[str] = set()
        for action in self.actions:
            found.update(_action_reach(action))
        return found


@cache
def _action_reach(action: str) -> frozenset[str]:
    """The ARN namespaces the resource types of ``service:Action`` live in (asked for again at each
    merge attempt: kept)."""
    service, _, name = action.partition(":")
    known = service_resources(service)
    found = {_namespace(known[t]["arn"]) for t in _resource_types(service, name) if t in known}
    found.discard("x")  # a namespace IAM's data leaves variable (backup's recoveryPoint)
    return frozenset(found)


_VARIABLE = re.compile(r"\$\{[^}]*\}")


@cache
def _namespace(arn: str) -> str:
    """The service field of an ARN (pattern), with ``${...}`` variables taken out."""
    fields = _VARIABLE.sub("x", arn).split(":")
    return fields[2] if len(fields) > 2 else ""


def _grants(
    service: str, actions: Sequence[str], names: dict[str, list[str]], untagged: frozenset[tuple[str, str]]
) -> list[_Grant]:
    """``actions`` of ``service`` (handler permissions), each on the narrowest resources IAM's data
    allows (scope_of)."""
    routes: dict[str, list[str]] = {}
    for name in actions:
        route = WITHOUT_TYPES if _only_on_star(f"{service}:{name}") else scope_of(service, name, names, untagged)
        routes.setdefault(route, []).append(name)
    grants = []
    for route, listed in sorted(routes.items()):
        types = sorted({t for n in listed for t in _resource_types(service, n)})
        if route == BY_NAME:
            named = [t for t in types if t in NAMED_TYPES[service]]
            resources = _without_covered([_arn(service, t, p) for t in named for p in names[service]])
        elif route in (BY_TAG, IN_ACCOUNT):
            resources = _account_wide(service, types) or ["*"]
        else:
            # Without a resource type IAM accepts only "*" ("Actions, resources, and condition keys
            # for AWS services", the Resource types column empty); unknown to IAM's data: "*".
            resources = ["*"]
        grants.append(_Grant(route, [f"{service}:{n}" for n in listed], resources))
    return grants


def _merged(grants: Sequence[_Grant], limit: int) -> list[_Grant]:
    """Grants of one route merged into fewer statements where that grants nothing more: two merge
    when no action of either has a resource type in an ARN namespace only the other names (an
    ec2 action cannot act on an sns ARN), and the merged statement stays within ``limit`` characters."""
    merged: list[_Grant] = []
    # Each merged grant's reach, namespaces and size, kept as it grows: asked for at every attempt
    # (a grant's reach walks IAM's data for each of its actions).
    kept: list[tuple[set[str], set[str], int]] = []
    for grant in grants:
        reach, spaces = grant.reach(), grant.namespaces()
        own = _characters(grant.actions) + _characters(grant.resources)
        for at, into in enumerate(merged):
            into_reach, into_spaces, into_size = kept[at]
            stars = ["*"] in (into.resources, grant.resources)
            both_stars = into.resources == grant.resources == ["*"]
            foreign = (reach & (into_spaces - spaces)) or (into_reach & (spaces - into_spaces))
            if into.route == grant.route and (both_stars or not (stars or foreign)) and into_size + own < limit:
                into.actions = sorted({*into.actions, *grant.actions})
                into.resources = sorted({*into.resources, *grant.resources})
                kept[at] = (
                    into_reach | reach,
                    into_spaces | spaces,
                    _characters(into.actions) + _characters(into.resources),
                )
                break
        else:
            merged.append(_Grant(grant.route, list(grant.actions), list(grant.resources)))
            kept.append((reach, spaces, own))
    return merged


def _characters(texts: Sequence[str]) -> int:
    """A merged statement's measure of its actions or resources: each one's length and 3 (quotes, comma)."""
    return sum(len(text) + 3 for text in texts)


def _route_statements(env: Environment, grants: Sequence[_Grant]) -> list[Statement]:
    """One statement per merged grant: Sid ``<route>`` (numbered when there are several)."""
    statements = []
    tags = {"Project": env.project, "Environment": env.name}
    for route in (WITHOUT_TYPES, BY_NAME, BY_TAG, IN_ACCOUNT, NEWER):
        mine = _merged([g for g in grants if g.route == route], MERGED_CHARACTERS)
        for index, grant in enumerate(mine, start=1):
            sid = route if len(mine) == 1 else f"{route}{index}"
            actions = [Action(*a.split(":", 1)) for a in grant.actions]
            resources: list[Any] = [r if r == "*" else Sub(r) for r in grant.resources]
            conditions = (
                [StringEquals({f"aws:ResourceTag/{k}": tags[k] for k in SCOPE_TAGS})] if route == BY_TAG else []
            )
            statements.append(iam.allow(sid, actions, resources, conditions))
    return statements


@cache  # asked for every action of every environment: IAM's data does not change in a run
def _only_on_star(action: str) -> bool:
    """True when IAM's data lists ``action`` with no resource type: "*" is the only Resource it
    accepts. An action the data does not know (newer than it) is not: it stays with the scoped ones."""
    return is_known(action) and not has_resource_types(action)


def _word(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace("_", "-").split("-"))


def _size(statement: Statement) -> int:
    return len(json.dumps(statement, separators=(",", ":"), default=_text))


def _text(value: Any) -> Any:
    if hasattr(value, "JSONrepr"):
        return value.JSONrepr()
    return value.to_dict() if hasattr(value, "to_dict") else str(value)


def _chunks(statements: Sequence[Statement]) -> list[list[Statement]]:
    """Statements in groups whose policy stays within IAM's managed policy size."""
    chunks: list[list[Statement]] = [[]]
    used = 0
    for statement in statements:
        size = _size(statement)
        if size > POLICY_CHARACTERS:
            raise ValueError(
                f"statement {statement.Sid} alone exceeds a managed policy's {POLICY_CHARACTERS} characters"
            )
        if used + size > POLICY_CHARACTERS and chunks[-1]:
            chunks.append([])
            used = 0
        chunks[-1].append(statement)
        used += size + 1
    return chunks
