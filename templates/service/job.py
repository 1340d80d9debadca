"""The ``job`` kind: a scheduled task. EventBridge Scheduler runs one task of the job's task
definition (ECS RunTask) on a cron or rate expression in the settings' time zone; no ECS service
and nothing running between runs. A run Scheduler could not start (after its retries) lands in the
job's dead-letter queue; a run that fails (its application exits non-zero, or the task cannot
start) is told to the alarm topic; both are alarms of the job."""

from __future__ import annotations

from awacs import ecs as ecs_actions
from awacs.aws import ArnEquals
from troposphere import GetAtt, Ref, Sub, Template, events, scheduler
from troposphere.iam import Policy, Role

from infra_templates import constructs, iam
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import Monitoring, Network, Platform
from templates.service import alarms, containers, network, queues, release
from templates.service.release import pass_roles

# Retries of a run Scheduler could not start, and how long it keeps trying, before the run goes to
# the dead-letter queue (EventBridge Scheduler User Guide, "Configuring a retry policy"; the
# defaults are 185 retries over 24 hours, too long for a nightly job to be news).
RETRY_ATTEMPTS = 3
RETRY_MAXIMUM_AGE_SECONDS = 3600


def build(env: Environment, name: str) -> Template:
    """The stack of a ``job`` service."""
    f = containers.foundation(env, name, f"the {name} job: task definition, its schedule and the roles it runs with")
    ctx, t, service, task = f.ctx, f.t, f.service, f.task
    execution_role, task_role = f.execution_role, f.task_role
    group = network.security_group(t, ctx, f"{ctx.stack_name}: no way in; out to HTTPS (AWS APIs)")
    network.outbound(t, ctx, name, service, GetAtt(group, "GroupId"))

    dead_letters = t.add_resource(queues.dead_letter_queue(ctx))
    task_roles = [execution_role, task_role]
    scheduler_role = t.add_resource(_scheduler_role(ctx, name, dead_letters, task_roles))
    capacity = env.capacity_of(name)
    schedule = service.schedule
    assert schedule is not None  # the settings require it of a job
    t.add_resource(
        scheduler.Schedule(
            "Schedule",
            Description=f"Runs the {name} job of {env.project} {env.name}",
            ScheduleExpression=schedule.expression,
            ScheduleExpressionTimezone=schedule.timezone,
            FlexibleTimeWindow=scheduler.FlexibleTimeWindow(Mode="OFF"),
            # A pilot-light DR environment runs nothing until failover: its schedule waits, disabled.
            State="DISABLED" if env.dr is not None and env.dr.posture == "pilot-light" else "ENABLED",
            Target=scheduler.Target(
                Arn=ctx.import_value(Platform.CLUSTER_ARN),
                RoleArn=GetAtt(scheduler_role, "Arn"),
                DeadLetterConfig=scheduler.DeadLetterConfig(Arn=GetAtt(dead_letters, "Arn")),
                RetryPolicy=scheduler.RetryPolicy(
                    MaximumRetryAttempts=RETRY_ATTEMPTS, MaximumEventAgeInSeconds=RETRY_MAXIMUM_AGE_SECONDS
                ),
                EcsParameters=scheduler.EcsParameters(
                    TaskDefinitionArn=Ref(task),
                    TaskCount=1,
                    CapacityProviderStrategy=[
                        scheduler.CapacityProviderStrategyItem(
                            CapacityProvider="FARGATE", Base=capacity.fargate_base, Weight=capacity.fargate_weight
                        ),
                        scheduler.CapacityProviderStrategyItem(
                            CapacityProvider="FARGATE_SPOT", Weight=capacity.spot_weight
                        ),
                    ],
                    NetworkConfiguration=scheduler.NetworkConfiguration(
                        AwsvpcConfiguration=scheduler.AwsVpcConfiguration(
                            AssignPublicIp="DISABLED",
                            Subnets=ctx.import_list(Network.PRIVATE_SUBNET_IDS),
                            SecurityGroups=[GetAtt(group, "GroupId")],
                        )
                    ),
                    Group=_task_group(name),
                    EnableExecuteCommand=service.exec,
                ),
            ),
        )
    )
    release.release_role(t, ctx, name, roles=task_roles, codedeploy=False)
    _alarms(t, ctx, name, dead_letters=dead_letters)
    return t


def _task_group(name: str) -> str:
    """The ECS task group of the job's runs (RunTask ``group``), which its failed-run rule matches."""
    return f"job:{name}"


def _scheduler_role(ctx: LayerContext, name: str, dead_letters: object, task_roles: list[Role]) -> Role:
    """What EventBridge Scheduler needs to run the job: ecs:RunTask on this task definition's family
    in this cluster, iam:PassRole on its two roles to ECS tasks, and sending an undelivered run to
    the dead-letter queue. The least-privilege form of the AmazonEC2ContainerServiceEventsRole
    policy (ECS Developer Guide, "Amazon ECS EventBridge IAM Role"; EventBridge Scheduler User
    Guide, "Setting up the execution role"); no ecs:TagResource, since the runs are not tagged.
    Trusted by scheduler.amazonaws.com for this account's schedules only."""
    family = Sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/%s:*" % ctx.stack_name)
    statements = [
        iam.allow(
            "RunThisJobsTask",
            [ecs_actions.RunTask],
            [family],
            conditions=[ArnEquals("ecs:cluster", ctx.import_value(Platform.CLUSTER_ARN))],
        ),
        pass_roles(task_roles),
        *queues.send_to_dead_letter_queue(ctx, dead_letters),
    ]
    # Only schedules of this account and region (the confused-deputy guard of EventBridge
    # Scheduler User Guide, "Setting up the execution role": aws:SourceAccount and aws:SourceArn).
    trust = iam.service_trust(
        "scheduler.amazonaws.com",
        source_arn=Sub("arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/*"),
    )
    return Role(
        "SchedulerRole",
        Description=f"EventBridge Scheduler runs the {name} job: one task of {ctx.stack_name}",
        AssumeRolePolicyDocument=trust,
        Policies=[Policy(PolicyName="run-job", PolicyDocument=iam.document(*statements))],
    )


def _alarms(t: Template, ctx: LayerContext, name: str, *, dead_letters: object) -> None:
    """A run Scheduler could not start lands in the dead-letter queue: any message there is an
    alarm (``FailedRunsAlarm``). A run that started and failed (its application exited non-zero,
    or the task could not start its containers) is an "ECS Task State Change" event of the job's
    task group with lastStatus STOPPED (EventBridge events reference, "Amazon ECS task state
    change events": ``containers[].exitCode``, ``stopCode``): a rule sends it to the alarm topic."""
    add = alarms.adder(t, ctx)
    constructs.dead_letters_alarm(
        add,
        "FailedRunsAlarm",
        dead_letters,
        description=f"{name}: a scheduled run could not be started (it is in the job's dead-letter queue)",
    )
    pattern = {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [ctx.import_value(Platform.CLUSTER_ARN)],
            "group": [_task_group(name)],
            "lastStatus": ["STOPPED"],
            "$or": [
                {"containers": {"name": [name], "exitCode": [{"anything-but": 0}]}},
                {"stopCode": ["TaskFailedToStart"]},
            ],
        },
    }
    t.add_resource(
        events.Rule(
            "FailedRunRule",
            Description=f"A run of the {name} job failed: its application exited non-zero, or the task did not start",
            EventPattern=pattern,
            State="ENABLED",
            Targets=[events.Target(Id="AlarmTopic", Arn=ctx.import_value(Monitoring.ALARM_TOPIC_ARN))],
        )
    )
