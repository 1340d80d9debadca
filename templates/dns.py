"""DNS layer, in a primary environment whose DR environment sets ``dr.dns``: Route 53 failover
records for the origin name (``edge.origin_domain``, the name CloudFront reaches every web route by:
the API and, with a service on '/*', the site).

The primary record points at this environment's load balancer while a Route 53 health check of it
passes; the secondary points at the DR environment's load balancer. Both records sit in this one
stack, in the primary's region: Route 53 is a global service, so the records keep answering (and
fail over) while this region is down, and a single stack keeps the pair consistent.

CloudFront cannot fail the load balancer over by itself (an origin group only serves behaviours
limited to GET, HEAD and OPTIONS, and the load balancer's take every method), so this is how the
web services' traffic moves.

The move follows the database, not the load balancer alone: the DR region's database is a read-only
secondary until it is promoted, so sending API traffic there on a failed check would turn an outage
into failed writes. The primary record therefore follows ``FailoverGate``, a CALCULATED health check
over the primary's plain checks with a health threshold of 0: Route 53 always considers it healthy
("If you specify 0, Route 53 always considers this health check to be healthy", Route 53 API
Reference, UpdateHealthCheck, HealthThreshold), so the name stays on the primary. The runbook's
promotion step opens the gate (``update-health-check --health-threshold`` :func:`open_threshold`):
from then the gate judges the primary as ``PrimaryHealthCheck`` does, and Route 53 fails over while
it is unhealthy (Route 53 Developer Guide, "Creating Amazon Route 53 health checks" and
"Configuring DNS failover"). The runbook's fail-back closes it (0); a stack update sets 0 again only
when it changes the gate's own properties (CloudFormation leaves a resource whose template did not
change alone: the open gate is then drift). The primary alias does not evaluate target health,
which would fail over on any target group of the load balancer and bypass the gate.

Route 53 lets no calculated check watch another ("You can't configure a calculated health check to
monitor the health of other calculated health checks": Route 53 Developer Guide, "Values that you
specify when you create or update health checks"), so the gate and ``PrimaryHealthCheck`` (the
primary's status, which ``edge_alarms``' ``ApiFailoverAlarm`` watches) are both CALCULATED over the
same plain checks, healthy while :func:`open_threshold` of them are:

- ``LoadBalancerHealthCheck``: HTTPS to the load balancer's own name, ``dr.dns.health_check_path``
  every 30 s. Behind CloudFront the checkers, who send no custom header, get the load balancer's own
  fixed 200 (``origin_verify.health_check_rule``, a listener rule of this stack): it proves the load
  balancer, its listener and certificate answer, reaches no target group, and so makes no 5xx of
  its own. With ``ingress: internet`` the service's own rule answers it (the rule ECS moves).
- ``<group>HealthCheck``: the API service's own health as its load balancer sees it, a
  CLOUDWATCH_METRIC check per target group of the service whose route covers the health path
  (``dns_checked_service``: both colours of a blue/green service, one otherwise), each on that
  group's alarm "no healthy target" (``_no_healthy_target``, in this stack, on the target group names
  the service's stack exports). Between releases the idle colour's alarm is in ALARM and its check
  unhealthy; the live colour's counts. An alarm CloudWatch cannot judge (a region down) is unhealthy
  (``InsufficientDataHealthStatus``: "Unhealthy: Route 53 considers the health check to be
  unhealthy"). Route 53 evaluates the alarm's metric with its own copy of the alarm's settings
  (period, evaluation periods, threshold, statistic: "Route 53 monitors data streams for CloudWatch
  metrics, not the state of the corresponding alarm"; after a change of the alarm's settings the
  check must be updated too), so the alarm's ``DatapointsToAlarm`` and missing-data treatment are
  not what Route 53 applies: a change to ``monitoring.alarms`` needs the check recreated (replace
  the dns stack's checks) to take effect there.

So a failure of another service behind the same load balancer does not move API traffic, and no
check request lands on a target group that may be empty.

A calculated check has no ``GetHealthCheckStatus`` ("You can't use GetHealthCheckStatus to get the
status of a calculated health check", Route 53 API Reference): its status is the CloudWatch metric
``HealthCheckStatus`` in us-east-1, which ``edge_alarms``' ``ApiFailoverAlarm`` watches; the runbook
reads that alarm and the load balancer check's status.

Behind CloudFront (``platform.ingress: cloudfront``) the primary's load balancer admits CloudFront
only; its second security group (``security``: ``AlbHealthCheckSecurityGroup``) lets Route 53's
health checkers make the HTTPS check (the AWS-managed prefix list
``com.amazonaws.<region>.route53-healthchecks``).
"""

from __future__ import annotations

from typing import Any

from troposphere import Ref, Tags, Template, cloudwatch, route53

from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates import origin_verify
from templates.contracts import Dns, Platform, dns_checked_service, target_group_full_name

LOAD_BALANCER_DNS = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.elb\.amazonaws\.com(\.cn)?$"
HOSTED_ZONE_ID = r"^Z[A-Z0-9]{1,31}$"
CHECK_INTERVAL_SECONDS = 30


def needed(env: Environment) -> bool:
    return env.standby is not None and env.standby.dns is not None


def build(env: Environment) -> Template:
    standby = env.standby
    assert standby is not None and standby.dns is not None
    dns = standby.dns
    ctx = LayerContext(env, "dns")
    name = env.edge.origin_domain + "."
    t = ctx.new_template(
        f"Route 53 failover of {env.edge.origin_domain}: this load balancer, else {standby.environment}'s"
    )
    own_dns = ctx.import_value(Platform.LOAD_BALANCER_DNS_NAME)
    if origin_verify.health_check_service(env) is not None:  # behind CloudFront: the checkers' own answer
        t.add_resource(origin_verify.health_check_rule(env, ctx.import_value(Platform.HTTPS_LISTENER_ARN)))
    endpoint = t.add_resource(
        route53.HealthCheck(
            "LoadBalancerHealthCheck",
            HealthCheckConfig=route53.HealthCheckConfig(
                Type="HTTPS",
                FullyQualifiedDomainName=own_dns,
                Port=443,
                ResourcePath=dns.health_check_path,
                RequestInterval=CHECK_INTERVAL_SECONDS,
                FailureThreshold=dns.failure_threshold,
                EnableSNI=True,
            ),
            HealthCheckTags=Tags(Name=f"{ctx.stack_name}-load-balancer"),
        )
    )
    children = [Ref(endpoint)]
    service = dns_checked_service(env)
    if service is not None:
        children += [Ref(check) for check in _colour_checks(t, ctx, env, service)]
    # Both calculated checks watch the same plain checks: Route 53 lets no calculated check watch
    # another ("You can't configure a calculated health check to monitor the health of other
    # calculated health checks": Route 53 Developer Guide, "Values that you specify when you create
    # or update health checks", Health checks to monitor).
    health = t.add_resource(
        route53.HealthCheck(
            "PrimaryHealthCheck",
            HealthCheckConfig=route53.HealthCheckConfig(
                Type="CALCULATED", ChildHealthChecks=children, HealthThreshold=open_threshold(env)
            ),
            HealthCheckTags=Tags(Name=f"{ctx.stack_name}-primary"),
        )
    )
    gate = t.add_resource(
        route53.HealthCheck(
            "FailoverGate",
            HealthCheckConfig=route53.HealthCheckConfig(
                Type="CALCULATED", ChildHealthChecks=children, HealthThreshold=0
            ),
            HealthCheckTags=Tags(Name=f"{ctx.stack_name}-failover-gate"),
        )
    )
    t.add_resource(
        _failover_record(
            "PRIMARY",
            name,
            dns.hosted_zone_id,
            f"{env.name}-{env.region}",
            zone=ctx.import_value(Platform.LOAD_BALANCER_ZONE_ID),
            target=own_dns,
            health_check=Ref(gate),
        )
    )
    standby_dns = ctx.parameter_from(
        t, Platform.LOAD_BALANCER_DNS_NAME, LOAD_BALANCER_DNS, environment=standby.environment
    )
    standby_zone = ctx.parameter_from(
        t, Platform.LOAD_BALANCER_ZONE_ID, HOSTED_ZONE_ID, environment=standby.environment
    )
    t.add_resource(
        _failover_record(
            "SECONDARY",
            name,
            dns.hosted_zone_id,
            f"{standby.environment}-{standby.region}",
            zone=Ref(standby_zone),
            target=Ref(standby_dns),
        )
    )
    ctx.output(t, Dns.HEALTH_CHECK_ID, Ref(health))
    ctx.output(t, Dns.LOAD_BALANCER_CHECK_ID, Ref(endpoint))
    ctx.output(t, Dns.FAILOVER_GATE_ID, Ref(gate))
    return t


def target_groups(env: Environment, service: str) -> list[str]:
    """The logical ids of ``service``'s target groups (templates/service/web.py): both colours of a
    blue/green service, one otherwise."""
    return ["TargetGroup", "GreenTargetGroup"] if env.strategy_of(service) == "blue-green" else ["TargetGroup"]


def open_threshold(env: Environment) -> int:
    """How many of the primary's plain checks must be healthy for it to count as healthy (the
    ``PrimaryHealthCheck``'s threshold, and the gate's once the runbook opens it): the load balancer's
    HTTPS check and, where a service's health path is checked, one of its target groups' (the live
    colour: between releases the idle one has no target). Two, or one without a checked service. A
    calculated check counts its healthy children, nothing finer: with both colours healthy (during a
    release) it also counts the pair without the load balancer's check, the one case it cannot tell."""
    return 2 if dns_checked_service(env) is not None else 1


def _colour_checks(t: Template, ctx: LayerContext, env: Environment, service: str) -> list[route53.HealthCheck]:
    """One CLOUDWATCH_METRIC check per target group of ``service`` (both colours of a blue/green
    service), each on its group's alarm (``_no_healthy_target``), in this region."""
    colours = []
    for group in target_groups(env, service):
        alarm = t.add_resource(_no_healthy_target(ctx, service, group))
        colours.append(
            t.add_resource(
                route53.HealthCheck(
                    f"{group}HealthCheck",
                    HealthCheckConfig=route53.HealthCheckConfig(
                        Type="CLOUDWATCH_METRIC",
                        # Ref of an alarm is its name; the region is the alarm's (this stack's)
                        AlarmIdentifier=route53.AlarmIdentifier(Name=Ref(alarm), Region=env.region),
                        InsufficientDataHealthStatus="Unhealthy",
                        # nothing of an endpoint check (RequestInterval, FailureThreshold): Route 53
                        # refuses them on an alarm check (hashicorp/terraform-provider-aws#5905)
                    ),
                    HealthCheckTags=Tags(Name=f"{ctx.stack_name}-{service}-{group}"),
                )
            )
        )
    return colours


def _no_healthy_target(ctx: LayerContext, service: str, group: str) -> cloudwatch.Alarm:
    """``<group>HealthAlarm``: no healthy target in ``service``'s target group ``group``, one per
    group (both colours of a blue/green service), each a plain metric: Route 53 takes alarms on
    standard-resolution metrics with the statistics Average, Minimum, Maximum, Sum or SampleCount,
    not metric math (AWS::Route53::HealthCheck AlarmIdentifier, Name), which rules out the
    service's own ``NoHealthyTargetAlarm`` (a sum over both colours).

    HealthyHostCount, dimensions TargetGroup and LoadBalancer ("CloudWatch metrics for your
    Application Load Balancer": published every 60 s, "Reported if health checks are enabled"),
    Maximum below 1: not one healthy target in any report of the period, judged with the settings'
    ``monitoring.alarms`` periods. Missing data is breaching: Elastic Load Balancing reports nothing
    for a metric without data (same page), which is the idle colour (no targets; its check unhealthy
    either way, the check over the colours asks for one) or a load balancer that no longer reports.

    No alarm actions: the idle colour is in ALARM between releases by design, and the service's
    ``NoHealthyTargetAlarm`` (over both colours) is the one that notifies.

    Here rather than in the service's stack, which exports the target groups' names: the service's
    template stays within the 51,200 bytes CloudFormation takes in a request (quotas.py)."""
    limits = ctx.env.monitoring.alarms
    return cloudwatch.Alarm(
        f"{group}HealthAlarm",
        AlarmDescription=f"{service}: no healthy target in {group}; a Route 53 health check reads it "
        "(between releases the idle colour's is in ALARM)",
        Namespace="AWS/ApplicationELB",
        MetricName="HealthyHostCount",
        Dimensions=[
            cloudwatch.MetricDimension(
                Name="TargetGroup", Value=ctx.import_value(target_group_full_name(service, group))
            ),
            cloudwatch.MetricDimension(Name="LoadBalancer", Value=ctx.import_value(Platform.LOAD_BALANCER_FULL_NAME)),
        ],
        Statistic="Maximum",
        ComparisonOperator="LessThanThreshold",
        Threshold=1.0,
        Period=limits.period_seconds,
        EvaluationPeriods=limits.evaluation_periods,
        DatapointsToAlarm=limits.datapoints_to_alarm,
        TreatMissingData="breaching",
    )


def _failover_record(
    role: str, name: str, hosted_zone: str, identifier: str, *, zone: Any, target: Any, health_check: Any = None
) -> route53.RecordSetType:
    """One of the pair: an alias of a load balancer, answered while it (and its check) is healthy."""
    return route53.RecordSetType(
        f"{role.capitalize()}Record",
        HostedZoneId=hosted_zone,
        Name=name,
        Type="A",
        SetIdentifier=identifier,
        Failover=role,
        **({} if health_check is None else {"HealthCheckId": health_check}),
        # The primary follows its gate only; the secondary's load balancer must have healthy targets.
        AliasTarget=route53.AliasTarget(HostedZoneId=zone, DNSName=target, EvaluateTargetHealth=health_check is None),
    )
