"""The ECS service of the kinds without a load balancer (``backend``, ``worker``): Fargate and
Fargate Spot as the settings mix them, private subnets, no public IP, the service's own security
group, rolling deployments with the circuit breaker rolling a failed one back."""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Ref, ecs

from infra_templates.config import Service
from infra_templates.layer import LayerContext
from templates.contracts import Network, Platform


def capacity_strategy(ctx: LayerContext, name: str) -> list[ecs.CapacityProviderStrategyItem]:
    capacity = ctx.env.capacity_of(name)
    return [
        ecs.CapacityProviderStrategyItem(
            CapacityProvider="FARGATE", Base=capacity.fargate_base, Weight=capacity.fargate_weight
        ),
        ecs.CapacityProviderStrategyItem(CapacityProvider="FARGATE_SPOT", Weight=capacity.spot_weight),
    ]


def network_configuration(ctx: LayerContext, groups: list[Any]) -> ecs.NetworkConfiguration:
    """Private subnets, no public IP, ``groups`` (security group ids)."""
    return ecs.NetworkConfiguration(
        AwsvpcConfiguration=ecs.AwsvpcConfiguration(
            AssignPublicIp="DISABLED",
            Subnets=ctx.import_list(Network.PRIVATE_SUBNET_IDS),
            SecurityGroups=groups,
        )
    )


def service(
    ctx: LayerContext,
    name: str,
    settings: Service,
    *,
    task: ecs.TaskDefinition,
    group: Any,
    **extra: Any,
) -> ecs.Service:
    """``Service``: named ``name`` (the release names it), rolling (ECS controller, circuit breaker
    with rollback), ECS Exec if the settings turn it on, in its own ``group``; ``extra``
    ECS::Service properties (those that are None are left out)."""
    extra = {k: v for k, v in extra.items() if v is not None}
    return ecs.Service(
        "Service",
        ServiceName=name,  # named: the release pipeline, in another account, names it
        Cluster=ctx.import_value(Platform.CLUSTER_NAME),
        TaskDefinition=Ref(task),
        DesiredCount=settings.desired_count,
        CapacityProviderStrategy=capacity_strategy(ctx, name),
        NetworkConfiguration=network_configuration(ctx, [GetAtt(group, "GroupId")]),
        DeploymentConfiguration=ecs.DeploymentConfiguration(
            DeploymentCircuitBreaker=ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True),
            MaximumPercent=200,
            MinimumHealthyPercent=100,
        ),
        DeploymentController=ecs.DeploymentController(Type="ECS"),
        EnableExecuteCommand=settings.exec,
        EnableECSManagedTags=True,
        PropagateTags="SERVICE",
        **extra,
    )
