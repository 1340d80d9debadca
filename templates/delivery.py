"""Delivery layers, once per project in the registry's account: what the release pipelines share
(``delivery``: the artifact bucket and key of the registry's region and the notification topic;
``delivery-artifacts-<region>``: a bucket and key in each other region a release deploys to) and
one stack per service (``delivery-<service>``): its source, build and CodePipeline V2 pipeline.

The pipeline runs in the registry's account; environments live in other accounts. What crosses
accounts: each deploy action assumes the service's release role in the environment's account
(``{project}-{env}-{service}-deploy``, created by the service stack there), which reads the
artifacts from the bucket of its region in the registry's account; the bucket policies and the key
policies let exactly those roles read. Nothing else crosses: CodeDeploy and ECS run in the
environment's account, the image is pulled from the registry as the service stacks already allow
(a DR environment's from ECR's replica in its own region, same account).

The build pushes to the registry's region only; ECR replicates to the DR regions asynchronously,
usually within minutes. The Dr stage comes after Prod (and its approval), so the replica is there
long before; if a Dr release ever fails with CannotPullContainerError, retry the stage once
``aws ecr describe-images --region <dr region>`` lists the tag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from awacs import codebuild as codebuild_actions
from awacs import codecommit as codecommit_actions
from awacs import codeconnections, codestar_connections
from awacs import codepipeline as codepipeline_actions
from awacs import ecr as ecr_actions
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import s3 as s3_actions
from awacs import sns as sns_actions
from awacs import sts as sts_actions
from awacs.aws import ArnEquals, ArnLike, ForAnyValueStringEquals, Principal, Statement, StringEquals
from troposphere import (
    Export,
    GetAtt,
    ImportValue,
    Output,
    Ref,
    Sub,
    Template,
    codebuild,
    codecommit,
    codepipeline,
    events,
    kms,
    logs,
    s3,
    sns,
)
from troposphere.iam import Policy, Role

from infra_templates import constructs, iam
from infra_templates.config import Environment, Project
from infra_templates.layer import ExportSpec
from infra_templates.naming import (
    artifact_bucket_name,
    artifact_key_alias,
    cluster_name,
    deployer_role_name,
    image_region,
    image_tag_parameter,
    logical_id,
    pipeline_role_name,
    release_build_role_name,
    release_name,
    repository_name,
    service_role_name,
    stack_name,
)
from templates.contracts import Delivery

SOURCE = "Source"
BUILD = "BuildOutput"
COMMIT_ID = "#{SourceVariables.CommitId}"
BUILD_VARIABLES = "BuildVariables"  # the build action's namespace: it exports IMAGE_TAG, the tag it pushed
IMAGE_TAG = "#{%s.IMAGE_TAG}" % BUILD_VARIABLES
# The release of an ECS-controller service: write its image tag parameter, update its stack with
# the previous template (CloudFormation resolves the parameter again), wait; on failure put the
# previous tag back, so the parameter always names what runs. A stack that does not exist yet takes
# the tag when it is created. Runs in the registry's account, as the environment's release role.
RELEASE_BUILDSPEC = r"""version: 0.2
env:
  shell: bash
phases:
  build:
    commands:
      - |
        set -euo pipefail
        test -n "$IMAGE_TAG"
        read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN < <(aws sts assume-role \
          --role-arn "$RELEASE_ROLE" --role-session-name "release-$IMAGE_TAG" \
          --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)
        export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
        export AWS_REGION="$RELEASE_REGION" AWS_DEFAULT_REGION="$RELEASE_REGION"
        previous=$(aws ssm get-parameter --name "$PARAMETER_NAME" --query Parameter.Value --output text \
          2>/dev/null || true)
        aws ssm put-parameter --name "$PARAMETER_NAME" --value "$IMAGE_TAG" --type String --overwrite >/dev/null
        if ! aws cloudformation describe-stacks --stack-name "$STACK_NAME" >/dev/null 2>&1; then
          echo "$STACK_NAME does not exist yet: it runs $IMAGE_TAG once it is created"
          exit 0
        fi
        params=()
        for key in $(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
            --query 'Stacks[0].Parameters[].ParameterKey' --output text); do
          params+=("ParameterKey=$key,UsePreviousValue=true")
        done
        if out=$(aws cloudformation update-stack --stack-name "$STACK_NAME" --use-previous-template \
            --role-arn "$CFN_ROLE" --capabilities CAPABILITY_NAMED_IAM --parameters "${params[@]}" 2>&1); then
          if aws cloudformation wait stack-update-complete --stack-name "$STACK_NAME"; then
            echo "$STACK_NAME runs $IMAGE_TAG"
            exit 0
          fi
          echo "the update of $STACK_NAME failed and was rolled back" >&2
        elif grep -q "No updates are to be performed" <<<"$out"; then
          echo "$STACK_NAME already runs $IMAGE_TAG"
          exit 0
        else
          echo "$out" >&2
        fi
        if [ -n "$previous" ] && [ "$previous" != "None" ]; then
          aws ssm put-parameter --name "$PARAMETER_NAME" --value "$previous" --type String --overwrite >/dev/null
        fi
        exit 1
"""


# Server access logs of an artifact bucket are kept a year: who read a release's artifacts is
# asked long after the artifacts themselves expired.
ARTIFACT_ACCESS_LOG_DAYS = 365


def release_regions(project: Project) -> list[str]:
    """Regions a release deploys to besides the registry's: each needs an artifact store there."""
    return sorted({e.region for e in _released_to(project)} - {project.region})


def _released_to(project: Project) -> list[Environment]:
    """The stages' environments, in release order (of those loaded: ``--env`` loads only some)."""
    by_name = {e.name: e for e in project.environments}
    return [by_name[s] for s in project.delivery.stages if s in by_name]


def _stages(project: Project, service: str) -> list[Environment]:
    """The environments this service is released to, in the settings' order (those that run it)."""
    return [e for e in _released_to(project) if service in e.services]


def _template(project: Project, unit: str, description: str) -> Template:
    t = Template()
    t.set_version("2010-09-09")
    t.set_description(
        f"{stack_name(project.name, None, unit)}: {description} (generated by infra-templates; do not edit)"
    )
    return t


def _export(t: Template, project: Project, spec: ExportSpec, value: object) -> None:
    t.add_output(
        Output(spec.key, Description=spec.description, Value=value, Export=Export(spec.name(project.environments[0])))
    )


def _import(project: Project, spec: ExportSpec) -> ImportValue:
    return ImportValue(spec.name(project.environments[0]))


def _deploy_principals(project: Project, region: str) -> tuple[Principal, ArnLike] | None:
    """The release roles of the environments in ``region``: their accounts, narrowed to the roles."""
    envs = sorted(
        (e for e in project.environments if e.region == region and e.name in project.delivery.stages),
        key=lambda e: e.name,
    )
    if not envs:
        return None
    accounts = sorted({e.account_id for e in envs})
    principal = Principal("AWS", [Sub("arn:${AWS::Partition}:iam::%s:root" % a) for a in accounts])
    roles = ArnLike(
        "aws:PrincipalArn",
        [
            Sub(
                "arn:${AWS::Partition}:iam::%s:role/%s"
                % (e.account_id, service_role_name(project.name, e.name, "*", "deploy"))
            )
            for e in envs
        ],
    )
    return principal, roles


def _deployer_principals(deployers: Sequence[Environment]) -> tuple[Principal, ArnEquals] | None:
    """The infrastructure pipeline's action roles of these environments (deployer stacks)."""
    envs = sorted(deployers, key=lambda e: e.name)
    if not envs:
        return None
    accounts = sorted({e.account_id for e in envs})
    principal = Principal("AWS", [Sub("arn:${AWS::Partition}:iam::%s:root" % a) for a in accounts])
    roles = ArnEquals(
        "aws:PrincipalArn",
        [
            Sub(
                "arn:${AWS::Partition}:iam::%s:role/%s"
                % (e.account_id, deployer_role_name(e.project, e.name, "action"))
            )
            for e in envs
        ],
    )
    return principal, roles


def _artifacts(
    t: Template, project: Project, region: str, deployers: Sequence[Environment], *, shared: bool
) -> tuple[kms.Key, s3.Bucket]:
    """The artifact key and bucket of one region, named so pipelines and release roles in other
    stacks and accounts can name them. ``deployers``: the environments whose deployer action role
    deploys stacks in this region for the infrastructure pipeline (it reads templates, writes outputs)."""
    users: list[Statement] = []
    readers = _deploy_principals(project, region)
    writers = _deployer_principals(deployers)
    if writers is not None:
        deployer_accounts, deployer_roles = writers
        users.append(
            iam.allow(
                "InfrastructurePipelineActionRolesUseArtifacts",
                [kms_actions.Decrypt, kms_actions.DescribeKey, kms_actions.Encrypt, kms_actions.GenerateDataKey],
                ["*"],
                conditions=[deployer_roles],
                principal=deployer_accounts,
            )
        )
    if readers is not None:
        principal, roles = readers
        users.append(
            iam.allow(
                "ReleaseRolesOfTheEnvironmentsReadArtifacts",
                [kms_actions.Decrypt, kms_actions.DescribeKey],
                ["*"],
                conditions=[roles],
                principal=principal,
            )
        )
    if shared:
        users.append(
            iam.allow(
                "CloudWatchLogsEncryptsTheBuildLogs",
                [
                    kms_actions.Encrypt,
                    kms_actions.Decrypt,
                    kms_actions.ReEncryptFrom,
                    kms_actions.ReEncryptTo,
                    kms_actions.GenerateDataKey,
                    kms_actions.DescribeKey,
                ],
                ["*"],
                conditions=[
                    ArnLike(
                        "kms:EncryptionContext:aws:logs:arn",
                        Sub(
                            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:%s-delivery-*"
                            % project.name
                        ),
                    )
                ],
                principal=Principal("Service", Sub("logs.${AWS::Region}.amazonaws.com")),
            )
        )
        users.append(
            iam.allow(
                "EventBridgePublishesToTheEncryptedTopic",
                [kms_actions.Decrypt, kms_actions.GenerateDataKey],
                ["*"],
                conditions=[StringEquals("aws:SourceAccount", Sub("${AWS::AccountId}"))],
                principal=Principal("Service", "events.amazonaws.com"),
            )
        )
    key = t.add_resource(
        constructs.kms_key(
            "ArtifactKey", None, f"Encrypts the release pipelines' artifacts of {project.name}", iam.key_policy(*users)
        )
    )
    t.add_resource(
        constructs.kms_alias("ArtifactKeyAlias", artifact_key_alias(project.name).removeprefix("alias/"), key)
    )
    bucket = constructs.private_bucket(
        "ArtifactBucket",
        None,
        kms_key_arn=GetAtt(key, "Arn"),
        expire_days=project.delivery.artifact_expiration_days,
        noncurrent_days=1,
    )
    bucket.BucketName = artifact_bucket_name(project.name, project.account_id, region)
    access_logs, log_writes = constructs.access_log_bucket(
        "ArtifactAccessLogBucket",
        None,
        expire_days=ARTIFACT_ACCESS_LOG_DAYS,
        source_bucket_names=[bucket.BucketName],
    )
    t.add_resource(access_logs)
    t.add_resource(
        s3.BucketPolicy(
            "ArtifactAccessLogBucketPolicy",
            Bucket=Ref(access_logs),
            PolicyDocument=iam.document(constructs.deny_insecure_transport(access_logs), log_writes),
        )
    )
    bucket.LoggingConfiguration = s3.LoggingConfiguration(
        DestinationBucketName=Ref(access_logs), LogFilePrefix=f"s3/{bucket.BucketName}/"
    )
    t.add_resource(bucket)
    statements = [constructs.deny_insecure_transport(bucket)]
    if readers is not None:
        principal, roles = readers
        statements.append(
            iam.allow(
                "ReleaseRolesOfTheEnvironmentsReadArtifacts",
                [s3_actions.GetObject, s3_actions.GetObjectVersion],
                [Sub("${%s.Arn}/*" % bucket.title)],
                conditions=[roles],
                principal=principal,
            )
        )
    if writers is not None:
        deployer_accounts, deployer_roles = writers
        statements.append(
            iam.allow(
                "InfrastructurePipelineActionRolesReadTemplatesAndWriteOutputs",
                [s3_actions.GetObject, s3_actions.GetObjectVersion, s3_actions.PutObject],
                [Sub("${%s.Arn}/*" % bucket.title)],
                conditions=[deployer_roles],
                principal=deployer_accounts,
            )
        )
    t.add_resource(
        s3.BucketPolicy("ArtifactBucketPolicy", Bucket=Ref(bucket), PolicyDocument=iam.document(*statements))
    )
    return key, bucket


def build_shared(project: Project, deployers: Mapping[str, Sequence[Environment]]) -> Template:
    """``deployers``: per region, the environments whose deployer roles act there (see ``_artifacts``)."""
    t = _template(project, "delivery", "what the pipelines share: artifact bucket and key, notifications")
    key, bucket = _artifacts(t, project, project.region, deployers.get(project.region, ()), shared=True)
    topic = t.add_resource(
        sns.Topic(
            "NotificationTopic",
            DisplayName=f"{project.name} releases",
            KmsMasterKeyId=GetAtt(key, "Arn"),
        )
    )
    t.add_resource(
        sns.TopicPolicy(
            "NotificationTopicPolicy",
            Topics=[Ref(topic)],
            PolicyDocument=iam.document(
                iam.allow(
                    "EventBridgeReportsFailedReleases",
                    [sns_actions.Publish],
                    [Ref(topic)],
                    conditions=[StringEquals("aws:SourceAccount", Sub("${AWS::AccountId}"))],
                    principal=Principal("Service", "events.amazonaws.com"),
                )
            ),
        )
    )
    _export(t, project, Delivery.ARTIFACT_BUCKET_NAME, Ref(bucket))
    _export(t, project, Delivery.ARTIFACT_BUCKET_ARN, GetAtt(bucket, "Arn"))
    _export(t, project, Delivery.ARTIFACT_KEY_ARN, GetAtt(key, "Arn"))
    _export(t, project, Delivery.NOTIFICATION_TOPIC_ARN, Ref(topic))
    return t


def build_region(project: Project, region: str, deployers: Mapping[str, Sequence[Environment]]) -> Template:
    t = _template(project, f"delivery-artifacts-{region}", f"artifact bucket and key of the pipelines in {region}")
    _artifacts(t, project, region, deployers.get(region, ()), shared=False)
    return t


def build_service(project: Project, service: str) -> Template:
    delivery = project.delivery
    t = _template(project, f"delivery-{service}", f"the {service} release pipeline: source, build, deploy per stage")
    key_arn = _import(project, Delivery.ARTIFACT_KEY_ARN)
    topic = _import(project, Delivery.NOTIFICATION_TOPIC_ARN)
    stages = _stages(project, service)

    repository = None
    if delivery.connection is None:
        repository = t.add_resource(
            codecommit.Repository(
                "SourceRepository",
                RepositoryName=f"{project.name}-{service}",
                RepositoryDescription=f"Source of {service}; the pipeline releases branch {delivery.branch}",
            )
        )
        constructs.protect(repository, None, always=True)  # the code itself: never deleted with the stack

    log_group = t.add_resource(
        logs.LogGroup(
            "BuildLogGroup",
            LogGroupName=f"{project.name}-delivery-{service}-build",
            RetentionInDays=delivery.log_retention_days,
            KmsKeyId=key_arn,
        )
    )
    constructs.protect(log_group, None)
    build_role = t.add_resource(_build_role(project, service, log_group))
    build = t.add_resource(_build_project(project, service, build_role, log_group, key_arn))
    by_stack = [env for env in stages if not env.codedeploy(service)]
    release = None
    if by_stack:
        release_role = t.add_resource(_release_build_role(project, service, log_group, by_stack))
        release = t.add_resource(_release_project(project, service, release_role, log_group, key_arn))
    pipeline_role = t.add_resource(
        _pipeline_role(
            project, service, stages=stages, repository=repository, build=build, release=release, topic=topic
        )
    )
    pipeline = t.add_resource(
        codepipeline.Pipeline(
            "Pipeline",
            Name=f"{project.name}-{service}",
            PipelineType="V2",
            ExecutionMode="QUEUED",  # every commit is released in turn; none is skipped past an approval
            RoleArn=GetAtt(pipeline_role, "Arn"),
            ArtifactStores=artifact_stores(project, key_arn, [project.region, *release_regions(project)]),
            Stages=[
                source_stage(project, repository, _repository_id(project, service)),
                codepipeline.Stages(
                    Name="Build",
                    Actions=[
                        codepipeline.Actions(
                            Name="TestBuildPush",
                            ActionTypeId=codepipeline.ActionTypeId(
                                Category="Build", Owner="AWS", Provider="CodeBuild", Version="1"
                            ),
                            Configuration={
                                "ProjectName": Ref(build),
                                "EnvironmentVariables": json.dumps(
                                    [{"name": "COMMIT_ID", "value": COMMIT_ID, "type": "PLAINTEXT"}]
                                ),
                            },
                            InputArtifacts=[codepipeline.InputArtifacts(Name=SOURCE)],
                            OutputArtifacts=[codepipeline.OutputArtifacts(Name=BUILD)],
                            Namespace=BUILD_VARIABLES,
                            RunOrder=1,
                        )
                    ],
                ),
                *(_deploy_stage(project, service, env, topic, release) for env in stages),
            ],
        )
    )
    if repository is not None:
        start_on_push(t, project, repository, pipeline)
    notify_failures(t, project, pipeline, topic)
    t.add_output(Output("PipelineName", Description="The release pipeline", Value=Ref(pipeline)))
    if repository is not None:
        t.add_output(
            Output("CloneUrlHttp", Description="Push the service's code here", Value=GetAtt(repository, "CloneUrlHttp"))
        )
    return t


def source_stage(
    project: Project, repository: codecommit.Repository | None, repository_id: str | None
) -> codepipeline.Stages:
    """The Source stage: the CodeCommit ``repository``, or ``repository_id`` through the connection."""
    delivery = project.delivery
    if repository is not None:
        provider = "CodeCommit"
        configuration: dict[str, object] = {
            "RepositoryName": GetAtt(repository, "Name"),
            "BranchName": delivery.branch,
            "PollForSourceChanges": "false",  # an EventBridge rule starts the pipeline on a push
            "OutputArtifactFormat": "CODE_ZIP",
        }
    else:
        assert delivery.connection is not None
        provider = "CodeStarSourceConnection"
        configuration = {
            "ConnectionArn": delivery.connection.arn,
            "FullRepositoryId": repository_id,
            "BranchName": delivery.branch,
            "DetectChanges": "true",
            "OutputArtifactFormat": "CODE_ZIP",
        }
    return codepipeline.Stages(
        Name="Source",
        Actions=[
            codepipeline.Actions(
                Name="Source",
                Namespace="SourceVariables",
                ActionTypeId=codepipeline.ActionTypeId(Category="Source", Owner="AWS", Provider=provider, Version="1"),
                Configuration=configuration,
                OutputArtifacts=[codepipeline.OutputArtifacts(Name=SOURCE)],
                RunOrder=1,
            )
        ],
    )


def _deploy_stage(
    project: Project, service: str, env: Environment, topic: object, release: codebuild.Project | None
) -> codepipeline.Stages:
    """One environment: an approval first if the settings ask, then the release in its account:
    through CloudFormation (the ECS controller: the release build writes the image tag parameter
    and updates the service stack), or a CodeDeploy deployment (the CODE_DEPLOY controller)."""
    actions = []
    if env.name in project.delivery.approval_before:
        actions.append(
            codepipeline.Actions(
                Name=f"Approve{logical_id(env.name)}",
                ActionTypeId=codepipeline.ActionTypeId(
                    Category="Approval", Owner="AWS", Provider="Manual", Version="1"
                ),
                Configuration={
                    "NotificationArn": topic,
                    "CustomData": f"Release {service} commit {COMMIT_ID} to {env.name}?",
                },
                RunOrder=1,
            )
        )
    role = Sub(
        "arn:${AWS::Partition}:iam::%s:role/%s"
        % (env.account_id, service_role_name(project.name, env.name, service, "deploy"))
    )
    if not env.codedeploy(service):
        assert release is not None
        actions.append(_release_action(project, service, env, release, run_order=len(actions) + 1))
        return codepipeline.Stages(Name=logical_id(env.name), Actions=actions)
    configuration: dict[str, object]
    # A DR environment pulls from ECR's replica in its own region: the build wrote that image into
    # its task definition, since imageDetail.json names the registry's region.
    replica = image_region(env) != project.region
    if env.codedeploy(service):
        provider = "CodeDeployToECS"
        configuration = {
            "ApplicationName": release_name(project.name, env.name, service),
            "DeploymentGroupName": release_name(project.name, env.name, service),
            "TaskDefinitionTemplateArtifact": BUILD,
            "TaskDefinitionTemplatePath": f"taskdef-{env.name}.json",
            "AppSpecTemplateArtifact": BUILD,
            "AppSpecTemplatePath": f"appspec-{env.name}.yaml",
        }
        if not replica:
            configuration.update(Image1ArtifactName=BUILD, Image1ContainerName="IMAGE1_NAME")
    else:
        provider = "ECS"
        configuration = {
            "ClusterName": cluster_name(project.name, env.name),
            "ServiceName": service,
            "FileName": f"imagedefinitions-{env.name}.json" if replica else "imagedefinitions.json",
        }
    actions.append(
        codepipeline.Actions(
            Name=f"Release{logical_id(env.name)}",
            ActionTypeId=codepipeline.ActionTypeId(Category="Deploy", Owner="AWS", Provider=provider, Version="1"),
            Configuration=configuration,
            InputArtifacts=[codepipeline.InputArtifacts(Name=BUILD)],
            Region=env.region,
            RoleArn=role,
            RunOrder=len(actions) + 1,
        )
    )
    return codepipeline.Stages(Name=logical_id(env.name), Actions=actions)


def _release_action(
    project: Project, service: str, env: Environment, release: codebuild.Project, *, run_order: int
) -> codepipeline.Actions:
    """Release the tag the build pushed to ``env`` through CloudFormation (RELEASE_BUILDSPEC)."""
    variables = {
        "IMAGE_TAG": IMAGE_TAG,
        "RELEASE_ROLE": "arn:${AWS::Partition}:iam::%s:role/%s"
        % (env.account_id, service_role_name(project.name, env.name, service, "deploy")),
        "RELEASE_REGION": env.region,
        "STACK_NAME": stack_name(project.name, env.name, f"svc-{service}"),
        "PARAMETER_NAME": image_tag_parameter(project.name, env.name, service),
        "CFN_ROLE": "arn:${AWS::Partition}:iam::%s:role/%s"
        % (env.account_id, deployer_role_name(project.name, env.name, "cfn")),
    }
    return codepipeline.Actions(
        Name=f"Release{logical_id(env.name)}",
        ActionTypeId=codepipeline.ActionTypeId(Category="Build", Owner="AWS", Provider="CodeBuild", Version="1"),
        Configuration={
            "ProjectName": Ref(release),
            # Sub: the roles' ARNs in the pipeline's partition (the environments share it)
            "EnvironmentVariables": Sub(
                json.dumps([{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()])
            ),
        },
        InputArtifacts=[codepipeline.InputArtifacts(Name=BUILD)],
        RunOrder=run_order,
    )


def _release_project(
    project: Project, service: str, role: Role, log_group: logs.LogGroup, key_arn: object
) -> codebuild.Project:
    """Releases the pushed image to one environment per run, through CloudFormation."""
    return codebuild.Project(
        "Release",
        Description=f"Releases {service} to an environment: writes its image tag parameter and updates its stack",
        ServiceRole=GetAtt(role, "Arn"),
        Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec=RELEASE_BUILDSPEC),
        Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
        EncryptionKey=key_arn,
        TimeoutInMinutes=120,  # a canary or linear shift and the bake time run inside the stack update
        Environment=codebuild.Environment(
            Type="LINUX_CONTAINER",
            ComputeType="BUILD_GENERAL1_SMALL",
            Image=project.delivery.build_image,
            ImagePullCredentialsType="CODEBUILD",
        ),
        LogsConfig=codebuild.LogsConfig(
            CloudWatchLogs=codebuild.CloudWatchLogs(Status="ENABLED", GroupName=Ref(log_group)),
            S3Logs=codebuild.S3Logs(Status="DISABLED"),
        ),
    )


def _release_build_role(
    project: Project, service: str, log_group: logs.LogGroup, environments: Sequence[Environment]
) -> Role:
    """The release build: its logs, the pipeline's artifacts (its input), and assuming this
    service's release role in the environments it releases to through CloudFormation."""
    keys, by_alias = artifact_keys(project, [project.region])
    statements = [
        iam.allow(
            "WriteThisBuildsLogs", [logs_actions.CreateLogStream, logs_actions.PutLogEvents], [GetAtt(log_group, "Arn")]
        ),
        iam.allow(
            "ReadArtifacts",
            [s3_actions.GetObject, s3_actions.GetObjectVersion],
            [artifact_objects(project, project.region)],
        ),
        iam.allow("UseTheArtifactKey", [kms_actions.Decrypt, kms_actions.DescribeKey], keys, conditions=[by_alias]),
        _assume_release_roles(project, service, environments),
    ]
    return Role(
        "ReleaseBuildRole",
        RoleName=release_build_role_name(project.name, service),  # named: the release roles trust it by name
        Description=f"CodeBuild releases {service} through CloudFormation in each environment",
        AssumeRolePolicyDocument=iam.service_trust(
            "codebuild.amazonaws.com", source_arn=iam.arn("codebuild", "project/*")
        ),
        Policies=[Policy(PolicyName="release", PolicyDocument=iam.document(*statements))],
    )


def _repository_id(project: Project, service: str) -> str | None:
    """The service's repository id through the connection, if there is one."""
    connection = project.delivery.connection
    return None if connection is None else connection.repositories[service]


def artifact_stores(project: Project, key_arn: object, regions: list[str]) -> list[codepipeline.ArtifactStoreMap]:
    """An artifact store per region the pipeline acts in: the bucket and key of that region."""
    return [
        codepipeline.ArtifactStoreMap(
            Region=region,
            ArtifactStore=codepipeline.ArtifactStore(
                Type="S3",
                Location=artifact_bucket_name(project.name, project.account_id, region),
                EncryptionKey=codepipeline.EncryptionKey(
                    Type="KMS",
                    Id=key_arn
                    if region == project.region
                    else Sub(
                        "arn:${AWS::Partition}:kms:%s:${AWS::AccountId}:%s" % (region, artifact_key_alias(project.name))
                    ),
                ),
            ),
        )
        for region in regions
    ]


def _build_project(
    project: Project, service: str, role: Role, log_group: logs.LogGroup, key_arn: object
) -> codebuild.Project:
    delivery = project.delivery
    build = codebuild.Project(
        "Build",
        Description=f"Tests {service}, builds its image and pushes it tagged with the commit id. Privileged "
        "mode only because docker build needs the Docker daemon",
        ServiceRole=GetAtt(role, "Arn"),
        Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec="buildspec.yml"),
        Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
        EncryptionKey=key_arn,
        TimeoutInMinutes=60,
        Environment=codebuild.Environment(
            Type="LINUX_CONTAINER",
            ComputeType=delivery.build_compute,
            Image=delivery.build_image,
            ImagePullCredentialsType="CODEBUILD",
            # Privileged only because `docker build` needs the Docker daemon; the build runs only
            # this repository's code, from the release branch.
            PrivilegedMode=True,
            EnvironmentVariables=[
                codebuild.EnvironmentVariable(
                    Name="REPOSITORY_URI", Type="PLAINTEXT", Value=_repository_uri(project, service)
                ),
                codebuild.EnvironmentVariable(Name="CONTAINER_NAME", Type="PLAINTEXT", Value=service),
            ],
        ),
        LogsConfig=codebuild.LogsConfig(
            CloudWatchLogs=codebuild.CloudWatchLogs(Status="ENABLED", GroupName=Ref(log_group)),
            S3Logs=codebuild.S3Logs(Status="DISABLED"),
        ),
    )
    return build


def _repository_uri(project: Project, service: str) -> Sub:
    return Sub("${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/%s" % repository_name(project.name, service))


def artifact_objects(project: Project, region: str) -> Sub:
    return Sub("arn:${AWS::Partition}:s3:::%s/*" % artifact_bucket_name(project.name, project.account_id, region))


def artifact_keys(project: Project, regions: Sequence[str]) -> tuple[list[Sub], ForAnyValueStringEquals]:
    """The artifact keys of these regions, by their alias (a key's ARN is not known across regions)."""
    keys = [Sub("arn:${AWS::Partition}:kms:%s:${AWS::AccountId}:key/*" % region) for region in regions]
    return keys, ForAnyValueStringEquals("kms:ResourceAliases", artifact_key_alias(project.name))


def _build_role(project: Project, service: str, log_group: logs.LogGroup) -> Role:
    """The build: its logs, the pipeline's artifacts, and pushing to this service's repository only."""
    keys, by_alias = artifact_keys(project, [project.region])
    statements = [
        iam.allow(
            "WriteThisBuildsLogs", [logs_actions.CreateLogStream, logs_actions.PutLogEvents], [GetAtt(log_group, "Arn")]
        ),
        iam.allow(
            "ReadAndWriteArtifacts",
            [s3_actions.GetObject, s3_actions.GetObjectVersion, s3_actions.PutObject],
            [artifact_objects(project, project.region)],
        ),
        iam.allow(
            "UseTheArtifactKey",
            [kms_actions.Decrypt, kms_actions.GenerateDataKey, kms_actions.DescribeKey],
            keys,
            conditions=[by_alias],
        ),
        # ecr:GetAuthorizationToken has no resource-level permissions: AWS accepts only "*" here.
        iam.allow("GetRegistryLoginToken", [ecr_actions.GetAuthorizationToken], ["*"]),
        iam.allow(
            "PushThisServicesImage",
            [
                ecr_actions.BatchCheckLayerAvailability,
                ecr_actions.BatchGetImage,
                ecr_actions.CompleteLayerUpload,
                ecr_actions.DescribeImages,
                ecr_actions.GetDownloadUrlForLayer,
                ecr_actions.InitiateLayerUpload,
                ecr_actions.PutImage,
                ecr_actions.UploadLayerPart,
            ],
            [iam.arn("ecr", f"repository/{repository_name(project.name, service)}")],
        ),
    ]
    return Role(
        "BuildRole",
        Description=f"CodeBuild tests and builds {service} and pushes its image",
        AssumeRolePolicyDocument=iam.service_trust(
            "codebuild.amazonaws.com", source_arn=iam.arn("codebuild", "project/*")
        ),
        Policies=[Policy(PolicyName="build", PolicyDocument=iam.document(*statements))],
    )


def _pipeline_role(
    project: Project,
    service: str,
    *,
    stages: list[Environment],
    repository: codecommit.Repository | None,
    build: codebuild.Project,
    release: codebuild.Project | None,
    topic: object,
) -> Role:
    """The pipeline: its source, its build and release build, the artifacts of every region it
    deploys to, the approval topic, and assuming this service's release role in the accounts of the
    environments where CodeDeploy releases it."""
    statements = pipeline_statements(
        project,
        [project.region, *release_regions(project)],
        build=(build, "RunThisServicesBuild"),
        topic=topic,
        source=(repository, "ReadThisServicesRepository"),
    )
    if release is not None:
        statements.append(
            iam.allow(
                "RunThisServicesRelease",
                [codebuild_actions.StartBuild, codebuild_actions.BatchGetBuilds],
                [GetAtt(release, "Arn")],
            )
        )
    stages = [env for env in stages if env.codedeploy(service)]
    if stages:
        statements.append(_assume_release_roles(project, service, stages))
    return Role(
        "PipelineRole",
        RoleName=pipeline_role_name(project.name, service),  # named: the release roles trust it by name
        Description=f"CodePipeline releases {service}",
        AssumeRolePolicyDocument=iam.service_trust("codepipeline.amazonaws.com"),
        Policies=[Policy(PolicyName="release", PolicyDocument=iam.document(*statements))],
    )


def start_on_push(
    t: Template, project: Project, repository: codecommit.Repository, pipeline: codepipeline.Pipeline
) -> None:
    """A push to the release branch starts the pipeline (CodeCommit sources do not poll)."""
    pipeline_arn = iam.arn("codepipeline", "${%s}" % pipeline.title)
    role = t.add_resource(
        iam.service_role(
            "StartPipelineRole",
            service="events.amazonaws.com",
            description="EventBridge starts the release pipeline on a push to the release branch",
            policy_name="start",
            statements=[iam.allow("StartThisPipeline", [codepipeline_actions.StartPipelineExecution], [pipeline_arn])],
        )
    )
    t.add_resource(
        events.Rule(
            "StartOnPushRule",
            Description=f"A push to {project.delivery.branch} starts the release",
            EventPattern={
                "source": ["aws.codecommit"],
                "detail-type": ["CodeCommit Repository State Change"],
                "resources": [GetAtt(repository, "Arn")],
                "detail": {
                    "event": ["referenceCreated", "referenceUpdated"],
                    "referenceType": ["branch"],
                    "referenceName": [project.delivery.branch],
                },
            },
            Targets=[events.Target(Id="Pipeline", Arn=pipeline_arn, RoleArn=GetAtt(role, "Arn"))],
        )
    )


def notify_failures(t: Template, project: Project, pipeline: codepipeline.Pipeline, topic: object) -> None:
    t.add_resource(
        events.Rule(
            "FailedReleaseRule",
            Description="A failed release is reported to the notification topic",
            EventPattern={
                "source": ["aws.codepipeline"],
                "detail-type": ["CodePipeline Pipeline Execution State Change"],
                "detail": {"pipeline": [Ref(pipeline)], "state": ["FAILED"]},
            },
            Targets=[events.Target(Id="NotificationTopic", Arn=topic)],
        )
    )


def pipeline_statements(
    project: Project,
    regions: Sequence[str],
    *,
    build: tuple[codebuild.Project, str],
    topic: object,
    source: tuple[codecommit.Repository | None, str],
) -> list[Statement]:
    """What every pipeline role of the project needs: the artifacts and their keys in ``regions``,
    starting its build, asking for approval on ``topic``, and reading its source (each named by
    the Sid given with it)."""
    keys, by_alias = artifact_keys(project, regions)
    project_build, build_sid = build
    repository, source_sid = source
    return [
        iam.allow(
            "ReadAndWriteArtifacts",
            [s3_actions.GetObject, s3_actions.GetObjectVersion, s3_actions.PutObject, s3_actions.PutObjectAcl],
            [artifact_objects(project, region) for region in regions],
        ),
        iam.allow(
            "UseTheArtifactKeys",
            [kms_actions.Decrypt, kms_actions.Encrypt, kms_actions.GenerateDataKey, kms_actions.DescribeKey],
            keys,
            conditions=[by_alias],
        ),
        iam.allow(
            build_sid, [codebuild_actions.StartBuild, codebuild_actions.BatchGetBuilds], [GetAtt(project_build, "Arn")]
        ),
        iam.allow("AskForApproval", [sns_actions.Publish], [topic]),
        read_source(project, repository, source_sid),
    ]


def read_source(project: Project, repository: codecommit.Repository | None, sid: str) -> Statement:
    """What a pipeline's role needs of its source: its CodeCommit repository (``sid``), or the
    settings' connection."""
    if repository is not None:
        return iam.allow(
            sid,
            [
                codecommit_actions.GetBranch,
                codecommit_actions.GetCommit,
                codecommit_actions.GetRepository,
                codecommit_actions.UploadArchive,
                codecommit_actions.GetUploadArchiveStatus,
                codecommit_actions.CancelUploadArchive,
            ],
            [GetAtt(repository, "Arn")],
        )
    assert project.delivery.connection is not None
    return iam.allow(
        "UseTheSourceConnection",
        [codestar_connections.UseConnection, codeconnections.UseConnection],
        [project.delivery.connection.arn],
    )


def _assume_release_roles(project: Project, service: str, environments: Sequence[Environment]) -> Statement:
    """Assuming the service's release role (``shop-<env>-<service>-deploy``) in each of ``environments``."""
    return iam.allow(
        "ReleaseThroughThisServicesRoleInEachEnvironment",
        [sts_actions.AssumeRole],
        [
            Sub(
                "arn:${AWS::Partition}:iam::%s:role/%s"
                % (env.account_id, service_role_name(project.name, env.name, service, "deploy"))
            )
            for env in environments
        ],
    )
