"""A service's part in ECS Service Connect: a backend serves its port under its name in the
environment's namespace; a service that calls backends joins the namespace as a client (its
tasks resolve the backends' names through the Service Connect proxy ECS adds to them). Only tasks
that an ECS service starts take part (ECS Developer Guide, "Service Connect": "Only the tasks that
Amazon ECS services create are supported"), so a job cannot call a backend (the settings refuse
it). The namespace comes by ARN; each member exports its own security group, which the connect layer's
rules open to exactly the callers (templates/connect.py)."""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Ref, Region, Template, ecs

from infra_templates.config import Service
from infra_templates.layer import LayerContext
from templates.contracts import Platform, service_group

PORT_NAME = "http"  # the backend's port mapping, which its Service Connect service names


def configuration(ctx: LayerContext, name: str, service: Service, logs: Any) -> ecs.ServiceConnectConfiguration | None:
    """The ECS service's ServiceConnectConfiguration: for a backend, its one Service Connect service
    (discovery name and client alias: its own name, on its port); for a caller, the namespace alone.
    None for a service that takes no part. The proxy logs to the service's log group."""
    if service.kind != "backend" and not service.calls:
        return None
    configuration = ecs.ServiceConnectConfiguration(
        Enabled=True,
        Namespace=ctx.import_value(Platform.SERVICE_CONNECT_NAMESPACE_ARN),
        LogConfiguration=ecs.LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(logs),
                "awslogs-region": Region,
                "awslogs-stream-prefix": "service-connect",
            },
        ),
    )
    if service.kind == "backend":
        assert service.port is not None  # a backend has a port (settings)
        configuration.Services = [
            ecs.ServiceConnectService(
                PortName=PORT_NAME,
                DiscoveryName=name,
                ClientAliases=[ecs.ServiceConnectClientAlias(DnsName=name, Port=service.port)],
            )
        ]
    return configuration


def export_group(t: Template, ctx: LayerContext, name: str, service: Service, group: Any) -> None:
    """A service taking part exports its own security group for the connect layer's rules."""
    if service.kind == "backend" or service.calls:
        ctx.export(t, service_group(name), GetAtt(group, "GroupId"))
