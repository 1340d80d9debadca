"""The task definition every kind of service shares: the image (its tag from SSM or a parameter),
variables and secrets by reference, a read-only root filesystem with a scratch volume, logs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import GetAtt, Parameter, Ref, Region, Sub, Template, ecs
from troposphere.iam import Role

from infra_templates import constructs
from infra_templates.config import Environment, Service, Sidecar
from infra_templates.layer import LayerContext
from infra_templates.naming import image_region, image_repository, image_tag_parameter, repository_name
from templates.contracts import Data, Keys, database_user
from templates.service import queues, roles
from templates.service.roles import parameter_arn, secret_arn

IMAGE_TAG = "ImageTag"


def image(env: Environment, service: str) -> Sub:
    """``<registry>/<repo>:<ImageTag>`` in the registry's account, in the region ``env`` pulls from
    (partition-aware host)."""
    repository = image_repository(
        env.registry.account_id, image_region(env), env.project, service, url_suffix="${AWS::URLSuffix}"
    )
    return Sub("%s:${%s}" % (repository, IMAGE_TAG))


def image_tag(env: Environment, name: str) -> Parameter:
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


def log_group(ctx: LayerContext) -> Any:
    """The service's log group, named after its stack (the release's taskdef.json names it)."""
    env = ctx.env
    logs = constructs.log_group("LogGroup", env, env.platform.log_retention_days, ctx.import_value(Keys.LOGS_KEY_ARN))
    logs.LogGroupName = ctx.stack_name  # named: the release's taskdef.json names it
    return logs


def secret_value_from(reference: str) -> Sub:
    if reference.startswith("ssm:"):
        return Sub(parameter_arn(reference))
    name, _, key = reference.removeprefix("secretsmanager:").partition("#")
    arn = secret_arn("secretsmanager:" + name)
    return Sub(f"{arn}:{key}::" if key else arn)


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


def task_definition(
    ctx: LayerContext,
    name: str,
    service: Service,
    *,
    logs: Any,
    execution_role: Role,
    task_role: Role,
    port_name: str | None = None,
) -> ecs.TaskDefinition:
    """The task definition: the application's container (essential, the only one that is), then
    its sidecars in the settings' order. ``port_name`` names the container port (Service Connect
    refers to it by name)."""
    env = ctx.env
    variables: dict[str, Any] = dict(service.environment)
    variables.update(queues.variables(env, name, service))
    secrets: dict[str, Any] = {k: secret_value_from(v) for k, v in service.secrets.items()}
    variables.update(_database_variables(ctx, name, service))
    container = ecs.ContainerDefinition(
        Name=name,
        Image=image(env, name),
        Essential=True,
        # The container's own hard limit in MiB: the task's memory, which a task of one container may
        # give it whole (ECS task definition parameters, "memory": on Fargate the containers' memory
        # must not exceed the task's). Past it the container is killed, instead of starving the task.
        Memory=service.memory - sum(sidecar.memory for sidecar in service.sidecars),
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
    if service.port is not None:
        mapping = ecs.PortMapping(ContainerPort=service.port, Protocol="tcp")
        if port_name is not None:
            mapping.Name = port_name
            mapping.AppProtocol = "http"
        container.PortMappings = [mapping]
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
        ContainerDefinitions=[container, *(_sidecar(sidecar, name, logs) for sidecar in service.sidecars)],
    )
    return task


def _sidecar(sidecar: Sidecar, app: str, logs: Any) -> ecs.ContainerDefinition:
    """A helper container beside the application: never essential (the task's one essential
    container is the application's; ECS stops the task when an essential container exits, ECS
    Developer Guide, task definition parameters "essential"), started after the application's has
    started (``dependsOn`` START), with its own memory hard limit out of the task's, its own log
    stream prefix in the service's log group, and the same read-only root filesystem and init
    process as the application."""
    container = ecs.ContainerDefinition(
        Name=sidecar.name,
        Image=sidecar.image,
        Essential=False,
        Memory=sidecar.memory,
        DependsOn=[ecs.ContainerDependency(ContainerName=app, Condition="START")],
        Environment=[ecs.Environment(Name=k, Value=v) for k, v in sorted(sidecar.environment.items())],
        Secrets=[ecs.Secret(Name=k, ValueFrom=secret_value_from(v)) for k, v in sorted(sidecar.secrets.items())],
        ReadonlyRootFilesystem=sidecar.read_only_root_filesystem,
        LinuxParameters=ecs.LinuxParameters(InitProcessEnabled=True),
        StopTimeout=30,
        LogConfiguration=ecs.LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(logs),
                "awslogs-region": Region,
                "awslogs-stream-prefix": sidecar.name,
                "mode": "non-blocking",
                "max-buffer-size": "25m",
            },
        ),
    )
    if sidecar.cpu is not None:
        container.Cpu = sidecar.cpu
    if sidecar.port is not None:
        container.PortMappings = [ecs.PortMapping(ContainerPort=sidecar.port, Protocol="tcp")]
    if sidecar.command:
        container.Command = sidecar.command
    if sidecar.user is not None:
        container.User = sidecar.user
    return container


@dataclass(frozen=True)
class Foundation:
    """What every kind's stack starts with: its context and template (the ``ImageTag`` parameter
    added), the service's settings, its log group, execution and task roles and task definition."""

    ctx: LayerContext
    t: Template
    service: Service
    logs: Any
    execution_role: Role
    task_role: Role
    task: ecs.TaskDefinition


def foundation(env: Environment, name: str, description: str, *, port_name: str | None = None) -> Foundation:
    """The stack ``svc-<name>`` of any kind, begun: a template described by ``description``, the
    image tag parameter, then the log group, the two roles and the task definition, added in that
    order (``port_name``: see task_definition)."""
    service = env.services[name]
    ctx = LayerContext(env, f"svc-{name}")
    t = ctx.new_template(description)
    t.add_parameter(image_tag(env, name))
    logs = t.add_resource(log_group(ctx))
    execution_role = t.add_resource(roles.execution_role(ctx, name, service, logs))
    task_role = t.add_resource(roles.task_role(ctx, name, service))
    task = t.add_resource(
        task_definition(
            ctx,
            name,
            service,
            logs=logs,
            execution_role=execution_role,
            task_role=task_role,
            port_name=port_name,
        )
    )
    return Foundation(ctx, t, service, logs, execution_role, task_role, task)
