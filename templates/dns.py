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
over the primary's own check with a health threshold of 0: Route 53 always considers it healthy
("If you specify 0, Route 53 always considers this health check to be healthy", Route 53 API
Reference, UpdateHealthCheck, HealthThreshold), so the name stays on the primary. The runbook's
promotion step opens the gate (``update-health-check --health-threshold 1``): from then the gate is
the primary's check, and Route 53 fails over while it fails (Route 53 Developer Guide, "Creating
Amazon Route 53 health checks" and "Configuring DNS failover"). A stack update closes it again (0),
the safe side. The primary's check requests the API service's own health path
(``dr.dns.health_check_path``), so a failure of another service behind the same load balancer
does not move API traffic; the primary alias does not evaluate target health, which would fail over
on any target group of the load balancer and bypass the gate.

Behind CloudFront (``platform.ingress: cloudfront``) the primary's load balancer admits CloudFront
only; its second security group (``security``: ``AlbHealthCheckSecurityGroup``) lets Route 53's
health checkers make this check (the AWS-managed prefix list ``com.amazonaws.<region>.route53-healthchecks``).
"""

from __future__ import annotations

from typing import Any

from troposphere import Ref, Tags, Template, route53

from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import Dns, Platform

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
    health = t.add_resource(
        route53.HealthCheck(
            "PrimaryHealthCheck",
            HealthCheckConfig=route53.HealthCheckConfig(
                Type="HTTPS",
                FullyQualifiedDomainName=own_dns,
                Port=443,
                ResourcePath=dns.health_check_path,
                RequestInterval=CHECK_INTERVAL_SECONDS,
                FailureThreshold=dns.failure_threshold,
                EnableSNI=True,
            ),
            HealthCheckTags=Tags(Name=f"{ctx.stack_name}-primary"),
        )
    )
    gate = t.add_resource(
        route53.HealthCheck(
            "FailoverGate",
            HealthCheckConfig=route53.HealthCheckConfig(
                Type="CALCULATED", ChildHealthChecks=[Ref(health)], HealthThreshold=0
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
    ctx.output(t, Dns.FAILOVER_GATE_ID, Ref(gate))
    return t


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
