"""Service to service, in the platform layer: the environment's ECS Service Connect namespace (an
AWS Cloud Map HTTP namespace, the cluster's default) and the security groups that open a
``backend`` service's port to exactly the services that declare they call it (``calls``).

Each service that takes part (a backend, or a service that calls one) gets one group here, which
its tasks wear beside their own: a backend's group takes its port from the groups of its callers,
a caller's group may reach the ports of the backends it calls. Here rather than in the service
stacks, since a rule names both groups and a service stack imports only from the environment's
shared layers (never from another service's stack); and one group per service, whatever the
number of calls, keeps a task within the five security groups a network interface takes (Amazon
VPC quotas, "Security groups per network interface").

The namespace is given to the cluster and to every service by its ARN: a name makes ECS create a
namespace of that name itself, concurrently with CloudFormation's (aws/aws-cdk#25554, "concurrent
creation of http namespace fails"), or a second one when the service is in another stack
(aws/aws-cdk#25616).
"""

from __future__ import annotations

from troposphere import GetAtt, Template, ecs, servicediscovery

from infra_templates import constructs
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from infra_templates.naming import logical_id
from templates.contracts import Network, Platform, connect_group


def members(env: Environment) -> list[str]:
    """The services that take part in Service Connect: the backends and those that call one."""
    return sorted(n for n, s in env.services.items() if s.kind == "backend" or s.calls)


def add(t: Template, ctx: LayerContext, cluster: ecs.Cluster) -> None:
    """The namespace (the cluster's Service Connect default) and the service-to-service groups,
    when the settings have a backend; nothing otherwise."""
    env = ctx.env
    if not any(s.kind == "backend" for s in env.services.values()):
        return
    namespace = t.add_resource(
        servicediscovery.HttpNamespace(
            "ServiceConnectNamespace",
            Name=f"{env.project}-{env.name}",
            Description=f"Service Connect names of the {env.project} {env.name} services",
        )
    )
    cluster.ServiceConnectDefaults = ecs.ServiceConnectDefaults(Namespace=GetAtt(namespace, "Arn"))
    groups = {
        name: t.add_resource(
            constructs.security_group(
                logical_id(name, "connect", "group"),
                f"{ctx.stack_name}: Service Connect of {name}: {_purpose(env, name)}",
                ctx.import_value(Network.VPC_ID),
                f"{ctx.stack_name}-{name}-connect",
            )
        )
        for name in members(env)
    }
    for caller in members(env):
        for backend in env.services[caller].calls:
            port = env.services[backend].port
            assert port is not None  # a backend has a port (settings)
            constructs.allow_between(
                t,
                GetAtt(groups[caller], "GroupId"),
                GetAtt(groups[backend], "GroupId"),
                port,
                egress=(logical_id(caller, "to", backend, "egress"), f"{caller} calls {backend} (Service Connect)"),
                ingress=(logical_id(backend, "from", caller, "ingress"), f"{backend} port, from {caller} only"),
            )
    ctx.export(t, Platform.SERVICE_CONNECT_NAMESPACE_ARN, GetAtt(namespace, "Arn"))
    for name, group in groups.items():
        ctx.export(t, connect_group(name), GetAtt(group, "GroupId"))


def _purpose(env: Environment, name: str) -> str:
    service = env.services[name]
    parts = ["its port from its callers only"] if service.kind == "backend" else []
    if service.calls:
        parts.append("calls " + ", ".join(service.calls))
    return "; ".join(parts)
