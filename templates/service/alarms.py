"""The alarms every kind that runs an ECS service shares: CPU, memory, and (where it must run) no
running task. Each kind adds its own (targets, queue, failed runs) and its paging composite."""

from __future__ import annotations

from collections.abc import Callable

from troposphere import GetAtt, Sub, Template, cloudwatch, ecs

from infra_templates import constructs
from infra_templates.layer import LayerContext
from templates.contracts import Monitoring, Platform


def adder(t: Template, ctx: LayerContext) -> Callable[..., cloudwatch.Alarm]:
    """A function that adds a metric alarm on the environment's alarm topic, with the settings'
    period, evaluation periods and datapoints unless given (``constructs.alarm_adder``)."""
    return constructs.alarm_adder(t, ctx.env, ctx.import_value(Monitoring.ALARM_TOPIC_ARN))


def task_alarms(
    t: Template, ctx: LayerContext, name: str, *, minimum: int, ecs_service: ecs.Service
) -> list[cloudwatch.Alarm]:
    """CPU and memory warnings, and where the service must run (``minimum`` > 0) the alarms that
    say no task runs; returns those "down" alarms, for the kind's paging composite.

    No running task: ECS publishes a service's CPUUtilization every minute while it has a RUNNING
    task and nothing otherwise (ECS Developer Guide, "Amazon ECS CloudWatch metrics"), so its
    SampleCount below 1 with missing data breaching is "no task runs", with or without Container
    Insights (whose RunningTaskCount is used only where ``platform.container_insights`` is on)."""
    limits = ctx.env.monitoring.alarms
    cluster = ctx.import_value(Platform.CLUSTER_NAME)
    ecs_dims = {"ClusterName": cluster, "ServiceName": GetAtt(ecs_service, "Name")}
    add = adder(t, ctx)
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
    must_run = minimum > 0
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
            description=f"{name}: fewer running tasks than the minimum of {minimum}",
            namespace="ECS/ContainerInsights", metric="RunningTaskCount", dimensions=ecs_dims,
            statistic="Minimum", comparison="LessThanThreshold", threshold=minimum,
            missing_data="breaching",
        )  # fmt: skip
    return down


def paging_composite(
    t: Template, ctx: LayerContext, description: str, all_of: list[cloudwatch.Alarm], any_of: list[cloudwatch.Alarm]
) -> cloudwatch.CompositeAlarm:
    """``UsersAffectedAlarm`` on the paging topic: ALARM when all of ``all_of`` are (if any), or any
    of ``any_of`` is."""
    paging = ctx.import_value(Monitoring.PAGING_TOPIC_ARN)
    terms = []
    if all_of:
        terms.append("(" + " AND ".join(f'ALARM("${{{alarm.title}}}")' for alarm in all_of) + ")")
    terms += [f'ALARM("${{{alarm.title}}}")' for alarm in any_of]
    return t.add_resource(
        cloudwatch.CompositeAlarm(
            "UsersAffectedAlarm",
            AlarmDescription=description,
            AlarmRule=Sub(" OR ".join(terms), **{alarm.title: GetAtt(alarm, "Arn") for alarm in [*all_of, *any_of]}),
            AlarmActions=[paging],
            OKActions=[paging],
        )
    )
