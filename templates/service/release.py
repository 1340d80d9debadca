"""Releases, shared by every kind: the role the service's release assumes (ECS controller: update
the stack; CODE_DEPLOY: a deployment of its group), and the pre-release hook."""

from __future__ import annotations

import json

from awacs import awslambda as lambda_actions
from awacs import cloudformation as cfn_actions
from awacs import codedeploy as codedeploy_actions
from awacs import ecs as ecs_actions
from awacs import iam as iam_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import ssm
from awacs import sts as sts_actions
from awacs.aws import Allow, ArnEquals, Condition, ForAnyValueStringEquals, Principal, Statement, StringEquals
from troposphere import GetAtt, Sub, Template, ecs
from troposphere.iam import Policy, Role

from infra_templates import constructs, iam
from infra_templates.layer import LayerContext
from infra_templates.naming import (
    artifact_bucket_name,
    artifact_key_alias,
    deployer_role_name,
    image_tag_parameter,
    pipeline_role_name,
    release_build_role_name,
    release_name,
    service_role_name,
)
from templates.contracts import Keys, Platform


def pass_roles(roles: list[Role]) -> Statement:
    return iam.allow(
        "PassThisServicesTaskRoles",
        [iam_actions.PassRole],
        [GetAtt(role, "Arn") for role in roles],
        conditions=[StringEquals("iam:PassedToService", "ecs-tasks.amazonaws.com")],
    )


def release_role(t: Template, ctx: LayerContext, name: str, *, roles: list[Role], codedeploy: bool) -> None:
    """The role this service's release (in the registry's account) assumes to release it here.

    Named, so the release can name it before this stack exists. ECS controller: trusted by the
    service's release build (``{project}-{service}-release``), which writes the image tag parameter
    and updates this stack through CloudFormation, with the deployer's CloudFormation role.
    CODE_DEPLOY controller: trusted by the service's pipeline, which reads its artifacts and starts
    a CodeDeploy deployment, passing only this service's task roles.
    """
    env = ctx.env
    registry = env.registry.account_id
    if codedeploy:
        principal = pipeline_role_name(env.project, name)
        statements = _codedeploy_release_statements(ctx, name, roles)
    else:
        principal = release_build_role_name(env.project, name)
        parameter = image_tag_parameter(env.project, env.name, name)
        statements = [
            iam.allow(
                "WriteThisServicesImageTag",
                [ssm.GetParameter, ssm.GetParameters, ssm.PutParameter],
                [Sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter%s" % parameter)],
            ),
            iam.allow(
                "UpdateThisStack",
                [cfn_actions.DescribeStacks, cfn_actions.UpdateStack],
                [
                    Sub(
                        "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"
                    )
                ],
            ),
            iam.allow(
                "UpdateItAsTheDeployersCloudFormationRole",
                [iam_actions.PassRole],
                [
                    Sub(
                        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/%s"
                        % deployer_role_name(env.project, env.name, "cfn")
                    )
                ],
                conditions=[StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")],
            ),
        ]
    trusted = "arn:${AWS::Partition}:iam::%s:role/%s" % (registry, principal)
    t.add_resource(
        Role(
            "ReleaseRole",
            RoleName=service_role_name(env.project, env.name, name, "deploy"),
            Description=f"The {name} release (account {registry}) releases {ctx.stack_name} with this role",
            AssumeRolePolicyDocument=iam.document(
                Statement(
                    Sid="TrustThisServicesRelease",
                    Effect=Allow,
                    Principal=Principal("AWS", Sub("arn:${AWS::Partition}:iam::%s:root" % registry)),
                    Action=[sts_actions.AssumeRole],
                    Condition=Condition([ArnEquals("aws:PrincipalArn", Sub(trusted))]),
                )
            ),
            Policies=[Policy(PolicyName="release", PolicyDocument=iam.document(*statements))],
        )
    )


def _codedeploy_release_statements(ctx: LayerContext, name: str, roles: list[Role]) -> list[Statement]:
    """Read the pipeline's artifacts (bucket and key in the registry's account, the release's
    region), register the task definition, start a deployment of this service's group."""
    env = ctx.env
    registry = env.registry.account_id
    bucket = artifact_bucket_name(env.project, registry, env.region)
    release = release_name(env.project, env.name, name)
    return [
        iam.allow(
            "ReadThePipelinesArtifacts",
            [s3_actions.GetObject, s3_actions.GetObjectVersion],
            [Sub("arn:${AWS::Partition}:s3:::%s/*" % bucket)],
        ),
        iam.allow(
            "DecryptThePipelinesArtifacts",
            [kms_actions.Decrypt, kms_actions.DescribeKey],
            [Sub("arn:${AWS::Partition}:kms:${AWS::Region}:%s:key/*" % registry)],
            conditions=[
                ForAnyValueStringEquals("kms:ResourceAliases", artifact_key_alias(env.project)),
                StringEquals("kms:ViaService", Sub("s3.${AWS::Region}.amazonaws.com")),
            ],
        ),
        # Registering a task definition has no resource-level permissions.
        iam.allow(
            "RegisterTaskDefinitions",
            [ecs_actions.RegisterTaskDefinition, ecs_actions.DescribeTaskDefinition],
            ["*"],
        ),
        pass_roles(roles),
        iam.allow(
            "ReleaseThroughThisServicesDeploymentGroup",
            [
                codedeploy_actions.CreateDeployment,
                codedeploy_actions.GetDeployment,
                codedeploy_actions.GetApplication,
                codedeploy_actions.GetApplicationRevision,
                codedeploy_actions.RegisterApplicationRevision,
                codedeploy_actions.GetDeploymentConfig,
            ],
            [
                iam.arn("codedeploy", f"application:{release}"),
                iam.arn("codedeploy", f"deploymentgroup:{release}/{release}"),
                iam.arn("codedeploy", f"deploymentconfig:{env.deployment.traffic_shift}"),
            ],
        ),
    ]


PRE_RELEASE_CODE = """\
# The pre-release hook of an ECS deployment (lifecycle stage POST_SCALE_UP: the new revision's
# tasks run, no traffic reaches them yet). It runs one task of the new revision with the service's
# pre-release command and answers IN_PROGRESS until the task stops, then SUCCEEDED on exit code 0
# and FAILED otherwise, which rolls the deployment back. Stateless between invocations: the task is
# found again by its startedBy, derived from the revision. Amazon ECS Developer Guide, "Lambda hooks
# for Amazon ECS service deployments" (hookStatus, callBackDelay) and "Lifecycle hooks for Amazon
# ECS service deployments" (the payload: serviceArn, targetServiceRevisionArn).
import json
import os

import boto3

ECS = boto3.client("ecs")
CONTAINER = os.environ["CONTAINER"]
COMMAND = json.loads(os.environ["COMMAND"])
WAIT = {"hookStatus": "IN_PROGRESS", "callBackDelay": 30}


def handler(event, context):
    revision_arn = event["targetServiceRevisionArn"]
    cluster = event["serviceArn"].split("/")[-2]
    started_by = "pre-release-" + revision_arn.rsplit("/", 1)[-1]
    found = []
    for status in ("RUNNING", "STOPPED"):
        found += ECS.list_tasks(cluster=cluster, startedBy=started_by, desiredStatus=status)["taskArns"]
    if not found:
        (revision,) = ECS.describe_service_revisions(serviceRevisionArns=[revision_arn])["serviceRevisions"]
        started = ECS.run_task(
            cluster=cluster,
            taskDefinition=revision["taskDefinition"],
            startedBy=started_by,
            capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
            networkConfiguration=revision["networkConfiguration"],
            overrides={"containerOverrides": [{"name": CONTAINER, "command": COMMAND}]},
        )
        if started.get("failures") or not started.get("tasks"):
            print("the pre-release task did not start:", json.dumps(started.get("failures"), default=str))
            return {"hookStatus": "FAILED"}
        print("started", started["tasks"][0]["taskArn"], "with", json.dumps(COMMAND))
        return WAIT
    (task,) = ECS.describe_tasks(cluster=cluster, tasks=found[:1])["tasks"]
    if task["lastStatus"] != "STOPPED":
        return WAIT
    code = next((c.get("exitCode") for c in task["containers"] if c["name"] == CONTAINER), None)
    print(task["taskArn"], "exit code", code, task.get("stoppedReason", ""))
    return {"hookStatus": "SUCCEEDED" if code == 0 else "FAILED"}
"""


def pre_release_hook(
    t: Template, ctx: LayerContext, name: str, command: list[str], *, ecs_service: ecs.Service, roles: list[Role]
) -> None:
    """The service's pre-release command as an ECS lifecycle hook at POST_SCALE_UP: a Lambda
    function runs it as a task of the new revision (its task definition, network configuration,
    on FARGATE) before test or production traffic moves, and a non-zero exit fails the hook, which
    rolls the deployment back (and with it the stack update of the release)."""
    env = ctx.env
    cluster = ctx.import_value(Platform.CLUSTER_NAME)
    family = Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/%s:*" % ctx.stack_name)
    in_cluster = [ArnEquals("ecs:cluster", ctx.import_value(Platform.CLUSTER_ARN))]
    function, _ = constructs.inline_function(
        t,
        env,
        "PreReleaseHook",
        role_title="PreReleaseRole",
        code=PRE_RELEASE_CODE,
        description=f"Runs {name}'s pre-release command as a task of the new revision before traffic shifts",
        role_description=f"The pre-release hook of {ctx.stack_name}: runs one task of the new revision",
        policy_name="run-pre-release",
        statements=[
            iam.allow(
                "ReadTheNewRevision",
                [ecs_actions.DescribeServiceRevisions],
                [
                    Sub(
                        "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:"
                        "service-revision/${Cluster}/%s/*" % name,
                        Cluster=cluster,
                    )
                ],
            ),
            iam.allow("RunATaskOfThisService", [ecs_actions.RunTask], [family], conditions=in_cluster),
            # ecs:ListTasks is scoped by the cluster condition key, not by a resource ARN.
            iam.allow("FindItsTask", [ecs_actions.ListTasks], ["*"], conditions=in_cluster),
            iam.allow(
                "WatchItsTask",
                [ecs_actions.DescribeTasks],
                [
                    Sub(
                        "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${Cluster}/*",
                        Cluster=cluster,
                    )
                ],
            ),
            pass_roles(roles),
        ],
        log_group_title="PreReleaseLogGroup",
        log_retention_days=env.platform.log_retention_days,
        logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
        variables={"CONTAINER": name, "COMMAND": json.dumps(command)},
        skips=(
            ("CKV_AWS_117", "No VPC on purpose: the hook only calls the ECS API"),
            ("CKV_AWS_116", "ECS invokes the hook synchronously and rolls back when it fails: no event to keep"),
            ("CKV_AWS_173", "Its variables are the container name and the command from the settings, no secret"),
        ),
    )
    invoker = t.add_resource(
        Role(
            "PreReleaseInvokeRole",
            Description=f"ECS calls the pre-release hook of {ctx.stack_name}",
            AssumeRolePolicyDocument=iam.service_trust("ecs.amazonaws.com"),
            Policies=[
                Policy(
                    PolicyName="invoke-pre-release",
                    PolicyDocument=iam.document(
                        iam.allow("InvokeThisServicesHook", [lambda_actions.InvokeFunction], [GetAtt(function, "Arn")])
                    ),
                )
            ],
        )
    )
    ecs_service.DeploymentConfiguration.LifecycleHooks = [
        ecs.DeploymentLifecycleHook(
            HookTargetArn=GetAtt(function, "Arn"),
            RoleArn=GetAtt(invoker, "Arn"),
            LifecycleStages=["POST_SCALE_UP"],
        )
    ]
