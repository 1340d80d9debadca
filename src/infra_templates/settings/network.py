"""Network settings: the VPC's CIDR, zones, subnets, NAT, endpoints and flow logs."""

import ipaddress
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from infra_templates.settings.common import Cidr, FieldValueError, ManyFieldsError, Strict, check_retention

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

    @model_validator(mode="after")
    def _subnets_fit(self) -> "Network":
        zones = self.availability_zones
        problems: list[FieldValueError] = []
        placed: list[tuple[str, int, ipaddress.IPv4Network]] = []
        for tier in TIERS:
            cidrs: list[ipaddress.IPv4Network] = getattr(self.subnets, tier)
            if len(cidrs) != zones:
                problems.append(
                    FieldValueError(
                        ("subnets", tier),
                        f"has {len(cidrs)} CIDR blocks but availability_zones is {zones}; "
                        "give one per zone, in zone order",
                    )
                )
            for index, cidr in enumerate(cidrs):
                where = ("subnets", tier, index)
                if not cidr.subnet_of(self.cidr):
                    problems.append(
                        FieldValueError(
                            where, f"is outside the VPC's CIDR block {self.cidr}; pick a range inside it", str(cidr)
                        )
                    )
                elif not 16 <= cidr.prefixlen <= 28:
                    problems.append(
                        FieldValueError(where, "a subnet's CIDR block must be between /16 and /28", str(cidr))
                    )
                problems.extend(
                    FieldValueError(
                        where,
                        f"overlaps network.subnets.{other_tier}[{other_index}] ({other}); "
                        "give every subnet its own range",
                        str(cidr),
                    )
                    for other_tier, other_index, other in placed
                    if cidr.overlaps(other)
                )
                placed.append((tier, index, cidr))
        if problems:
            raise ManyFieldsError(problems)
        return self
