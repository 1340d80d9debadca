"""Disaster-recovery settings: the DR environment's primary, posture, DNS failover and standby."""

from typing import Literal

from pydantic import (
    Field,
)

from infra_templates.settings.common import Strict


class DnsFailover(Strict):
    """Where the origin name (every web route's, through CloudFront) lives in Route 53, and how its
    primary is checked."""

    hosted_zone_id: str = Field(
        pattern=r"^Z[A-Z0-9]{1,31}$", description="The public hosted zone that holds the primary's edge.origin_domain."
    )
    health_check_path: str = Field(
        default="/",
        pattern=r"^/[A-Za-z0-9_\-.~/]*$",
        description="Path Route 53 requests over HTTPS from the primary's load balancer; a 2xx or 3xx is healthy. "
        "Use the API service's own health path (services.<api>.health_check.path), so that a failure of another "
        "service behind the same load balancer does not move API traffic.",
    )
    failure_threshold: int = Field(
        default=3, ge=1, le=10, description="Consecutive failed checks (30 s apart) before Route 53 fails over."
    )


class DisasterRecovery(Strict):
    """Set in a DR environment's file: which environment it stands in for, and how ready it is."""

    protects: str = Field(description="The environment this one takes over from (its primary), e.g. prod.")
    posture: Literal["pilot-light", "warm-standby"] = Field(
        description="pilot-light: the database has no instance and services run at most one task until "
        "failover; warm-standby: a database instance and services at a reduced count."
    )
    rto_minutes: int = Field(ge=1, le=10080, description="Recovery time objective, repeated in the runbook.")
    rpo_minutes: int = Field(ge=0, le=10080, description="Recovery point objective, repeated in the runbook.")
    dns: DnsFailover | None = Field(
        default=None,
        description="Route 53 failover records for the primary's edge.origin_domain (the name CloudFront "
        "reaches every web route by): the primary's load balancer while its health check passes, this "
        "environment's otherwise.",
    )


class Standby(Strict):
    """Which environment stands by for this one: set by the generator, never in a file."""

    environment: str
    region: str
    dns: DnsFailover | None = None
