"""The roles every kind of service shares: the execution role ECS starts its tasks with (its
image, its log group, its secrets) and the task role its application runs with (only what its
settings grant)."""

from __future__ import annotations

from typing import Any

from awacs import ecr as ecr_actions
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import rds_db, secretsmanager, ssm, ssmmessages
from awacs import s3 as s3_actions
from awacs.aws import Statement, StringEquals
from troposphere import GetAtt, Sub
from troposphere.iam import Policy, Role

from infra_templates import iam
from infra_templates.config import Service
from infra_templates.layer import LayerContext
from infra_templates.naming import image_region, repository_name, service_role_name
from templates.contracts import Data, Keys, assets_bucket_arn, database_user
from templates.service import queues


def ecs_trust() -> Any:
    return iam.service_trust(
        "ecs-tasks.amazonaws.com", source_arn=Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*")
    )


def execution_role(ctx: LayerContext, name: str, service: Service, logs: Any) -> Role:
    """What ECS itself needs to start the task: this image, this log group, these secrets. No more.

    No KMS permission for the image: ECR decrypts it with its own grant on the repository's key (the
    registry's, or in a DR region the replicas' key), whoever pulls.
    """
    env = ctx.env
    repository = Sub(
        "arn:${AWS::Partition}:ecr:%s:%s:repository/%s"
        % (image_region(env), env.registry.account_id, repository_name(env.project, name))
    )
    statements: list[Statement] = [
        iam.allow(
            "PullThisServicesImage",
            [ecr_actions.BatchCheckLayerAvailability, ecr_actions.BatchGetImage, ecr_actions.GetDownloadUrlForLayer],
            [repository],
        ),
        # ecr:GetAuthorizationToken has no resource-level permissions: AWS accepts only "*" here.
        iam.allow("GetRegistryLoginToken", [ecr_actions.GetAuthorizationToken], ["*"]),
        iam.allow(
            "WriteThisServicesLogs", [logs_actions.CreateLogStream, logs_actions.PutLogEvents], [GetAtt(logs, "Arn")]
        ),
    ]
    references = [*service.secrets.values(), *(ref for sidecar in service.sidecars for ref in sidecar.secrets.values())]
    secret_arns = sorted({secret_arn(ref) for ref in references if ref.startswith("secretsmanager:")})
    if secret_arns:
        # The complete ARNs that the task definition's ValueFrom names (the settings give each
        # secret's name with its 6-character suffix): what ECS reads is exactly what is granted.
        statements.append(
            iam.allow("ReadThisServicesSecrets", [secretsmanager.GetSecretValue], [Sub(a) for a in secret_arns])
        )
    parameter_arns = sorted({parameter_arn(ref) for ref in references if ref.startswith("ssm:")})
    if parameter_arns:
        statements.append(
            iam.allow("ReadThisServicesParameters", [ssm.GetParameters], [Sub(a) for a in parameter_arns])
        )
    return Role(
        "ExecutionRole",
        RoleName=service_role_name(env.project, env.name, name, "exec"),  # taskdef.json names it
        Description=f"ECS starts {ctx.stack_name}: pulls its image, writes its logs, reads its secrets",
        AssumeRolePolicyDocument=ecs_trust(),
        Policies=[Policy(PolicyName="start-task", PolicyDocument=iam.document(*statements))],
    )


def task_role(ctx: LayerContext, name: str, service: Service) -> Role:
    """What the application may do. Empty unless the settings grant something."""
    statements: list[Statement] = []
    if service.exec:
        # ECS Exec opens a Session Manager channel; ssmmessages has no resource-level permissions.
        statements.append(
            iam.allow(
                "EcsExecSessionChannels",
                [
                    ssmmessages.CreateControlChannel,
                    ssmmessages.CreateDataChannel,
                    ssmmessages.OpenControlChannel,
                    ssmmessages.OpenDataChannel,
                ],
                ["*"],
            )
        )
    statements.extend(_asset_statements(ctx, service))
    statements.extend(_database_statements(ctx, name, service))
    statements.extend(queues.statements(ctx, name, service))
    role = Role(
        "TaskRole",
        RoleName=service_role_name(ctx.env.project, ctx.env.name, name, "task"),  # taskdef.json names it
        Description=f"What the {name} application may do in AWS: only what its settings grant",
        AssumeRolePolicyDocument=ecs_trust(),
    )
    if statements:
        role.Policies = [Policy(PolicyName="application", PolicyDocument=iam.document(*statements))]
    return role


def _database_statements(ctx: LayerContext, name: str, service: Service) -> list[Statement]:
    """With ``database_access``: sign in to the cluster as the service's own database user with IAM
    database authentication, and as no other user. The resource is the user's ``dbuser`` ARN, named
    by the cluster's resource id ("Creating and using an IAM policy for IAM database access",
    Amazon Aurora User Guide). No secret: the application generates a 15-minute token per
    connection with the task role's credentials, so there is no password to read or to rotate."""
    if not service.database_access:
        return []
    user = Sub(
        "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${ResourceId}/%s" % database_user(name),
        ResourceId=ctx.import_value(Data.CLUSTER_RESOURCE_ID),
    )
    return [iam.allow("ConnectAsThisServicesDatabaseUser", [rds_db.connect], [user])]


def _asset_statements(ctx: LayerContext, service: Service) -> list[Statement]:
    """Read (or read and write) on the static-assets bucket's objects, as the settings grant."""
    if service.assets == "none":
        return []
    bucket = ctx.import_value(assets_bucket_arn(ctx.env))
    objects = Sub("${Bucket}/*", Bucket=bucket)
    via_s3 = [StringEquals("kms:ViaService", Sub("s3.${AWS::Region}.amazonaws.com"))]
    statements = [
        iam.allow("ListTheAssetsBucket", [s3_actions.ListBucket], [bucket]),
        iam.allow("ReadAssets", [s3_actions.GetObject], [objects]),
    ]
    key_actions = [kms_actions.Decrypt]
    if service.assets == "write":
        statements.append(iam.allow("WriteAssets", [s3_actions.PutObject, s3_actions.DeleteObject], [objects]))
        key_actions.append(kms_actions.GenerateDataKey)
    statements.append(
        iam.allow("UseTheAssetsKeyThroughS3", key_actions, [ctx.import_value(Keys.DATA_KEY_ARN)], conditions=via_s3)
    )
    return statements


def secret_arn(reference: str) -> str:
    """The complete ARN of a ``secretsmanager:NAME-SUFFIX[#key]`` reference, in this account and
    region (a replicated secret keeps its name and suffix in the replica's region). ECS takes "the
    full ARN of the Secrets Manager secret" (ECS API reference, Secret.valueFrom)."""
    name = reference.removeprefix("secretsmanager:").split("#", 1)[0]
    return "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + name


def parameter_arn(reference: str) -> str:
    return "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter" + reference.removeprefix("ssm:")
