"""The ``worker`` kind: a queue consumer. No port and no load balancer; a queue of its own (named
after its stack, encrypted with the environment's data key) with a dead-letter queue behind a
redrive policy, scaling on the backlog per task, alarms on the queue's age and on dead letters."""

from __future__ import annotations

from troposphere import GetAtt, Template, applicationautoscaling, cloudwatch, ecs, sqs

from infra_templates import constructs
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import Platform
from templates.service import alarms, containers, fargate, network, queues, release, service_connect
from templates.service.scaling import metric_stat, scalable_target, target_tracking


def build(env: Environment, name: str) -> Template:
    """The stack of a ``worker`` service."""
    f = containers.foundation(
        env, name, f"the {name} worker: its queue, task definition, ECS service and backlog scaling"
    )
    ctx, t, service, logs, task = f.ctx, f.t, f.service, f.logs, f.task
    execution_role, task_role = f.execution_role, f.task_role
    queue, dead_letters = _queues(t, ctx, name)

    group = network.security_group(t, ctx, f"{ctx.stack_name}: no way in; out to HTTPS (SQS, AWS APIs)")
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

    target = scalable_target(t, ctx, service.scaling, ecs_service)
    if service.scaling.max > service.scaling.min:
        t.add_resource(
            target_tracking(
                "BacklogScaling",
                "backlog",
                target,
                value=service.queue.backlog_per_task,
                customized=_backlog_per_task(ctx, queue, ecs_service),
            )
        )
    release.release_role(t, ctx, name, roles=[execution_role, task_role], codedeploy=False)
    _alarms(t, ctx, name, queue=queue, dead_letters=dead_letters, ecs_service=ecs_service)
    return t


def _queues(t: Template, ctx: LayerContext, name: str) -> tuple[sqs.Queue, sqs.Queue]:
    """The worker's queue and its dead-letter queue: a message received ``max_receive_count`` times
    without being deleted moves to the dead-letter queue (Amazon SQS Developer Guide, "Using
    dead-letter queues"; RedrivePolicy ``deadLetterTargetArn`` and ``maxReceiveCount``)."""
    settings = ctx.env.services[name].queue
    own_arn = queues.queue_arn(ctx.env, name)
    dead_letters = t.add_resource(queues.dead_letter_queue(ctx, source=own_arn))
    queue = t.add_resource(
        queues.encrypted_queue(
            "Queue",
            ctx,
            QueueName=queues.queue_name(ctx.env, name),  # named: its senders derive its ARN and URL
            VisibilityTimeout=settings.visibility_timeout_seconds,
            MessageRetentionPeriod=settings.retention_seconds,
            ReceiveMessageWaitTimeSeconds=20,  # long polling: fewer empty receives
            RedrivePolicy=sqs.RedrivePolicy(
                deadLetterTargetArn=GetAtt(dead_letters, "Arn"), maxReceiveCount=settings.max_receive_count
            ),
        )
    )
    return queue, dead_letters


def _backlog_per_task(
    ctx: LayerContext, queue: sqs.Queue, ecs_service: ecs.Service
) -> applicationautoscaling.CustomizedMetricSpecification:
    """The AWS-documented backlog per task: the queue's ApproximateNumberOfMessagesVisible (Sum)
    divided by the service's ECS/ContainerInsights RunningTaskCount (Average), both per minute
    (Application Auto Scaling User Guide, "Create a target tracking scaling policy for Application
    Auto Scaling using metric math", "Example: Amazon SQS queue backlog per task"). Container
    Insights must be on for the second (the settings refuse a scaling worker without it)."""

    return applicationautoscaling.CustomizedMetricSpecification(
        Metrics=[
            metric_stat(
                "m1", "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": GetAtt(queue, "QueueName")}, "Sum"
            ),
            metric_stat(
                "m2",
                "ECS/ContainerInsights",
                "RunningTaskCount",
                {"ClusterName": ctx.import_value(Platform.CLUSTER_NAME), "ServiceName": GetAtt(ecs_service, "Name")},
                "Average",
            ),
            applicationautoscaling.TargetTrackingMetricDataQuery(
                Id="e1", Expression="m1 / m2", Label="SQS backlog per running task", ReturnData=True
            ),
        ]
    )


def _alarms(
    t: Template,
    ctx: LayerContext,
    name: str,
    *,
    queue: sqs.Queue,
    dead_letters: sqs.Queue,
    ecs_service: ecs.Service,
) -> None:
    """CPU, memory and no running task (shared); the oldest message older than the settings allow
    (the worker falls behind or is stuck); any message in the dead-letter queue (work that failed
    ``max_receive_count`` times). SQS publishes its metrics every minute for a queue in use, and
    ``ApproximateNumberOfMessagesVisible`` and ``ApproximateAgeOfOldestMessage`` stay at 0 while
    the queue is empty (Amazon SQS Developer Guide, "Available CloudWatch metrics for Amazon SQS"):
    missing data is no news. Users are affected (paging) when the queue falls behind while no task
    runs, or the queue is stuck."""
    service = ctx.env.services[name]
    add = alarms.adder(t, ctx)
    down = alarms.task_alarms(t, ctx, name, minimum=service.scaling.min, ecs_service=ecs_service)
    age = service.queue.oldest_message_alarm_seconds
    late = add(
        "OldestMessageAlarm",
        description=f"{name}: the oldest message in its queue waits more than {age} s",
        namespace="AWS/SQS",
        metric="ApproximateAgeOfOldestMessage",
        dimensions={"QueueName": GetAtt(queue, "QueueName")},
        statistic="Maximum",
        comparison="GreaterThanThreshold",
        threshold=age,
        missing_data="notBreaching",
    )
    constructs.dead_letters_alarm(
        add,
        "DeadLettersAlarm",
        dead_letters,
        description=f"{name}: messages in its dead-letter queue (failed {service.queue.max_receive_count} times)",
    )
    alarms.paging_composite(
        t,
        ctx,
        f"PAGE: the work of {name} waits: its oldest message is older than {age} s"
        + (" or no task runs" if down else ""),
        all_of=[],
        any_of=[late, *down],
    )


__all__ = ["build", "cloudwatch"]
