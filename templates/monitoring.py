"""Monitoring layer: the alarm topic (KMS-encrypted SNS) and its e-mail subscriptions, alarms on the
ALB, the database and the NAT gateways, EventBridge rules for failed ECS deployments and service
errors, and (optionally) a mailer that turns alarm state changes into readable mails sent through
SES. ``build_dashboard`` is the dashboard layer, a stack of its own.

Services' own alarms live in each service stack and import the topic, so this stack deploys before
them. It has a key of its own (not the keys layer's): its key policy lets CloudWatch and
EventBridge encrypt messages to this one topic, a grant the logs and data keys should not carry.
"""

from __future__ import annotations

import json
from typing import Any

from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import ses as ses_actions
from awacs import sns as sns_actions
from awacs import sqs as sqs_actions
from awacs.aws import ArnLike, Principal, StringEquals
from troposphere import (
    AccountId,
    GetAtt,
    Ref,
    Select,
    Split,
    Sub,
    Template,
    awslambda,
    cloudwatch,
    events,
    ses,
    sns,
    sqs,
)
from troposphere.iam import Policy, Role

from infra_templates import constructs, iam
from infra_templates.config import Environment, ServerlessCapacity
from infra_templates.layer import LayerContext
from infra_templates.naming import queue_name, release_name
from templates import data_access, origin_verify
from templates.contracts import AssetsReplica, Data, Edge, Keys, Monitoring, Network, OriginVerify, Platform
from templates.edge import replication_rule_id

BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "monitoring")
    t = ctx.new_template("alarm topic, alarms on the ALB, database and NAT gateways, ECS events, dashboard")
    key, topic = alarm_topic(t, ctx, eventbridge=True)
    ctx.export(t, Monitoring.ALARM_TOPIC_ARN, Ref(topic))
    paging = paging_topic(t, ctx, key)
    ctx.export(t, Monitoring.PAGING_TOPIC_ARN, Ref(paging))

    topic_arn = Ref(topic)
    _load_balancer_alarms(t, ctx, topic_arn, Ref(paging))
    _database_alarms(t, ctx, topic_arn)
    _nat_alarms(t, ctx, topic_arn)
    if env.standby is not None:
        _replication_alarms(t, ctx, topic_arn)
    if env.dr is not None:
        _global_database_lag_alarm(t, ctx, topic_arn)
    _rotation_alarms(t, ctx, topic_arn)
    event_rules = _ecs_event_rules(t, ctx, topic, paging)
    if env.monitoring.ses_email.enabled:
        _ses_mailer(t, ctx, topic_arn, key, event_rules)
    return t


def build_dashboard(env: Environment) -> Template:
    """The dashboard, a stack of its own: the alarms stack stays well below the 51,200-byte limit
    with three zones, readers and the mailer, and a dashboard change never touches the alarms."""
    ctx = LayerContext(env, "dashboard")
    t = ctx.new_template("CloudWatch dashboard: ALB, services, database, CloudFront")
    _dashboard(t, ctx)
    return t


def alarm_topic(t: Template, ctx: LayerContext, *, eventbridge: bool) -> tuple[Any, sns.Topic]:
    """The KMS-encrypted alarm topic, its key, its policy and (if on) its e-mail subscriptions.

    Only this account's CloudWatch alarms (and, with ``eventbridge``, EventBridge rules) publish.
    """
    env = ctx.env
    # The services that publish to the topic must encrypt with its key. AWS documents these
    # statements without conditions (CloudWatch and EventBridge send no source context to KMS);
    # the key encrypts nothing but this topic (and the mailer's dead letters, through SQS).
    users = [
        iam.allow(
            "CloudWatchAlarmsPublishToTheTopic",
            [kms_actions.GenerateDataKey, kms_actions.Decrypt],
            ["*"],
            principal=Principal("Service", "cloudwatch.amazonaws.com"),
        )
    ]
    if eventbridge:
        users.append(
            iam.allow(
                "EventBridgeRulesPublishToTheTopic",
                [kms_actions.GenerateDataKey, kms_actions.Decrypt],
                ["*"],
                principal=Principal("Service", "events.amazonaws.com"),
            )
        )
    key = t.add_resource(
        constructs.kms_key(
            "AlarmTopicKey", env, f"Encrypts the alarm topic of {env.project} {env.name}", iam.key_policy(*users)
        )
    )
    t.add_resource(constructs.kms_alias("AlarmTopicKeyAlias", f"{ctx.stack_name}/alarms", key))
    topic = t.add_resource(
        sns.Topic(
            "AlarmTopic",
            DisplayName=f"{env.project} {env.name} alarms",
            KmsMasterKeyId=GetAtt(key, "Arn"),
        )
    )
    _topic_policy(t, topic, eventbridge=eventbridge)
    _email_subscriptions(t, env, topic, "EmailSubscription")
    return key, topic


def paging_topic(t: Template, ctx: LayerContext, key: Any) -> sns.Topic:
    """The paging topic: only what users feel (the paging composite alarms) and failed releases
    publish here, so whatever the on-call rota subscribes (a pager's HTTPS endpoint, SMS) wakes
    someone for those alone; every other alarm stays on the notification topic. Encrypted with the
    alarm topic's key (whose policy already lets CloudWatch and EventBridge use it); the same
    e-mail recipients are subscribed so a page reaches someone before a pager is attached."""
    env = ctx.env
    topic = t.add_resource(
        sns.Topic(
            "PagingTopic",
            DisplayName=f"{env.project} {env.name} PAGE",
            KmsMasterKeyId=GetAtt(key, "Arn"),
        )
    )
    _topic_policy(t, topic, eventbridge=True, logical_id="PagingTopicPolicy")
    _email_subscriptions(t, env, topic, "PagingEmailSubscription")
    return topic


def _email_subscriptions(t: Template, env: Environment, topic: sns.Topic, prefix: str) -> None:
    if env.monitoring.sns_email.enabled:
        for index, address in enumerate(env.monitoring.sns_email.recipients):
            t.add_resource(
                sns.SubscriptionResource(
                    f"{prefix}{index + 1}", TopicArn=Ref(topic), Protocol="email", Endpoint=address
                )
            )


def _topic_policy(t: Template, topic: sns.Topic, *, eventbridge: bool, logical_id: str = "AlarmTopicPolicy") -> None:
    """Only this account's CloudWatch alarms and EventBridge rules may publish to the topic."""
    statements = [
        iam.allow(
            "CloudWatchAlarmsOfThisAccount",
            [sns_actions.Publish],
            [Ref(topic)],
            conditions=[
                StringEquals("aws:SourceAccount", AccountId),
                ArnLike("aws:SourceArn", iam.arn("cloudwatch", "alarm:*")),
            ],
            principal=Principal("Service", "cloudwatch.amazonaws.com"),
        )
    ]
    if eventbridge:
        statements.append(
            iam.allow(
                "EventBridgeRulesOfThisAccount",
                [sns_actions.Publish],
                [Ref(topic)],
                conditions=[
                    StringEquals("aws:SourceAccount", AccountId),
                    ArnLike("aws:SourceArn", iam.arn("events", "rule/*")),
                ],
                principal=Principal("Service", "events.amazonaws.com"),
            )
        )
    t.add_resource(sns.TopicPolicy(logical_id, Topics=[Ref(topic)], PolicyDocument=iam.document(*statements)))


def _alarm(t: Template, ctx: LayerContext, topic_arn: Any, logical_id: str, **kwargs: Any) -> cloudwatch.Alarm:
    return constructs.alarm_adder(t, ctx.env, topic_arn)(logical_id, **kwargs)


def _load_balancer_alarms(t: Template, ctx: LayerContext, topic_arn: Any, paging_arn: Any) -> None:
    """The load balancer's alarms, and the environment's paging composite alarm over what users of
    any service feel at the load balancer: 5xx of any origin (the targets' own, and the load
    balancer's: no healthy target, timeouts, refused connections) and p99 latency past
    ``alb_p99_response_seconds``. Metrics, dimensions and reporting: Elastic Load Balancing,
    "CloudWatch metrics for your Application Load Balancer" (HTTPCode_ELB_5XX_Count,
    HTTPCode_Target_5XX_Count, TargetResponseTime, dimension LoadBalancer). Per-service paging
    (no healthy target, no running task) is each service stack's ``UsersAffectedAlarm``."""
    limits = ctx.env.monitoring.alarms
    alb = {"LoadBalancer": ctx.import_value(Platform.LOAD_BALANCER_FULL_NAME)}
    paging: list[cloudwatch.Alarm] = []
    # The ALB publishes its 5xx counts and response times only when there is traffic: no data
    # means no errors and no slow answers, so missing data is not breaching.
    for logical_id, metric, who in (
        ("AlbTarget5xxAlarm", "HTTPCode_Target_5XX_Count", "the services"),
        ("AlbElb5xxAlarm", "HTTPCode_ELB_5XX_Count", "the load balancer itself (no healthy target, timeouts)"),
    ):
        paging.append(_alarm(
            t, ctx, topic_arn, logical_id,
            description=f"{ctx.env.name}: more than {limits.alb_5xx_count} 5xx answers per period from {who}",
            namespace="AWS/ApplicationELB", metric=metric, dimensions=alb,
            comparison="GreaterThanThreshold", threshold=limits.alb_5xx_count, missing_data="notBreaching",
        ))  # fmt: skip
    _alarm(
        t, ctx, topic_arn, "AlbRejectedConnectionsAlarm",
        description=f"{ctx.env.name}: the load balancer refused connections (it reached its maximum)",
        namespace="AWS/ApplicationELB", metric="RejectedConnectionCount", dimensions=alb,
        comparison="GreaterThanOrEqualToThreshold", threshold=limits.alb_rejected_connections,
        missing_data="notBreaching",  # published only when a connection is refused
    )  # fmt: skip
    _alarm(
        t, ctx, topic_arn, "AlbResponseTimeAlarm",
        description=f"{ctx.env.name}: p95 target response time above {limits.alb_p95_response_seconds} s",
        namespace="AWS/ApplicationELB", metric="TargetResponseTime", dimensions=alb, statistic="p95",
        comparison="GreaterThanThreshold", threshold=limits.alb_p95_response_seconds,
        missing_data="notBreaching",  # no requests, no response time
    )  # fmt: skip
    paging.append(_alarm(
        t, ctx, topic_arn, "AlbP99ResponseTimeAlarm",
        description=f"{ctx.env.name}: p99 target response time above {limits.alb_p99_response_seconds} s",
        namespace="AWS/ApplicationELB", metric="TargetResponseTime", dimensions=alb, statistic="p99",
        comparison="GreaterThanThreshold", threshold=limits.alb_p99_response_seconds,
        missing_data="notBreaching",  # no requests, no response time
    ))  # fmt: skip
    t.add_resource(
        cloudwatch.CompositeAlarm(
            "PagingAlarm",
            AlarmDescription=f"PAGE: users of {ctx.env.project} {ctx.env.name} are affected: the load balancer "
            f"answers 5xx (its own or the services') or p99 latency is above {limits.alb_p99_response_seconds} s",
            AlarmRule=Sub(
                " OR ".join(f'ALARM("${{{alarm.title}}}")' for alarm in paging),
                **{alarm.title: GetAtt(alarm, "Arn") for alarm in paging},
            ),
            AlarmActions=[paging_arn],
            OKActions=[paging_arn],
        )
    )


def _global_database_lag_alarm(t: Template, ctx: LayerContext, topic_arn: Any) -> None:
    """A DR environment's secondary cluster lagging behind the primary region by more than
    ``dr.rpo_minutes``: a failover now would lose more than the RPO allows. AuroraGlobalDBReplicationLag
    is a cluster-level metric of the secondary cluster, in milliseconds, in the secondary's region
    (Aurora User Guide, "Amazon CloudWatch metrics for Amazon Aurora", cluster-level metrics;
    "Monitoring an Amazon Aurora global database"). It lives in this (the secondary's) stack.

    Missing data is not breaching: a headless pilot-light secondary, or a cluster between
    promotion and re-joining, reports no lag. An RPO of 0 minutes cannot be met by asynchronous
    replication at all, so no alarm is generated for it (it would be in ALARM by design)."""
    env = ctx.env
    assert env.dr is not None
    if env.dr.rpo_minutes == 0:
        return
    _alarm(
        t, ctx, topic_arn, "GlobalDatabaseReplicationLagAlarm",
        description=f"{env.name}: the global database's copy here lags {env.dr.protects} by more than "
        f"the RPO of {env.dr.rpo_minutes} minutes",
        namespace="AWS/RDS", metric="AuroraGlobalDBReplicationLag",
        dimensions={"DBClusterIdentifier": ctx.import_value(Data.CLUSTER_IDENTIFIER)}, statistic="Maximum",
        comparison="GreaterThanThreshold", threshold=env.dr.rpo_minutes * 60 * 1000, missing_data="notBreaching",
    )  # fmt: skip


def _replication_alarms(t: Template, ctx: LayerContext, topic_arn: Any) -> None:
    """The assets' replication to the DR region: a failed object, or one late beyond Replication
    Time Control's 15 minutes, means the DR copy is not what failover would serve."""
    standby = ctx.env.standby
    assert standby is not None
    replica = ctx.parameter_from(t, AssetsReplica.BUCKET_NAME, BUCKET_NAME, environment=standby.environment)
    dimensions = {
        "SourceBucket": ctx.import_value(Edge.ASSETS_BUCKET_NAME),
        "DestinationBucket": Ref(replica),
        "RuleId": replication_rule_id(ctx.env),
    }
    _alarm(
        t, ctx, topic_arn, "AssetsReplicationFailedAlarm",
        description=f"{ctx.env.name}: static assets failed to replicate to {standby.environment} ({standby.region})",
        namespace="AWS/S3", metric="OperationsFailedReplication", dimensions=dimensions,
        comparison="GreaterThanThreshold", threshold=0, missing_data="notBreaching",  # published on failures
    )  # fmt: skip
    _alarm(
        t, ctx, topic_arn, "AssetsReplicationLateAlarm",
        description=f"{ctx.env.name}: static assets reach {standby.environment} more than 15 minutes late",
        namespace="AWS/S3", metric="ReplicationLatency", dimensions=dimensions, statistic="Maximum",
        comparison="GreaterThanThreshold", threshold=900,
        missing_data="notBreaching",  # published while objects replicate
    )  # fmt: skip


def _database_alarms(t: Template, ctx: LayerContext, topic_arn: Any) -> None:
    env = ctx.env
    limits = env.monitoring.alarms
    cluster = {"DBClusterIdentifier": ctx.import_value(Data.CLUSTER_IDENTIFIER)}
    # A running cluster reports these every minute: missing data means the cluster (or its metrics)
    # is gone, which is worth an alarm, so missing data is breaching... unless it may pause (0 ACU):
    # a paused instance reports no CPU or memory, and paused is no outage ("Scaling to Zero ACUs
    # with automatic pause and resume for Aurora Serverless v2", Aurora User Guide).
    # Likewise a pilot-light DR cluster: it has no instance until failover adds one (dr.posture),
    # so it reports nothing by design.
    capacity = env.database.capacity
    pauses = isinstance(capacity, ServerlessCapacity) and capacity.min_acu == 0
    headless = env.dr is not None and env.dr.posture == "pilot-light"
    silent = "notBreaching" if pauses or headless else "breaching"
    _alarm(
        t, ctx, topic_arn, "DatabaseCpuAlarm",
        description=f"{env.name}: database CPU above {limits.database_cpu_percent} %",
        namespace="AWS/RDS", metric="CPUUtilization", dimensions=cluster, statistic="Maximum",
        comparison="GreaterThanThreshold", threshold=limits.database_cpu_percent, missing_data=silent,
    )  # fmt: skip
    _alarm(
        t, ctx, topic_arn, "DatabaseMemoryAlarm",
        description=f"{env.name}: database freeable memory below {limits.database_freeable_memory_mib} MiB",
        namespace="AWS/RDS", metric="FreeableMemory", dimensions=cluster, statistic="Minimum",
        comparison="LessThanThreshold", threshold=limits.database_freeable_memory_mib * 1024 * 1024,
        missing_data=silent,
    )  # fmt: skip
    _alarm(
        t, ctx, topic_arn, "DatabaseConnectionsAlarm",
        description=f"{env.name}: more than {limits.database_connections} database connections",
        namespace="AWS/RDS", metric="DatabaseConnections", dimensions=cluster, statistic="Maximum",
        comparison="GreaterThanThreshold", threshold=limits.database_connections,
        # ...but a Serverless v2 cluster at 0 ACU pauses and stops reporting connections: not an outage.
        missing_data="notBreaching",
    )  # fmt: skip
    if capacity.readers > 0:
        # The cluster-level maximum over its readers (AuroraReplicaLag itself is per instance).
        _alarm(
            t, ctx, topic_arn, "DatabaseReplicaLagAlarm",
            description=f"{env.name}: a database reader lags more than {limits.database_replica_lag_ms} ms",
            namespace="AWS/RDS", metric="AuroraReplicaLagMaximum", dimensions=cluster, statistic="Maximum",
            comparison="GreaterThanThreshold", threshold=limits.database_replica_lag_ms,
            missing_data="notBreaching",  # no lag reported while readers restart: the CPU alarm covers outages
        )  # fmt: skip
    if isinstance(capacity, ServerlessCapacity):
        _alarm(
            t, ctx, topic_arn, "DatabaseCapacityAlarm",
            description=f"{env.name}: database uses more than {limits.database_acu_percent} % of its maximum ACUs",
            namespace="AWS/RDS", metric="ACUUtilization", dimensions=cluster, statistic="Maximum",
            comparison="GreaterThanThreshold", threshold=limits.database_acu_percent,
            missing_data="notBreaching",  # a paused cluster (min 0 ACU) uses none
        )  # fmt: skip


def _nat_alarms(t: Template, ctx: LayerContext, topic_arn: Any) -> None:
    """NAT gateway ids come from the network stack's export (one per zone, or one shared): putting
    the alarms there would need the topic, which is created after the network, a cycle."""
    env = ctx.env
    limits = env.monitoring.alarms
    zones = ctx.zones if env.network.nat_gateways == "per-zone" else ctx.zones[:1]
    ids = Split(",", ctx.import_value(Network.NAT_GATEWAY_IDS))
    for position, zone in enumerate(zones):
        nat = {"NatGatewayId": Select(position, ids)}
        # A NAT gateway publishes every minute, zeros included: missing data is breaching.
        _alarm(
            t, ctx, topic_arn, f"NatGateway{zone.letter}PortAllocationAlarm",
            description=f"{env.name}: NAT gateway {zone.letter} could not allocate a source port (connections fail)",
            namespace="AWS/NATGateway", metric="ErrorPortAllocation", dimensions=nat,
            comparison="GreaterThanThreshold", threshold=0, missing_data="breaching",
        )  # fmt: skip
        _alarm(
            t, ctx, topic_arn, f"NatGateway{zone.letter}DroppedPacketsAlarm",
            description=f"{env.name}: NAT gateway {zone.letter} dropped more than {limits.nat_dropped_packets} packets",
            namespace="AWS/NATGateway", metric="PacketsDropCount", dimensions=nat,
            comparison="GreaterThanThreshold", threshold=limits.nat_dropped_packets, missing_data="breaching",
        )  # fmt: skip


def _service_arns(ctx: LayerContext) -> Sub:
    return Sub(
        "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/${Cluster}/",
        Cluster=ctx.import_value(Platform.CLUSTER_NAME),
    )


def _ecs_event_rules(t: Template, ctx: LayerContext, topic: sns.Topic, paging: sns.Topic) -> list[str]:
    """Failed releases and service errors of this environment's cluster, to the topic; return the
    rules' logical IDs. Failed releases page too (the paging topic): a release that rolled back
    left the old version serving, but someone must look before the next one.

    A failed release reaches the topic whichever way the service deploys: ECS sends
    SERVICE_DEPLOYMENT_FAILED for services of the ECS controller (rolling with the circuit breaker,
    or blue/green, canary and linear with deployment alarms; ECS Developer Guide, "Amazon ECS
    service deployment state change events"), and a release of a CODE_DEPLOY service is a
    CodeDeploy deployment, whose failure CodeDeploy sends as a
    "CodeDeploy Deployment State-change Notification" in state FAILURE (EventBridge events
    reference, "AWS CodeDeploy events"). Each rule exists only where a service can send its event
    (the gate's rule E9005).
    """
    env = ctx.env
    by_ecs = [name for name in sorted(env.services) if not env.codedeploy(name)]
    patterns: dict[str, tuple[str, dict[str, Any]]] = {}
    if by_ecs:
        patterns["DeploymentFailedRule"] = (
            "a deployment of a service failed (rolled back by the circuit breaker or a deployment alarm)",
            {
                "source": ["aws.ecs"],
                "detail-type": ["ECS Deployment State Change"],
                "resources": [{"prefix": _service_arns(ctx)}],
                "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
            },
        )
    if env.codedeploy_services:
        patterns["ReleaseFailedRule"] = (
            "a blue/green release of a service failed (CodeDeploy rolled it back)",
            {
                "source": ["aws.codedeploy"],
                "detail-type": ["CodeDeploy Deployment State-change Notification"],
                "detail": {
                    "state": ["FAILURE"],
                    "application": [release_name(env.project, env.name, n) for n in env.codedeploy_services],
                },
            },
        )
    patterns["ServiceErrorRule"] = (
        "ECS reports an error for a service (tasks cannot start, cannot be placed...)",
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Service Action"],
            "detail": {"eventType": ["ERROR"], "clusterArn": [ctx.import_value(Platform.CLUSTER_ARN)]},
        },
    )
    for logical_id, (description, pattern) in patterns.items():
        targets = [events.Target(Id="AlarmTopic", Arn=Ref(topic))]
        if logical_id != "ServiceErrorRule":
            targets.append(events.Target(Id="PagingTopic", Arn=Ref(paging)))
        t.add_resource(
            events.Rule(
                logical_id,
                Description=f"{env.name}: {description}",
                EventPattern=pattern,
                State="ENABLED",
                Targets=targets,
            )
        )
    return list(patterns)


# The mailer, inline (at most 4 KiB). Its settings are part of the code, not environment
# variables: nothing secret, nothing to encrypt, and the code changes when they do.
MAILER_CODE = """\
import json
import urllib.parse

import boto3

CONFIG = json.loads(%(config)r)
SES = boto3.client("sesv2")


def handler(event, context):
    detail = event.get("detail", {})
    region = event.get("region", "")
    kind = event.get("detail-type", "")
    lines = ["Environment: " + CONFIG["environment"], "Event: " + kind, "Region: " + region]
    if kind == "CloudWatch Alarm State Change":
        name = detail.get("alarmName", "?")
        state = detail.get("state", {})
        before = detail.get("previousState", {}).get("value", "?")
        config = detail.get("configuration", {})
        reason_data = json.loads(state.get("reasonData") or "{}")
        subject = "[%%s] %%s: %%s" %% (CONFIG["environment"], state.get("value", "?"), name)
        lines += ["Alarm: " + name, "State: %%s -> %%s" %% (before, state.get("value", "?")),
                  "What: " + str(config.get("description") or "")]
        for item in config.get("metrics", []):
            stat = item.get("metricStat", {})
            metric = stat.get("metric", {})
            dims = ", ".join("%%s=%%s" %% kv for kv in sorted(metric.get("dimensions", {}).items()))
            lines.append("Metric: %%s %%s (%%s), %%s over %%s s" %% (
                metric.get("namespace"), metric.get("name"), dims, stat.get("stat"), stat.get("period")))
        if "threshold" in reason_data:
            lines.append("Threshold: %%s" %% reason_data["threshold"])
        if config.get("alarmRule"):
            lines.append("Rule: " + config["alarmRule"])
        lines += ["Reason: " + str(state.get("reason", "")), "Since: " + str(state.get("timestamp", "")),
                  "Console: https://%%s.console.aws.amazon.com/cloudwatch/home?region=%%s#alarmsV2:alarm/%%s"
                  %% (region, region, urllib.parse.quote(name, safe=""))]
    else:
        subject = "[%%s] %%s" %% (CONFIG["environment"], kind)
        lines += ["Resources: " + ", ".join(event.get("resources", [])), "", json.dumps(detail, indent=2)]
    SES.send_email(
        FromEmailAddress=CONFIG["sender"],
        Destination={"ToAddresses": CONFIG["recipients"]},
        Content={"Simple": {"Subject": {"Data": subject[:200]}, "Body": {"Text": {"Data": "\\n".join(lines)}}}},
    )
"""


def mailer_code(env: Environment) -> str:
    settings = env.monitoring.ses_email
    config = {"environment": f"{env.project} {env.name}", "sender": settings.sender, "recipients": settings.recipients}
    return MAILER_CODE % {"config": json.dumps(config, sort_keys=True)}


def _ses_mailer(t: Template, ctx: LayerContext, topic_arn: Any, key: Any, event_rules: list[str]) -> None:
    """SES identity, the mailer function (its role, log group, dead-letter queue) and the rules
    that call it: alarm state changes of this environment's alarms, and the ECS rules' events."""
    env = ctx.env
    settings = env.monitoring.ses_email
    sender = str(settings.sender)
    identity = t.add_resource(ses.EmailIdentity("MailerIdentity", EmailIdentity=sender))
    identity_arn = Sub(
        "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Identity}", Identity=Ref(identity)
    )
    logs = t.add_resource(
        constructs.log_group(
            "MailerLogGroup", env, env.monitoring.log_retention_days, ctx.import_value(Keys.LOGS_KEY_ARN)
        )
    )
    # Mails that still fail after Lambda's retries land here; an alarm on its depth tells the topic.
    dead_letters = sqs.Queue("MailerDeadLetterQueue", KmsMasterKeyId=GetAtt(key, "Arn"), MessageRetentionPeriod=1209600)
    constructs.protect(dead_letters, env)
    t.add_resource(dead_letters)
    role = t.add_resource(
        Role(
            "MailerRole",
            Description=f"The alarm mailer of {ctx.stack_name}: sends from {sender} only, writes its own logs",
            AssumeRolePolicyDocument=iam.service_trust("lambda.amazonaws.com"),
            Policies=[
                Policy(
                    PolicyName="send-alarm-mail",
                    PolicyDocument=iam.document(
                        iam.allow(
                            "SendFromTheConfiguredIdentityOnly",
                            [ses_actions.SendEmail, ses_actions.SendRawEmail],
                            [identity_arn],
                            conditions=[StringEquals("ses:FromAddress", sender)],
                        ),
                        iam.allow(
                            "WriteItsOwnLogs",
                            [logs_actions.CreateLogStream, logs_actions.PutLogEvents],
                            [GetAtt(logs, "Arn")],
                        ),
                        iam.allow("KeepFailedEvents", [sqs_actions.SendMessage], [GetAtt(dead_letters, "Arn")]),
                        iam.allow(
                            "EncryptFailedEventsThroughSqs",
                            [kms_actions.GenerateDataKey, kms_actions.Decrypt],
                            [GetAtt(key, "Arn")],
                            conditions=[StringEquals("kms:ViaService", Sub("sqs.${AWS::Region}.amazonaws.com"))],
                        ),
                    ),
                )
            ],
        )
    )
    function = awslambda.Function(
        "Mailer",
        Description=f"Mails {env.project} {env.name} alarm state changes and ECS failures through SES",
        Runtime=constructs.LAMBDA_RUNTIME,
        Handler="index.handler",
        Code=awslambda.Code(ZipFile=mailer_code(env)),
        Role=GetAtt(role, "Arn"),
        MemorySize=128,
        Timeout=30,
        DeadLetterConfig=awslambda.DeadLetterConfig(TargetArn=GetAtt(dead_letters, "Arn")),
        LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(logs)),
    )
    constructs.skip_checkov(
        function,
        constructs.NO_RESERVED_CONCURRENCY,
        (
            "CKV_AWS_117",
            "No VPC on purpose: the mailer only calls SES's public API and reaches no private resource",
        ),
    )
    t.add_resource(function)

    alarm_rule = t.add_resource(
        events.Rule(
            "AlarmStateChangeRule",
            Description=f"{env.name}: alarm state changes of this environment's alarms, to the mailer",
            EventPattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                # CloudFormation names alarms {stack}-{LogicalId}-{suffix}; every stack of the
                # environment is named {project}-{env}-...
                "detail": {
                    "alarmName": [{"prefix": f"{env.project}-{env.name}-"}],
                    "state": {"value": ["ALARM", "OK"]},
                },
            },
            State="ENABLED",
            Targets=[events.Target(Id="Mailer", Arn=GetAtt(function, "Arn"))],
        )
    )
    rules = [alarm_rule.title, *event_rules]
    for rule in rules[1:]:
        t.resources[rule].Targets.append(events.Target(Id="Mailer", Arn=GetAtt(function, "Arn")))
    for rule in rules:
        t.add_resource(
            awslambda.Permission(
                f"MailerInvokedBy{rule}",
                FunctionName=Ref(function),
                Action="lambda:InvokeFunction",
                Principal="events.amazonaws.com",
                SourceArn=GetAtt(rule, "Arn"),
            )
        )
    t.add_resource(
        awslambda.EventInvokeConfig(
            "MailerInvokeConfig", FunctionName=Ref(function), Qualifier="$LATEST", MaximumRetryAttempts=2
        )
    )
    # The mailer failing must not be silent either: its errors and its dead letters go to the topic.
    _alarm(
        t, ctx, topic_arn, "MailerErrorsAlarm",
        description=f"{env.name}: the alarm mailer failed to send a mail (see its log group)",
        namespace="AWS/Lambda", metric="Errors", dimensions={"FunctionName": Ref(function)},
        comparison="GreaterThanThreshold", threshold=0,
        missing_data="notBreaching",  # published only when the function runs
    )  # fmt: skip
    constructs.dead_letters_alarm(
        constructs.alarm_adder(t, env, topic_arn),
        "MailerDeadLettersAlarm",
        dead_letters,
        description=f"{env.name}: alarm mails that could not be sent wait in the mailer's dead-letter queue",
    )


def _rotation_alarms(t: Template, ctx: LayerContext, topic_arn: Any) -> None:
    """An alarm on the errors of each rotation function of the environment (the administrator
    secret's, the origin-verify secret's): a failed step leaves the secret's pending version, and
    Secrets Manager refuses every later rotation while it stays ("RotateSecret": "If the AWSPENDING
    staging label is present but not attached to the same version as AWSCURRENT, then any later
    invocation of RotateSecret assumes that a previous rotation request is still in progress and
    returns an error"), so a failure must reach people, not wait for the next schedule."""
    env = ctx.env
    functions = []
    if data_access.rotates_master(env):
        functions.append(("MasterRotationErrorsAlarm", Data.MASTER_ROTATION_FUNCTION, "the administrator secret"))
    if origin_verify.owns(env):
        functions.append(
            ("OriginVerifyRotationErrorsAlarm", OriginVerify.ROTATION_FUNCTION, "the origin-verify secret")
        )
    for logical_id, export, secret in functions:
        # One error is the event: a rotation step runs once per schedule, so the environment's
        # "3 of 5 periods" (monitoring.alarms) would never see it; any error in 5 minutes fires.
        t.add_resource(
            constructs.metric_alarm(
                logical_id,
                topic_arn,
                description=f"{env.name}: the rotation of {secret} failed (see the function's log group); "
                "no later rotation starts until it is fixed (Secrets Manager User Guide, 'Troubleshoot rotation')",
                namespace="AWS/Lambda",
                metric="Errors",
                dimensions={"FunctionName": ctx.import_value(export)},
                comparison="GreaterThanThreshold",
                threshold=0,
                missing_data="notBreaching",  # published only when the function runs
                period=300,
                evaluation_periods=1,
                datapoints=1,
            )
        )


def _kind_widgets(env: Environment, metrics: Any) -> list[dict[str, Any]]:
    """The workers' queues (messages waiting, age of the oldest; the queues are named after their
    stacks) and the jobs' failed runs (the invocations of their failed-run rules, AWS/Events
    Invocations by RuleName)."""
    workers = env.of_kind("worker")
    jobs = env.of_kind("job")
    widgets = []
    if workers:
        queues = [queue_name(env.project, env.name, w) for w in workers]
        widgets.append(
            metrics(
                "Worker queues: messages waiting",
                [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q] for q in queues],
                stat="Maximum",
            )
        )
        widgets.append(
            metrics(
                "Worker queues: oldest message (s)",
                [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q] for q in queues],
                stat="Maximum",
            )
        )
    if jobs:
        # The jobs' failed-run rules carry names CloudFormation draws (no alarm or rule names
        # itself): their invocations are found by the rule's logical ID in its name.
        expression = "SEARCH('{AWS/Events,RuleName} MetricName=\"Invocations\" FailedRunRule', 'Sum', 300)"
        widgets.append(metrics("Jobs: failed runs", [[{"expression": expression, "label": "", "id": "e1"}]]))
    return widgets


def _dashboard(t: Template, ctx: LayerContext) -> None:
    """One dashboard: the ALB, the services (every service of the cluster, by search), the database
    and CloudFront (whose metrics live in us-east-1). Built as sorted JSON, so it is deterministic."""
    env = ctx.env
    region = "${AWS::Region}"
    alb = ["LoadBalancer", "${Alb}"]
    db = ["DBClusterIdentifier", "${Database}"]
    cf = ["DistributionId", "${Distribution}", "Region", "Global"]

    def metrics(title: str, rows: list[list[Any]], *, stat: str = "Sum", where: str = region) -> dict[str, Any]:
        return {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {"title": title, "region": where, "stat": stat, "period": 300, "metrics": rows},
        }

    def search(title: str, namespace: str, metric: str, stat: str) -> dict[str, Any]:
        expression = (
            f'SEARCH(\'{{{namespace},ClusterName,ServiceName}} MetricName="{metric}" '
            f"ClusterName=\"${{Cluster}}\"', '{stat}', 300)"
        )
        return metrics(title, [[{"expression": expression, "label": "", "id": "e1"}]], stat=stat)

    widgets = [
        metrics("ALB requests", [["AWS/ApplicationELB", "RequestCount", *alb]]),
        metrics(
            "ALB errors",
            [
                ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *alb],
                ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *alb],
                ["AWS/ApplicationELB", "HTTPCode_Target_4XX_Count", *alb],
                ["AWS/ApplicationELB", "RejectedConnectionCount", *alb],
            ],
        ),
        metrics(
            "ALB latency (p50, p95, p99)",
            [["AWS/ApplicationELB", "TargetResponseTime", *alb, {"stat": p}] for p in ("p50", "p95", "p99")],
            stat="p95",
        ),
        search("Service CPU %", "AWS/ECS", "CPUUtilization", "Average"),
        search("Service memory %", "AWS/ECS", "MemoryUtilization", "Average"),
        search("Service running tasks", "ECS/ContainerInsights", "RunningTaskCount", "Minimum"),
        metrics(
            "Database CPU % and connections",
            [["AWS/RDS", "CPUUtilization", *db], ["AWS/RDS", "DatabaseConnections", *db, {"yAxis": "right"}]],
            stat="Maximum",
        ),
        metrics("Database freeable memory", [["AWS/RDS", "FreeableMemory", *db]], stat="Minimum"),
        metrics("CloudFront requests", [["AWS/CloudFront", "Requests", *cf]], where="us-east-1"),
        metrics(
            "CloudFront error rate %",
            [["AWS/CloudFront", "5xxErrorRate", *cf], ["AWS/CloudFront", "4xxErrorRate", *cf]],
            stat="Average",
            where="us-east-1",
        ),
    ]
    widgets += _kind_widgets(env, metrics)
    if env.database.capacity.readers > 0:
        widgets.append(
            metrics("Database replica lag (ms)", [["AWS/RDS", "AuroraReplicaLagMaximum", *db]], stat="Maximum")
        )
    if isinstance(env.database.capacity, ServerlessCapacity):
        widgets.append(metrics("Database ACU utilization %", [["AWS/RDS", "ACUUtilization", *db]], stat="Maximum"))
    for index, widget in enumerate(widgets):
        widget["x"], widget["y"] = (index % 2) * 12, (index // 2) * 6
    body = json.dumps({"widgets": widgets}, sort_keys=True, separators=(",", ":"))
    t.add_resource(
        cloudwatch.Dashboard(
            "Dashboard",
            DashboardBody=Sub(
                body,
                Alb=ctx.import_value(Platform.LOAD_BALANCER_FULL_NAME),
                Cluster=ctx.import_value(Platform.CLUSTER_NAME),
                Database=ctx.import_value(Data.CLUSTER_IDENTIFIER),
                Distribution=ctx.import_value(Edge.DISTRIBUTION_ID),
            ),
        )
    )
