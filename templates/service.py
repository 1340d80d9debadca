"""Service layer, one stack per service: target group and listener rule, task definition, the ECS
service on Fargate + Fargate Spot in private subnets, autoscaling, and the service's own roles."""

from __future__ import annotations

import json
from typing import Any

from awacs import awslambda as lambda_actions
from awacs import cloudformation as cfn_actions
from awacs import cloudwatch as cloudwatch_actions
from awacs import codedeploy as codedeploy_actions
from awacs import ecr as ecr_actions
from awacs import ecs as ecs_actions
from awacs import elasticloadbalancing as elb_actions
from awacs import iam as iam_actions
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import rds_db, secretsmanager, ssm, ssmmessages
from awacs import s3 as s3_actions
from awacs import sts as sts_actions
from awacs.aws import Allow, ArnEquals, Condition, ForAnyValueStringEquals, Principal, Statement, StringEquals
from troposphere import (
    GetAtt,
    Join,
    Parameter,
    Ref,
    Region,
    Sub,
    Template,
    applicationautoscaling,
    cloudwatch,
    codedeploy,
    ec2,
    ecs,
)
from troposphere import elasticloadbalancingv2 as elb
from troposphere.iam import Policy, Role

from infra_templates import constructs, iam
from infra_templates.config import Environment, Service
from infra_templates.layer import ExportSpec, LayerContext
from infra_templates.naming import (
    artifact_bucket_name,
    artifact_key_alias,
    deployer_role_name,
    image_region,
    image_repository,
    image_tag_parameter,
    pipeline_role_name,
    release_build_role_name,
    release_name,
    repository_name,
    service_role_name,
)
from templates.contracts import (
    Data,
    Keys,
    Monitoring,
    Network,
    Platform,
    Security,
    assets_bucket_arn,
    database_user,
    for_load_balancer,
)

IMAGE_TAG = "ImageTag"


def image(env: Environment, service: str) -> Sub:
    """``<registry>/<repo>:<ImageTag>`` in the registry's account, in the region ``env`` pulls from
    (partition-aware host)."""
    repository = image_repository(
        env.registry.account_id, image_region(env), env.project, service, url_suffix="${AWS::URLSuffix}"
    )
    return Sub("%s:${%s}" % (repository, IMAGE_TAG))


def _image_tag(env: Environment, name: str) -> Parameter:
    """The image tag to run. ECS controller: the SSM parameter the release writes
    (``/{project}/{env}/{service}/image-tag``), which CloudFormation resolves on every create and
    update of the stack (CloudFormation User Guide, "Specify existing resources at runtime with
    CloudFormation-supplied parameter types"): a release is a stack update, and a stack update by
    anyone else (the infrastructure pipeline) runs the released tag, never an older one. CODE_DEPLOY
    controller: given at creation only, since CodeDeploy releases the image."""
    repository = repository_name(env.project, name)
    if env.codedeploy(name):
        return Parameter(
            IMAGE_TAG,
            Type="String",
            AllowedPattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
            Description=f"Tag of the {repository} image to run: the pushed commit id",
        )
    return Parameter(
        IMAGE_TAG,
        Type="AWS::SSM::Parameter::Value<String>",
        Default=image_tag_parameter(env.project, env.name, name),
        Description=f"The SSM parameter holding the tag of the {repository} image to run; the release writes it",
    )


def build(env: Environment, name: str) -> Template:
    service = env.services[name]
    ctx = LayerContext(env, f"svc-{name}")
    t = ctx.new_template(f"the {name} service: task definition, ECS service, routing and autoscaling")
    t.add_parameter(_image_tag(env, name))

    logs = t.add_resource(
        constructs.log_group("LogGroup", env, env.platform.log_retention_days, ctx.import_value(Keys.LOGS_KEY_ARN))
    )
    logs.LogGroupName = ctx.stack_name  # named: the release's taskdef.json names it
    execution_role = t.add_resource(_execution_role(ctx, name, service, logs))
    task_role = t.add_resource(_task_role(ctx, name, service))
    task = t.add_resource(
        _task_definition(ctx, name, service, logs=logs, execution_role=execution_role, task_role=task_role)
    )

    target_group = t.add_resource(
        elb.TargetGroup(
            "TargetGroup",
            TargetType="ip",
            Protocol="HTTP",
            ProtocolVersion="HTTP1",
            Port=service.port,
            VpcId=ctx.import_value(Network.VPC_ID),
            HealthCheckEnabled=True,
            HealthCheckProtocol="HTTP",
            HealthCheckPath=service.health_check.path,
            HealthCheckIntervalSeconds=15,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3,
            Matcher=elb.Matcher(HttpCode=service.health_check.healthy_codes),
            TargetGroupAttributes=[
                elb.TargetGroupAttribute(Key="deregistration_delay.timeout_seconds", Value="30"),
            ],
        )
    )
    blue_green = env.strategy_of(name) == "blue-green"
    green = t.add_resource(_green_target_group(target_group)) if blue_green else None
    rule = t.add_resource(
        _listener_rule(
            "ListenerRule", ctx, name, _alb(ctx, Platform.HTTPS_LISTENER_ARN), blue=target_group, green=green
        )
    )

    group = _security_group(t, ctx, name, service)
    capacity = env.capacity_of(name)
    ecs_service = t.add_resource(
        ecs.Service(
            "Service",
            DependsOn=[rule.title],  # the target group must belong to the ALB before tasks register
            ServiceName=name,  # named: the release pipeline, in another account, names it
            Cluster=ctx.import_value(Platform.CLUSTER_NAME),
            TaskDefinition=Ref(task),
            DesiredCount=service.desired_count,
            CapacityProviderStrategy=[
                ecs.CapacityProviderStrategyItem(
                    CapacityProvider="FARGATE", Base=capacity.fargate_base, Weight=capacity.fargate_weight
                ),
                ecs.CapacityProviderStrategyItem(CapacityProvider="FARGATE_SPOT", Weight=capacity.spot_weight),
            ],
            NetworkConfiguration=ecs.NetworkConfiguration(
                AwsvpcConfiguration=ecs.AwsvpcConfiguration(
                    AssignPublicIp="DISABLED",
                    Subnets=ctx.import_list(Network.PRIVATE_SUBNET_IDS),
                    SecurityGroups=[GetAtt(group, "GroupId")],
                )
            ),
            LoadBalancers=[
                ecs.LoadBalancer(ContainerName=name, ContainerPort=service.port, TargetGroupArn=Ref(target_group))
            ],
            HealthCheckGracePeriodSeconds=60,
            DeploymentConfiguration=ecs.DeploymentConfiguration(
                DeploymentCircuitBreaker=ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True),
                MaximumPercent=200,
                MinimumHealthyPercent=100,
            ),
            DeploymentController=ecs.DeploymentController(Type="ECS"),
            EnableExecuteCommand=service.exec,
            EnableECSManagedTags=True,
            PropagateTags="SERVICE",
        )
    )
    groups = (target_group,) if green is None else (target_group, green)
    _autoscaling(t, ctx, service, ecs_service, groups)
    roles = [execution_role, task_role]
    if green is not None and env.codedeploy(name):
        _hand_over_to_codedeploy(ecs_service, task, ctx.stack_name)
        _blue_green(
            t, ctx, name, service=service, ecs_service=ecs_service, groups=(target_group, green), rule=rule, roles=roles
        )
    elif green is not None:
        _ecs_blue_green(t, ctx, name, ecs_service=ecs_service, groups=(target_group, green), rule=rule)
        if service.pre_release:
            _pre_release_hook(t, ctx, name, service.pre_release, ecs_service=ecs_service, roles=roles)
    _release_role(t, ctx, name, ecs_service=ecs_service, roles=roles, codedeploy=env.codedeploy(name))
    _alarms(t, ctx, name, service=service, ecs_service=ecs_service, groups=groups)
    return t


def _listener_rule(
    logical_id: str,
    ctx: LayerContext,
    name: str,
    listener: ExportSpec,
    *,
    blue: elb.TargetGroup,
    green: elb.TargetGroup | None,
) -> elb.ListenerRule:
    """The service's rule on one of the ALB's listeners: its routes, its priority, its target groups."""
    return elb.ListenerRule(
        logical_id,
        ListenerArn=ctx.import_value(listener),
        Priority=ctx.env.listener_priorities()[name],
        Conditions=_conditions(ctx.env.services[name]),
        Actions=[_forward(blue, green)],
    )


def _alb(ctx: LayerContext, spec: ExportSpec) -> ExportSpec:
    """``spec`` (a listener, the load balancer's metric name, its security group) of the load
    balancer this service is on (``Environment.load_balancer_of``)."""
    return for_load_balancer(spec, ctx.env.load_balancer_of(ctx.layer.removeprefix("svc-")))


def _conditions(service: Service) -> list[elb.Condition]:
    conditions = []
    if service.routing.hosts:
        conditions.append(
            elb.Condition(Field="host-header", HostHeaderConfig=elb.HostHeaderConfig(Values=service.routing.hosts))
        )
    if service.routing.paths:
        conditions.append(
            elb.Condition(Field="path-pattern", PathPatternConfig=elb.PathPatternConfig(Values=service.routing.paths))
        )
    return conditions


def _ecs_trust() -> Any:
    return iam.service_trust(
        "ecs-tasks.amazonaws.com", source_arn=Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*")
    )


def _execution_role(ctx: LayerContext, name: str, service: Service, logs: Any) -> Role:
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
    secret_arns = sorted({_secret_arn(ref) for ref in service.secrets.values() if ref.startswith("secretsmanager:")})
    if secret_arns:
        # The complete ARNs that the task definition's ValueFrom names (the settings give each
        # secret's name with its 6-character suffix): what ECS reads is exactly what is granted.
        statements.append(
            iam.allow("ReadThisServicesSecrets", [secretsmanager.GetSecretValue], [Sub(a) for a in secret_arns])
        )
    parameter_arns = sorted({_parameter_arn(ref) for ref in service.secrets.values() if ref.startswith("ssm:")})
    if parameter_arns:
        statements.append(
            iam.allow("ReadThisServicesParameters", [ssm.GetParameters], [Sub(a) for a in parameter_arns])
        )
    return Role(
        "ExecutionRole",
        RoleName=service_role_name(env.project, env.name, name, "exec"),  # taskdef.json names it
        Description=f"ECS starts {ctx.stack_name}: pulls its image, writes its logs, reads its secrets",
        AssumeRolePolicyDocument=_ecs_trust(),
        Policies=[Policy(PolicyName="start-task", PolicyDocument=iam.document(*statements))],
    )


def _task_role(ctx: LayerContext, name: str, service: Service) -> Role:
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
    role = Role(
        "TaskRole",
        RoleName=service_role_name(ctx.env.project, ctx.env.name, name, "task"),  # taskdef.json names it
        Description=f"What the {name} application may do in AWS: only what its settings grant",
        AssumeRolePolicyDocument=_ecs_trust(),
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


def _database_variables(ctx: LayerContext, name: str, service: Service) -> dict[str, Any]:
    """What the application needs to open a connection with IAM database authentication: where
    (``DB_HOST``, ``DB_PORT``, ``DB_NAME``), as whom (``DB_USERNAME``), how (``DB_AUTH=iam``: sign a
    token with the task role, ``DB_REGION``, and connect over TLS, which the cluster requires)."""
    if not service.database_access:
        return {}
    return {
        "DB_HOST": ctx.import_value(Data.ENDPOINT),
        "DB_PORT": ctx.import_value(Data.PORT),
        "DB_NAME": ctx.import_value(Data.DATABASE_NAME),
        "DB_USERNAME": database_user(name),
        "DB_AUTH": "iam",
        "DB_REGION": Region,
    }


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


def _secret_arn(reference: str) -> str:
    """The complete ARN of a ``secretsmanager:NAME-SUFFIX[#key]`` reference, in this account and
    region (a replicated secret keeps its name and suffix in the replica's region). ECS takes "the
    full ARN of the Secrets Manager secret" (ECS API reference, Secret.valueFrom)."""
    name = reference.removeprefix("secretsmanager:").split("#", 1)[0]
    return "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + name


def _parameter_arn(reference: str) -> str:
    return "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter" + reference.removeprefix("ssm:")


def _secret_value_from(reference: str) -> Sub:
    if reference.startswith("ssm:"):
        return Sub(_parameter_arn(reference))
    name, _, key = reference.removeprefix("secretsmanager:").partition("#")
    arn = _secret_arn("secretsmanager:" + name)
    return Sub(f"{arn}:{key}::" if key else arn)


def _task_definition(
    ctx: LayerContext, name: str, service: Service, *, logs: Any, execution_role: Role, task_role: Role
) -> ecs.TaskDefinition:
    env = ctx.env
    variables: dict[str, Any] = dict(service.environment)
    secrets: dict[str, Any] = {k: _secret_value_from(v) for k, v in service.secrets.items()}
    variables.update(_database_variables(ctx, name, service))
    container = ecs.ContainerDefinition(
        Name=name,
        Image=image(env, name),
        Essential=True,
        # The container's own hard limit in MiB: the task's memory, which a task of one container may
        # give it whole (ECS task definition parameters, "memory": on Fargate the containers' memory
        # must not exceed the task's). Past it the container is killed, instead of starving the task.
        Memory=service.memory,
        PortMappings=[ecs.PortMapping(ContainerPort=service.port, Protocol="tcp")],
        Environment=[ecs.Environment(Name=k, Value=v) for k, v in sorted(variables.items())],
        Secrets=[ecs.Secret(Name=k, ValueFrom=v) for k, v in sorted(secrets.items())],
        ReadonlyRootFilesystem=service.read_only_root_filesystem,
        MountPoints=[ecs.MountPoint(SourceVolume="tmp", ContainerPath="/tmp", ReadOnly=False)],
        LinuxParameters=ecs.LinuxParameters(InitProcessEnabled=True),
        StopTimeout=30,
        LogConfiguration=ecs.LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(logs),
                "awslogs-region": Region,
                "awslogs-stream-prefix": name,
                # Never block the application on a slow log delivery; buffer instead.
                "mode": "non-blocking",
                "max-buffer-size": "25m",
            },
        ),
    )
    if service.user is not None:
        container.User = service.user
    task = ecs.TaskDefinition(
        "TaskDefinition",
        Family=ctx.stack_name,
        Cpu=str(service.cpu),
        Memory=str(service.memory),
        NetworkMode="awsvpc",
        RequiresCompatibilities=["FARGATE"],
        RuntimePlatform=ecs.RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture=service.architecture),
        ExecutionRoleArn=GetAtt(execution_role, "Arn"),
        TaskRoleArn=GetAtt(task_role, "Arn"),
        # A writable scratch space for a read-only root filesystem, gone with the task.
        Volumes=[ecs.Volume(Name="tmp")],
        ContainerDefinitions=[container],
    )
    return task


def _autoscaling(
    t: Template,
    ctx: LayerContext,
    service: Service,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, ...],
) -> None:
    """CPU target tracking, and request target tracking when the settings ask for it.

    One target group: the predefined ALBRequestCountPerTarget. Two (blue/green): that metric "is
    not supported for the blue/green deployment type" (ECS Developer Guide, "Scale your Amazon ECS
    service using a target metric value"), since its ResourceLabel names one target group; the
    policy tracks a customized metric instead, the requests of both target groups per running task
    (``(FILL(blue, 0) + FILL(green, 0)) / tasks``), the form AWS's own example uses (Application
    Auto Scaling User Guide, "Create a target tracking scaling policy for Application Auto Scaling
    using metric math": a count divided by the service's ECS/ContainerInsights RunningTaskCount),
    so it follows whichever colour serves."""
    scaling = service.autoscaling
    target = t.add_resource(
        applicationautoscaling.ScalableTarget(
            "ScalableTarget",
            ServiceNamespace="ecs",
            ScalableDimension="ecs:service:DesiredCount",
            ResourceId=Join("/", ["service", ctx.import_value(Platform.CLUSTER_NAME), GetAtt(ecs_service, "Name")]),
            MinCapacity=scaling.min,
            MaxCapacity=scaling.max,
        )
    )
    t.add_resource(
        _target_tracking(
            "CpuScaling", "cpu", target, value=scaling.cpu_target, metric="ECSServiceAverageCPUUtilization"
        )
    )
    if scaling.requests_per_target is None:
        return
    if len(groups) == 1:
        # ResourceLabel: app/<alb-name>/<alb-id>/targetgroup/<tg-name>/<tg-id>
        label = Join(
            "/",
            [ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME)), GetAtt(groups[0], "TargetGroupFullName")],
        )
        policy = _target_tracking(
            "RequestScaling",
            "requests",
            target,
            value=scaling.requests_per_target,
            metric="ALBRequestCountPerTarget",
            label=label,
        )
    else:
        policy = _target_tracking(
            "RequestScaling",
            "requests",
            target,
            value=scaling.requests_per_target,
            customized=_requests_per_task(ctx, ecs_service, groups),
        )
    t.add_resource(policy)


def _requests_per_task(
    ctx: LayerContext, ecs_service: ecs.Service, groups: tuple[elb.TargetGroup, ...]
) -> applicationautoscaling.CustomizedMetricSpecification:
    """ALB requests per minute over all of the service's target groups, per running task."""

    def stat(query_id: str, namespace: str, metric: str, dimensions: dict[str, Any], statistic: str) -> Any:
        return applicationautoscaling.TargetTrackingMetricDataQuery(
            Id=query_id,
            ReturnData=False,
            MetricStat=applicationautoscaling.TargetTrackingMetricStat(
                Metric=applicationautoscaling.TargetTrackingMetric(
                    Namespace=namespace,
                    MetricName=metric,
                    Dimensions=[
                        applicationautoscaling.TargetTrackingMetricDimension(Name=k, Value=v)
                        for k, v in dimensions.items()
                    ],
                ),
                Stat=statistic,
            ),
        )

    load_balancer = ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME))
    queries = [
        stat(
            f"requests{index}",
            "AWS/ApplicationELB",
            "RequestCount",
            {"LoadBalancer": load_balancer, "TargetGroup": GetAtt(group, "TargetGroupFullName")},
            "Sum",
        )
        for index, group in enumerate(groups, start=1)
    ]
    queries.append(
        stat(
            "tasks",
            "ECS/ContainerInsights",
            "RunningTaskCount",
            {"ClusterName": ctx.import_value(Platform.CLUSTER_NAME), "ServiceName": GetAtt(ecs_service, "Name")},
            "Average",
        )
    )
    requests = " + ".join(f"FILL(requests{index}, 0)" for index in range(1, len(groups) + 1))
    queries.append(
        applicationautoscaling.TargetTrackingMetricDataQuery(
            Id="per_task", Expression=f"({requests}) / tasks", Label="ALB requests per task", ReturnData=True
        )
    )
    return applicationautoscaling.CustomizedMetricSpecification(Metrics=queries)


def _target_tracking(
    logical_id: str,
    suffix: str,
    target: applicationautoscaling.ScalableTarget,
    *,
    value: float,
    metric: str | None = None,
    label: Any = None,
    customized: applicationautoscaling.CustomizedMetricSpecification | None = None,
) -> applicationautoscaling.ScalingPolicy:
    """Scale out fast (1 minute), scale in slowly (5 minutes) to hold a predefined ``metric`` (or a
    ``customized`` one) at ``value``."""
    how: dict[str, Any] = {"CustomizedMetricSpecification": customized}
    if customized is None:
        specification = applicationautoscaling.PredefinedMetricSpecification(PredefinedMetricType=metric)
        if label is not None:
            specification.ResourceLabel = label
        how = {"PredefinedMetricSpecification": specification}
    configuration = applicationautoscaling.TargetTrackingScalingPolicyConfiguration(
        TargetValue=float(value), **how, ScaleInCooldown=300, ScaleOutCooldown=60
    )
    return applicationautoscaling.ScalingPolicy(
        logical_id,
        PolicyName=Sub("${AWS::StackName}-%s" % suffix),
        PolicyType="TargetTrackingScaling",
        ScalingTargetId=Ref(target),
        TargetTrackingScalingPolicyConfiguration=configuration,
    )


# --- releases: blue/green through CodeDeploy, and the role the release pipeline assumes -----------


def _green_target_group(blue: elb.TargetGroup) -> elb.TargetGroup:
    """The second target group a blue/green release starts the new tasks in: the first's twin."""
    return elb.TargetGroup("GreenTargetGroup", **{k: v for k, v in blue.properties.items() if k != "Tags"})


def _forward(blue: elb.TargetGroup, green: elb.TargetGroup | None) -> elb.ListenerRuleAction:
    """Forward to the service; with blue/green, to both groups weighted 1/0, the form CodeDeploy
    itself leaves a rule in after a shift (the idle group stays attached at weight 0)."""
    if green is None:
        return elb.ListenerRuleAction(Type="forward", TargetGroupArn=Ref(blue))
    return elb.ListenerRuleAction(
        Type="forward",
        ForwardConfig=elb.ForwardConfig(
            TargetGroups=[
                elb.TargetGroupTuple(TargetGroupArn=Ref(blue), Weight=1),
                elb.TargetGroupTuple(TargetGroupArn=Ref(green), Weight=0),
            ]
        ),
    )


def _hand_over_to_codedeploy(ecs_service: ecs.Service, task: ecs.TaskDefinition, family: str) -> None:
    """CODE_DEPLOY controller. CloudFormation cannot update the TaskDefinition or LoadBalancers of
    such a service, so the service names its task definition by family (the latest ACTIVE
    revision): the property never changes, a later stack update leaves the service alone, and
    releases register new revisions of the same family through CodeDeploy."""
    ecs_service.TaskDefinition = family
    ecs_service.DependsOn = [*ecs_service.DependsOn, task.title]
    ecs_service.DeploymentController = ecs.DeploymentController(Type="CODE_DEPLOY")
    ecs_service.DeploymentConfiguration = ecs.DeploymentConfiguration(MaximumPercent=200, MinimumHealthyPercent=100)


def _ecs_blue_green(
    t: Template,
    ctx: LayerContext,
    name: str,
    *,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, elb.TargetGroup],
    rule: elb.ListenerRule,
) -> None:
    """Blue/green, canary or linear, shifted by ECS itself (deployment controller ECS).

    The stack stays the service's one owner: a new image, CPU, variable, secret, capacity mix or
    route is a stack update, and ECS rolls it out by moving the production listener rule's weights
    from the target group in use to the alternate one (the test listener rule first), keeps the old
    revision for the bake time and rolls back when a deployment alarm fires. Sources: Amazon ECS
    Developer Guide, "Amazon ECS blue/green deployments" and "Required resources for Amazon ECS
    blue/green deployments"; CloudFormation reference, AWS::ECS::Service AdvancedConfiguration and
    DeploymentConfiguration.

    The rule's forward action stays the one the template gives (weights 1/0): ECS changes the live
    weights, and CloudFormation sends the template's action again only when the rule itself
    changes (a new route or priority), which is why ``generate.py diff`` warns on such a change
    (RESETS WEIGHTS; aws/aws-cdk#36649).
    """
    env = ctx.env
    blue, green = groups
    test_rule = t.add_resource(
        _listener_rule("TestListenerRule", ctx, name, _alb(ctx, Platform.TEST_LISTENER_ARN), blue=blue, green=green)
    )
    # AdvancedConfiguration refers to both rules: that orders the service after them.
    ecs_service.DependsOn = [d for d in ecs_service.DependsOn if d != rule.title]
    if not ecs_service.DependsOn:
        del ecs_service.resource["DependsOn"]
    role = t.add_resource(_load_balancer_role(ctx, groups, [rule, test_rule]))
    ecs_service.LoadBalancers[0].AdvancedConfiguration = ecs.AdvancedConfiguration(
        AlternateTargetGroupArn=Ref(green),
        ProductionListenerRule=Ref(rule),
        TestListenerRule=Ref(test_rule),
        RoleArn=GetAtt(role, "Arn"),
    )
    alarms = [t.add_resource(_errors_alarm(ctx, groups, by="ECS"))]
    strategy, percent, minutes = env.deployment.ecs_strategy()
    configuration = ecs.DeploymentConfiguration(
        Strategy=strategy,
        # The old revision keeps running this long after production traffic moved: a rollback
        # within it is immediate (ECS API reference, DeploymentConfiguration.bakeTimeInMinutes).
        BakeTimeInMinutes=env.deployment.termination_wait_minutes,
        MaximumPercent=200,
        MinimumHealthyPercent=100,
        Alarms=ecs.DeploymentAlarms(AlarmNames=[Ref(alarm) for alarm in alarms], Enable=True, Rollback=True),
    )
    if strategy == "BLUE_GREEN":
        # Tasks of the new revision that never reach a steady state fail the deployment (and send
        # SERVICE_DEPLOYMENT_FAILED) instead of leaving it waiting: "Both methods [circuit breaker,
        # CloudWatch alarms] only support rolling update deployment and blue/green deployment
        # types" (Amazon ECS Developer Guide, "Amazon ECS deployment failure detection"). Canary and
        # linear are documented with alarms only, so they keep alarms only (rule E9011).
        configuration.DeploymentCircuitBreaker = ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True)
    elif strategy == "CANARY":
        configuration.CanaryConfiguration = ecs.CanaryConfiguration(
            CanaryPercent=percent, CanaryBakeTimeInMinutes=minutes
        )
    elif strategy == "LINEAR":
        configuration.LinearConfiguration = ecs.LinearConfiguration(StepPercent=percent, StepBakeTimeInMinutes=minutes)
    ecs_service.DeploymentConfiguration = configuration


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


def _pre_release_hook(
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
            _pass_roles(roles),
        ],
        log_group_title="PreReleaseLogGroup",
        log_retention_days=env.platform.log_retention_days,
        logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
        reserved_concurrency=2,
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


def _load_balancer_role(
    ctx: LayerContext, groups: tuple[elb.TargetGroup, elb.TargetGroup], rules: list[elb.ListenerRule]
) -> Role:
    """What ECS needs to shift this service's traffic: the least-privilege subset of the managed
    policy AmazonECSInfrastructureRolePolicyForLoadBalancers (AWS Managed Policy Reference) that
    concerns an ALB: read the load balancing setup, register targets in this service's two
    groups, modify this service's two listener rules. Trusted by ECS ("Amazon ECS infrastructure
    IAM role for load balancers", Amazon ECS Developer Guide)."""
    statements = [
        # Describe calls of Elastic Load Balancing have no resource-level permissions.
        iam.allow(
            "ReadLoadBalancing",
            [
                elb_actions.DescribeListeners,
                elb_actions.DescribeRules,
                elb_actions.DescribeTargetGroups,
                elb_actions.DescribeTargetHealth,
            ],
            ["*"],
        ),
        iam.allow(
            "RegisterInThisServicesTargetGroups",
            [elb_actions.RegisterTargets, elb_actions.DeregisterTargets],
            [Ref(group) for group in groups],
        ),
        iam.allow("ShiftThisServicesRules", [elb_actions.ModifyRule], [Ref(rule) for rule in rules]),
    ]
    return Role(
        "LoadBalancerRole",
        Description=f"ECS shifts the traffic of {ctx.stack_name}: its target groups and listener rules",
        AssumeRolePolicyDocument=iam.service_trust("ecs.amazonaws.com"),
        Policies=[Policy(PolicyName="shift-traffic", PolicyDocument=iam.document(*statements))],
    )


def _blue_green(
    t: Template,
    ctx: LayerContext,
    name: str,
    *,
    service: Service,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, elb.TargetGroup],
    rule: elb.ListenerRule,
    roles: list[Role],
) -> None:
    env = ctx.env
    blue, green = groups
    test_rule = t.add_resource(
        _listener_rule("TestListenerRule", ctx, name, _alb(ctx, Platform.TEST_LISTENER_ARN), blue=blue, green=green)
    )
    ecs_service.DependsOn = [*ecs_service.DependsOn, test_rule.title]
    alarms = [t.add_resource(_errors_alarm(ctx, groups))]
    codedeploy_role = t.add_resource(_codedeploy_role(ctx, ecs_service, [rule, test_rule], alarms, roles))
    application = t.add_resource(
        codedeploy.Application(
            "CodeDeployApplication",
            ApplicationName=release_name(env.project, env.name, name),
            ComputePlatform="ECS",
        )
    )
    t.add_resource(
        codedeploy.DeploymentGroup(
            "DeploymentGroup",
            ApplicationName=Ref(application),
            DeploymentGroupName=release_name(env.project, env.name, name),
            ServiceRoleArn=GetAtt(codedeploy_role, "Arn"),
            DeploymentConfigName=env.deployment.traffic_shift,
            DeploymentStyle=codedeploy.DeploymentStyle(
                DeploymentType="BLUE_GREEN", DeploymentOption="WITH_TRAFFIC_CONTROL"
            ),
            BlueGreenDeploymentConfiguration=codedeploy.BlueGreenDeploymentConfiguration(
                DeploymentReadyOption=codedeploy.DeploymentReadyOption(ActionOnTimeout="CONTINUE_DEPLOYMENT"),
                TerminateBlueInstancesOnDeploymentSuccess=codedeploy.BlueInstanceTerminationOption(
                    Action="TERMINATE", TerminationWaitTimeInMinutes=env.deployment.termination_wait_minutes
                ),
            ),
            ECSServices=[
                codedeploy.ECSService(
                    ClusterName=ctx.import_value(Platform.CLUSTER_NAME), ServiceName=GetAtt(ecs_service, "Name")
                )
            ],
            LoadBalancerInfo=codedeploy.LoadBalancerInfo(
                TargetGroupPairInfoList=[
                    codedeploy.TargetGroupPairInfo(
                        TargetGroups=[
                            codedeploy.TargetGroupInfo(Name=GetAtt(group, "TargetGroupName")) for group in groups
                        ],
                        ProdTrafficRoute=codedeploy.TrafficRoute(
                            ListenerArns=[ctx.import_value(_alb(ctx, Platform.HTTPS_LISTENER_ARN))]
                        ),
                        TestTrafficRoute=codedeploy.TrafficRoute(
                            ListenerArns=[ctx.import_value(_alb(ctx, Platform.TEST_LISTENER_ARN))]
                        ),
                    )
                ]
            ),
            AutoRollbackConfiguration=codedeploy.AutoRollbackConfiguration(
                Enabled=True, Events=["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]
            ),
            AlarmConfiguration=codedeploy.AlarmConfiguration(
                Enabled=True, Alarms=[codedeploy.Alarm(Name=Ref(alarm)) for alarm in alarms]
            ),
        )
    )


def _errors_alarm(ctx: LayerContext, groups: tuple[elb.TargetGroup, ...], by: str = "CodeDeploy") -> cloudwatch.Alarm:
    """5xx answers of the service's targets, in both target groups (whichever colour serves, and
    the new one during a shift): a release that raises it is rolled back."""
    load_balancer = ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME))
    topic = ctx.import_value(Monitoring.ALARM_TOPIC_ARN)
    return constructs.metric_sum_alarm(
        "ReleaseErrorsAlarm",
        topic,  # a rollback is news: the topic hears of it, like every other alarm
        description=f"{ctx.stack_name}: its targets answer 5xx; {by} rolls a release back on it",
        namespace="AWS/ApplicationELB",
        metric="HTTPCode_Target_5XX_Count",
        dimension_sets=[
            {"LoadBalancer": load_balancer, "TargetGroup": GetAtt(group, "TargetGroupFullName")} for group in groups
        ],
        statistic="Sum",
        period=60,
        evaluation_periods=1,
        datapoints=1,
        threshold=5,
        comparison="GreaterThanOrEqualToThreshold",
        missing_data="notBreaching",  # no 5xx answers, no data points: nothing is wrong
    )


def _pass_roles(roles: list[Role]) -> Statement:
    return iam.allow(
        "PassThisServicesTaskRoles",
        [iam_actions.PassRole],
        [GetAtt(role, "Arn") for role in roles],
        conditions=[StringEquals("iam:PassedToService", "ecs-tasks.amazonaws.com")],
    )


def _codedeploy_role(
    ctx: LayerContext, ecs_service: ecs.Service, rules: list[elb.ListenerRule], alarms: list[Any], roles: list[Role]
) -> Role:
    """What CodeDeploy needs to release this service: its task sets, its two listener rules, its alarms."""
    task_sets = Sub(
        "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-set/${Cluster}/${Service}/*",
        Cluster=ctx.import_value(Platform.CLUSTER_NAME),
        Service=GetAtt(ecs_service, "Name"),
    )
    statements = [
        iam.allow(
            "ManageThisServicesTaskSets",
            [
                ecs_actions.DescribeServices,
                ecs_actions.CreateTaskSet,
                ecs_actions.DeleteTaskSet,
                ecs_actions.UpdateServicePrimaryTaskSet,
            ],
            [Ref(ecs_service), task_sets],
        ),
        # Describe calls of Elastic Load Balancing have no resource-level permissions.
        iam.allow(
            "ReadLoadBalancing",
            [
                elb_actions.DescribeListeners,
                elb_actions.DescribeRules,
                elb_actions.DescribeTargetGroups,
                elb_actions.DescribeTargetHealth,
            ],
            ["*"],
        ),
        iam.allow("ShiftThisServicesRules", [elb_actions.ModifyRule], [Ref(rule) for rule in rules]),
        iam.allow(
            "ReadThisServicesAlarms",
            [cloudwatch_actions.DescribeAlarms],
            [GetAtt(alarm, "Arn") for alarm in alarms],
        ),
        _pass_roles(roles),
    ]
    return Role(
        "CodeDeployRole",
        Description=f"CodeDeploy releases {ctx.stack_name}: its task sets, listener rules and alarms",
        AssumeRolePolicyDocument=iam.service_trust("codedeploy.amazonaws.com"),
        Policies=[Policy(PolicyName="release", PolicyDocument=iam.document(*statements))],
    )


def _release_role(
    t: Template, ctx: LayerContext, name: str, *, ecs_service: ecs.Service, roles: list[Role], codedeploy: bool
) -> None:
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
        _pass_roles(roles),
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


def _alarms(
    t: Template,
    ctx: LayerContext,
    name: str,
    *,
    service: Service,
    ecs_service: ecs.Service,
    groups: tuple[elb.TargetGroup, ...],
) -> None:
    """The service's warnings (CPU, memory, tasks below the minimum, unhealthy targets) and one
    composite alarm for paging, on the environment's paging topic: users are affected when its
    targets answer 5xx while it is short of healthy targets, when no target is healthy, or when no
    task runs. The last two exist only where the service must run (``autoscaling.min`` > 0): a
    service scaled to zero (a pilot-light DR service) has no task and no target by design. Every
    metric alarm tells the environment's alarm topic when it fires and clears.

    No running task: ECS publishes a service's CPUUtilization every minute while it has a RUNNING
    task and nothing otherwise (ECS Developer Guide, "Amazon ECS CloudWatch metrics"), so its
    SampleCount below 1 with missing data breaching is "no task runs", with or without Container
    Insights (whose RunningTaskCount is used only where ``platform.container_insights`` is on).
    No healthy target: HealthyHostCount per target group (Elastic Load Balancing, "CloudWatch
    metrics for your Application Load Balancer").

    The target-group alarms sum their metric over all of the service's target groups (both
    colours of a blue/green service), so they see the service's targets whichever colour serves."""
    limits = ctx.env.monitoring.alarms
    topic = ctx.import_value(Monitoring.ALARM_TOPIC_ARN)
    paging = ctx.import_value(Monitoring.PAGING_TOPIC_ARN)
    cluster = ctx.import_value(Platform.CLUSTER_NAME)
    ecs_dims = {"ClusterName": cluster, "ServiceName": GetAtt(ecs_service, "Name")}
    tg_dims = [
        {
            "TargetGroup": GetAtt(group, "TargetGroupFullName"),
            "LoadBalancer": ctx.import_value(_alb(ctx, Platform.LOAD_BALANCER_FULL_NAME)),
        }
        for group in groups
    ]
    common: dict[str, Any] = {
        "period": limits.period_seconds,
        "evaluation_periods": limits.evaluation_periods,
        "datapoints": limits.datapoints_to_alarm,
    }

    def add(logical_id: str, **kwargs: Any) -> cloudwatch.Alarm:
        return t.add_resource(constructs.metric_alarm(logical_id, topic, **common, **kwargs))

    def add_over_groups(logical_id: str, **kwargs: Any) -> cloudwatch.Alarm:
        return t.add_resource(
            constructs.metric_sum_alarm(logical_id, topic, dimension_sets=tg_dims, **common, **kwargs)
        )

    # ECS reports CPU and memory every minute while the service exists; with no tasks the
    # task-count alarm speaks, so these two stay quiet on missing data.
    add(
        "CpuAlarm", description=f"{name}: average CPU above {limits.service_cpu_percent} %",
        namespace="AWS/ECS", metric="CPUUtilization", dimensions=ecs_dims, statistic="Average",
        comparison="GreaterThanThreshold", threshold=limits.service_cpu_percent, missing_data="notBreaching",
    )  # fmt: skip
    add(
        "MemoryAlarm", description=f"{name}: average memory above {limits.service_memory_percent} %",
        namespace="AWS/ECS", metric="MemoryUtilization", dimensions=ecs_dims, statistic="Average",
        comparison="GreaterThanThreshold", threshold=limits.service_memory_percent, missing_data="notBreaching",
    )  # fmt: skip
    must_run = service.autoscaling.min > 0
    down: list[cloudwatch.Alarm] = []
    if must_run:
        down.append(add(
            "NoRunningTaskAlarm", description=f"{name}: no task runs (ECS reports no CPU sample)",
            namespace="AWS/ECS", metric="CPUUtilization", dimensions=ecs_dims, statistic="SampleCount",
            comparison="LessThanThreshold", threshold=1, missing_data="breaching",
        ))  # fmt: skip
    if must_run and ctx.env.platform.container_insights != "disabled":
        # Container Insights reports the count while tasks run: no data means none run, breaching.
        add(
            "RunningTasksAlarm",
            description=f"{name}: fewer running tasks than the minimum of {service.autoscaling.min}",
            namespace="ECS/ContainerInsights", metric="RunningTaskCount", dimensions=ecs_dims,
            statistic="Minimum", comparison="LessThanThreshold", threshold=service.autoscaling.min,
            missing_data="breaching",
        )  # fmt: skip
    add_over_groups(
        "UnhealthyTargetsAlarm", description=f"{name}: the load balancer sees unhealthy targets",
        namespace="AWS/ApplicationELB", metric="UnHealthyHostCount", statistic="Maximum",
        comparison="GreaterThanThreshold", threshold=0,
        missing_data="notBreaching",  # reported while the target group is attached; absent means no targets yet
    )  # fmt: skip
    if must_run:
        down.append(add_over_groups(
            "NoHealthyTargetAlarm", description=f"{name}: the load balancer has no healthy target for it",
            namespace="AWS/ApplicationELB", metric="HealthyHostCount", statistic="Minimum",
            comparison="LessThanThreshold", threshold=1, missing_data="breaching",
        ))  # fmt: skip
    short: list[cloudwatch.Alarm] = []
    if must_run:  # a service of minimum 0 (pilot light) is never short of targets
        short.append(add_over_groups(
            "HealthyTargetsLowAlarm",
            description=f"{name}: fewer healthy targets than the minimum of {service.autoscaling.min}",
            namespace="AWS/ApplicationELB", metric="HealthyHostCount", statistic="Minimum",
            comparison="LessThanThreshold", threshold=service.autoscaling.min,
            missing_data="breaching",  # no healthy-host data means the target group serves nobody
        ))  # fmt: skip
    errors = add_over_groups(
        "Target5xxAlarm", description=f"{name}: more than {limits.service_5xx_count} 5xx answers per period",
        namespace="AWS/ApplicationELB", metric="HTTPCode_Target_5XX_Count",
        comparison="GreaterThanThreshold", threshold=limits.service_5xx_count,
        missing_data="notBreaching",  # published only when a target answers 5xx
    )  # fmt: skip
    t.add_resource(
        cloudwatch.CompositeAlarm(
            "UsersAffectedAlarm",
            AlarmDescription=f"PAGE: users of {name} are affected: 5xx answers while short of healthy targets"
            + (", no healthy target or no running task" if must_run else ""),
            AlarmRule=Sub(
                " OR ".join(
                    # a service that need not run (min 0) pages on its 5xx alone
                    ["(" + " AND ".join(f'ALARM("${{{alarm.title}}}")' for alarm in [errors, *short]) + ")"]
                    + [f'ALARM("${{{alarm.title}}}")' for alarm in down]
                ),
                **{alarm.title: GetAtt(alarm, "Arn") for alarm in [errors, *short, *down]},
            ),
            AlarmActions=[paging],
            OKActions=[paging],
        )
    )


def _security_group(t: Template, ctx: LayerContext, name: str, service: Service) -> ec2.SecurityGroup:
    """The service's group: its container port from the ALB only; out, HTTPS and (if it may) the
    database port. The rules on the ALB's and the database's groups that complete each path are
    here too, so the security stack does not grow with the services."""
    env = ctx.env
    group = t.add_resource(
        constructs.security_group(
            "ServiceSecurityGroup",
            f"{ctx.stack_name}: port {service.port} from the ALB only",
            ctx.import_value(Network.VPC_ID),
            ctx.stack_name,
        )
    )
    own = GetAtt(group, "GroupId")
    constructs.allow_between(
        t,
        ctx.import_value(_alb(ctx, Security.ALB_SECURITY_GROUP)),
        own,
        service.port,
        egress=("AlbToServiceEgress", f"ALB forwards to the {name} service's container port"),
        ingress=("ServiceFromAlbIngress", f"{name} container port, from the ALB only"),
    )
    t.add_resource(
        ec2.SecurityGroupEgress(
            "ServiceHttpsEgress",
            GroupId=own,
            IpProtocol="tcp",
            FromPort=443,
            ToPort=443,
            CidrIp="0.0.0.0/0",
            Description=f"{name} calls AWS APIs (ECR, Logs, Secrets Manager) and HTTPS services",
        )
    )
    if service.database_access:
        constructs.allow_between(
            t,
            own,
            ctx.import_value(Security.DATABASE_SECURITY_GROUP),
            env.database.port,
            egress=("ServiceToDatabaseEgress", f"{name} connects to the database"),
            ingress=("DatabaseFromServiceIngress", f"{env.database.engine} port, from the {name} service"),
        )
    return group
