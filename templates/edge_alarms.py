"""Edge alarms layer, in us-east-1: CloudFront publishes its metrics only there (dimension
Region=Global), and an alarm can only watch metrics of its own region and notify a topic of its own
region. So this stack holds a second alarm topic (its own key, the same e-mail subscriptions) and
the CloudFront 5xx alarm. It deploys after the edge stack, whose distribution id it takes as a
parameter (``Fn::ImportValue`` cannot cross regions).

With the SES path on, alarm state changes here are forwarded to the environment region's default
event bus, where the mailer's rule picks them up like any other alarm of the environment.
"""

from __future__ import annotations

from awacs import events as events_actions
from troposphere import GetAtt, Ref, Sub, Template, events

from infra_templates import constructs, iam
from infra_templates.config import CLOUDFRONT_REGION, Environment
from infra_templates.layer import LayerContext
from templates.contracts import Dns, Edge
from templates.monitoring import alarm_topic

DISTRIBUTION_ID_PATTERN = r"^[A-Z0-9]{1,64}$"
HEALTH_CHECK_ID_PATTERN = r"^[0-9a-f-]{36}$"


def region(env: Environment) -> str:
    return CLOUDFRONT_REGION


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "edge-alarms")
    t = ctx.new_template(f"CloudFront alarms, in {CLOUDFRONT_REGION} where CloudFront's metrics are, and their topic")
    _, topic = alarm_topic(t, ctx, eventbridge=False)
    distribution = ctx.parameter_from(t, Edge.DISTRIBUTION_ID, pattern=DISTRIBUTION_ID_PATTERN)
    limits = env.monitoring.alarms
    t.add_resource(
        constructs.metric_alarm(
            "CloudFront5xxAlarm",
            Ref(topic),
            description=f"{env.name}: more than {limits.cloudfront_5xx_percent} % of CloudFront answers are 5xx",
            namespace="AWS/CloudFront",
            metric="5xxErrorRate",
            dimensions={"DistributionId": Ref(distribution), "Region": "Global"},
            statistic="Average",
            comparison="GreaterThanThreshold",
            threshold=limits.cloudfront_5xx_percent,
            missing_data="notBreaching",  # CloudFront publishes only when there are requests
            period=limits.period_seconds,
            evaluation_periods=limits.evaluation_periods,
            datapoints=limits.datapoints_to_alarm,
        )
    )
    if env.standby is not None and env.standby.dns is not None:
        _failover_alarm(t, ctx, Ref(topic))
    if env.monitoring.ses_email.enabled and env.region != CLOUDFRONT_REGION:
        _forward_to_the_mailer(t, ctx)
    return t


def _failover_alarm(t: Template, ctx: LayerContext, topic_arn: Ref) -> None:
    """The primary's Route 53 health check (its metric is in us-east-1): a CALCULATED check, healthy
    while the load balancer answers its HTTPS check and the API has a healthy target (templates/dns.py);
    Route 53 publishes ``HealthCheckStatus`` for calculated checks too, the only way to read their
    status ("If you want to check the status of a calculated health check, you must use the Amazon
    Route 53 console or the CloudWatch console", Route 53 API Reference, GetHealthCheckStatus). The
    origin name (every web route's) fails over only once the DR runbook's promotion opens the failover
    gate, so the alarm says the check failed, not that traffic moved."""
    check = ctx.parameter_from(t, Dns.HEALTH_CHECK_ID, pattern=HEALTH_CHECK_ID_PATTERN)
    limits = ctx.env.monitoring.alarms
    standby = ctx.env.standby
    assert standby is not None
    t.add_resource(
        constructs.metric_alarm(
            "ApiFailoverAlarm",
            topic_arn,
            description=f"{ctx.env.name}: the API fails its Route 53 health check (load balancer or healthy targets); "
            f"{ctx.env.edge.origin_domain} stays on it until the DR runbook's promotion opens the failover "
            f"gate, then answers with {standby.environment}'s",
            namespace="AWS/Route53",
            metric="HealthCheckStatus",
            dimensions={"HealthCheckId": Ref(check)},
            statistic="Minimum",
            comparison="LessThanThreshold",
            threshold=1,
            missing_data="breaching",  # Route 53 reports every check; silence is not health
            period=limits.period_seconds,
            evaluation_periods=1,
            datapoints=1,
        )
    )


def _forward_to_the_mailer(t: Template, ctx: LayerContext) -> None:
    """This stack's alarm state changes, to the default event bus of the environment's region."""
    bus = Sub("arn:${AWS::Partition}:events:%s:${AWS::AccountId}:event-bus/default" % ctx.env.region)
    role = t.add_resource(
        iam.service_role(
            "ForwardAlarmsRole",
            service="events.amazonaws.com",
            description=f"EventBridge forwards {ctx.stack_name} alarm state changes to {ctx.env.region}",
            policy_name="forward-alarm-state-changes",
            statements=[iam.allow("PutEventsOnTheEnvironmentsDefaultBus", [events_actions.PutEvents], [bus])],
        )
    )
    t.add_resource(
        events.Rule(
            "ForwardAlarmStateChangesRule",
            Description=f"{ctx.env.name}: CloudFront alarm state changes, to the mailer in {ctx.env.region}",
            EventPattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "detail": {"alarmName": [{"prefix": f"{ctx.stack_name}-"}], "state": {"value": ["ALARM", "OK"]}},
            },
            State="ENABLED",
            Targets=[events.Target(Id="EnvironmentEventBus", Arn=bus, RoleArn=GetAtt(role, "Arn"))],
        )
    )
