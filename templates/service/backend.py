"""The ``backend`` kind: an HTTP service with no public route, reachable by name from the services
that declare they call it, through ECS Service Connect in the environment's namespace. Its
security group takes nothing from anywhere; its Service Connect group (platform layer) takes its
port from its callers' groups alone."""

from __future__ import annotations

from troposphere import GetAtt, Template

from infra_templates.config import Environment
from templates.service import alarms, containers, fargate, network, release, service_connect
from templates.service.scaling import scalable_target


def build(env: Environment, name: str) -> Template:
    """The stack of a ``backend`` service."""
    f = containers.foundation(
        env,
        name,
        f"the {name} backend: task definition, ECS service on Service Connect, autoscaling",
        port_name=service_connect.PORT_NAME,
    )
    ctx, t, service, logs, task = f.ctx, f.t, f.service, f.logs, f.task
    execution_role, task_role = f.execution_role, f.task_role
    group = network.security_group(
        t,
        ctx,
        f"{ctx.stack_name}: no way in but its Service Connect group (port {service.container_port}, callers only)",
    )
    network.outbound(t, ctx, name, service, GetAtt(group, "GroupId"))
    ecs_service = t.add_resource(
        fargate.service(
            ctx,
            name,
            service,
            task=task,
            group=group,
            ServiceConnectConfiguration=service_connect.configuration(ctx, name, service, logs),
        )
    )
    service_connect.export_group(t, ctx, name, service, group)
    scalable_target(t, ctx, service.scaling, ecs_service)
    release.release_role(t, ctx, name, roles=[execution_role, task_role], codedeploy=False)
    down = alarms.task_alarms(t, ctx, name, minimum=service.scaling.min, ecs_service=ecs_service)
    if down:
        alarms.paging_composite(
            t, ctx, f"PAGE: the callers of {name} are affected: no task of it runs", all_of=[], any_of=down
        )
    return t
