"""Application Auto Scaling, shared by the kinds that run a service: target tracking."""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Join, Ref, Sub, Template, applicationautoscaling, ecs

from infra_templates.config import Autoscaling
from infra_templates.layer import LayerContext
from templates.contracts import Platform


def scalable_target(
    t: Template, ctx: LayerContext, scaling: Autoscaling, ecs_service: ecs.Service
) -> applicationautoscaling.ScalableTarget:
    """The service's desired count between ``scaling.min`` and ``scaling.max``, with CPU target
    tracking at ``scaling.cpu_target``; the kind adds its own policies on the target returned."""
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
        target_tracking("CpuScaling", "cpu", target, value=scaling.cpu_target, metric="ECSServiceAverageCPUUtilization")
    )
    return target


def metric_stat(
    query_id: str, namespace: str, metric: str, dimensions: dict[str, Any], statistic: str
) -> applicationautoscaling.TargetTrackingMetricDataQuery:
    """One metric of a customized (metric math) target tracking metric, not returned itself."""
    return applicationautoscaling.TargetTrackingMetricDataQuery(
        Id=query_id,
        ReturnData=False,
        MetricStat=applicationautoscaling.TargetTrackingMetricStat(
            Metric=applicationautoscaling.TargetTrackingMetric(
                Namespace=namespace,
                MetricName=metric,
                Dimensions=[
                    applicationautoscaling.TargetTrackingMetricDimension(Name=k, Value=v) for k, v in dimensions.items()
                ],
            ),
            Stat=statistic,
        ),
    )


def target_tracking(
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
