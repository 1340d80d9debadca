"""Service to service: the environment's ECS Service Connect namespace (on the platform layer's
cluster) and, in a layer of its own after the service stacks, the security group rules that open
each ``backend`` service's port to exactly the services that declare they call it (``calls``).

The rules name the two services' own security groups, which their stacks export: a rule needs
both groups, and a service stack imports only from the shared layers before it (never from
another service's stack), so the rules come after all of them, here. Nothing is tagged here and
nothing grows with the services but two rules per call, so the stack stays small (a hundred
services with a call for each backend are some 25 pairs of rules).

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
from templates.contracts import Platform, service_group


def members(env: Environment) -> list[str]:
    """The services that take part in Service Connect: the backends and those that call one."""
    return sorted(n for n, s in env.services.items() if s.kind == "backend" or s.calls)


def needed(env: Environment) -> bool:
    """A ``connect`` stack exists where a service calls a backend."""
    return any(s.calls for s in env.services.values())


def add_namespace(t: Template, ctx: LayerContext, cluster: ecs.Cluster) -> None:
    """The Cloud Map HTTP namespace, the cluster's Service Connect default, when the settings have a
    backend; nothing otherwise."""
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
    ctx.export(t, Platform.SERVICE_CONNECT_NAMESPACE_ARN, GetAtt(namespace, "Arn"))


def build(env: Environment) -> Template:
    """For each call (a service's ``calls``): the caller's group may reach the backend's port, and
    the backend's group takes that port from the caller's group alone."""
    ctx = LayerContext(env, "connect")
    t = ctx.new_template("who may call whom: each backend's port, open to the services that call it")
    for caller in members(env):
        for backend in env.services[caller].calls:
            constructs.allow_between(
                t,
                ctx.import_value(service_group(caller)),
                ctx.import_value(service_group(backend)),
                env.services[backend].container_port,
                egress=(logical_id(caller, "to", backend, "egress"), f"{caller} calls {backend} (Service Connect)"),
                ingress=(logical_id(backend, "from", caller, "ingress"), f"{backend} port, from {caller} only"),
            )
    return t
