"""Network settings: the VPC's CIDR, zones, subnets, NAT, endpoints and flow logs."""

import ipaddress
from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from infra_templates.settings.common import (
    Cidr,
    FieldValueError,
    ManyFieldsError,
    Strict,
    check_retention,
    failed_locations,
    with_problems,
)

INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
MAX_ZONES = 3


class FlowLogs(Strict):
    retention_days: int = Field(description="CloudWatch Logs retention of the VPC flow logs.")
    traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        return check_retention(days)


class Subnets(Strict):
    """One CIDR per availability zone, in the order of ``availability_zones``, for each tier."""

    public: list[Cidr]
    private: list[Cidr]
    data: list[Cidr]


TIERS = ("public", "private", "data")


class Network(Strict):
    cidr: Cidr
    availability_zones: int = Field(
        ge=2,
        le=MAX_ZONES,
        description="How many zones to spread over: the region's first N (Fn::GetAZs), 2 or 3.",
    )
    subnets: Subnets
    nat_gateways: Literal["per-zone", "single"]
    map_public_ip_on_launch: bool = False
    flow_logs: FlowLogs
    interface_endpoints: list[Literal["ecr.api", "ecr.dkr", "logs", "secretsmanager"]] = Field(
        description="Interface endpoints to create in every zone; an empty list creates none."
    )

    @field_validator("cidr")
    @classmethod
    def _vpc_size(cls, cidr: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 16 <= cidr.prefixlen <= 28:
            raise ValueError("a VPC's CIDR block must be between /16 and /28")
        return cidr

    @field_validator("interface_endpoints")
    @classmethod
    def _distinct_endpoints(cls, endpoints: list[str]) -> list[str]:
        if len(set(endpoints)) != len(endpoints):
            raise ValueError("lists an endpoint twice")
        return endpoints

    @model_validator(mode="wrap")
    @classmethod
    def _subnets_fit(cls, data: Any, handler: ModelWrapValidatorHandler["Network"]) -> "Network":
        """Subnets inside the VPC, one per zone, none overlapping another: checked also when some
        other network setting (a subnet written ``/33``) fails its own check, on every value that
        passed its own, so one run reports every subnet problem (a knock-on of a failed value, such
        as "outside the VPC" for a VPC range that is not a range, is not said)."""
        try:
            network = handler(data)
        except ValidationError as error:
            failed = failed_locations(error)
            raw = data if isinstance(data, dict) else {}
            extra = [
                p
                for p in subnet_problems(_parsed(raw.get("cidr")), raw.get("availability_zones"), raw.get("subnets"))
                if not any(loc[: len(p.path)] == p.path or p.path[: len(loc)] == loc for loc in failed)
            ]
            if not extra:
                raise
            raise with_problems(error, (), extra, data) from None
        problems = subnet_problems(network.cidr, network.availability_zones, network.subnets.model_dump())
        if problems:
            raise ManyFieldsError(problems)
        return network


def _parsed(value: object) -> ipaddress.IPv4Network | None:
    """``value`` as a CIDR block, or None where it is not one (its own check says why)."""
    if isinstance(value, ipaddress.IPv4Network):
        return value
    try:
        return ipaddress.IPv4Network(value, strict=True) if isinstance(value, str) else None
    except ValueError:
        return None


def subnet_problems(vpc: ipaddress.IPv4Network | None, zones: object, subnets: object) -> list[FieldValueError]:
    """Each subnet CIDR block outside ``vpc``, outside /16-/28 or overlapping another, and each tier
    whose count differs from ``zones``: of the values that are valid by themselves (a tier that is
    not a list, an item that is not a CIDR block, a VPC range or zone count that is not valid: not
    judged here, their own check says so)."""
    problems: list[FieldValueError] = []
    placed: list[tuple[str, int, ipaddress.IPv4Network]] = []
    tiers = subnets if isinstance(subnets, dict) else {}
    for tier in TIERS:
        cidrs = tiers.get(tier)
        if not isinstance(cidrs, list):
            continue
        if isinstance(zones, int) and not isinstance(zones, bool) and 2 <= zones <= MAX_ZONES and len(cidrs) != zones:
            problems.append(
                FieldValueError(
                    ("subnets", tier),
                    f"has {len(cidrs)} CIDR blocks but availability_zones is {zones}; give one per zone, in zone order",
                )
            )
        for index, value in enumerate(cidrs):
            cidr = _parsed(value)
            if cidr is None:
                continue
            where = ("subnets", tier, index)
            if vpc is not None and not cidr.subnet_of(vpc):
                problems.append(
                    FieldValueError(where, f"is outside the VPC's CIDR block {vpc}; pick a range inside it", str(cidr))
                )
            elif not 16 <= cidr.prefixlen <= 28:
                problems.append(FieldValueError(where, "a subnet's CIDR block must be between /16 and /28", str(cidr)))
            problems.extend(
                FieldValueError(
                    where,
                    f"overlaps network.subnets.{other_tier}[{other_index}] ({other}); give every subnet its own range",
                    str(cidr),
                )
                for other_tier, other_index, other in placed
                if cidr.overlaps(other)
            )
            placed.append((tier, index, cidr))
    return problems
