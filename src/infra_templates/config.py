"""Settings: environment files read, merged and validated into frozen pydantic models.

``load_environment(name, root)`` reads ``environments/defaults.yaml`` and
``environments/<name>.yaml``, deep-merges them (mappings merge; lists and scalars replace) and
validates the result. Any problem raises :class:`SettingsError`, whose lines each name the file the
offending value came from, the field path, the value and what would be valid.
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import ipaddress
import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from infra_templates import quotas
from infra_templates.catalog import REGIONS, aurora_versions, zones_of
from infra_templates.credentials import credential_kinds

DEFAULTS_FILE = "defaults.yaml"

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
RESERVED_TAG_KEYS = ("Project", "Environment", "Layer", "ManagedBy")
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
MAX_ZONES = 3
RESERVED_ENVIRONMENT_NAMES = ("project", "defaults", "delivery")
ALB_HEALTHY_CODES = (200, 499)  # TargetGroup Matcher.HttpCode for an Application Load Balancer
# AWS's tagging limits ("Tag restrictions": AWS Batch user guide, ECS API Tag): at most 50 tags per
# resource, keys 1-128 characters, values at most 256. The generator adds its own four (standard_tags).
MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_VALUE = 256
# Services whose per-service project stacks would take another project stack's name: {project}-
# registry-<service> and {project}-delivery-<service> beside the project layers registry-replication,
# registry-replica-<region>, delivery-infrastructure and delivery-artifacts-<region> (templates/
# __init__.py PROJECT_LAYERS; tests/test_settings_limits.py derives them from it).
RESERVED_SERVICE_NAMES = ("infrastructure", "replication")
RESERVED_SERVICE_PREFIXES = ("replica-", "artifacts-")
PRIORITY_BAND = 2000  # listener rule priorities per specificity band; 20 bands fit under 50,000


class FieldValueError(ValueError):
    """A validator's complaint about a field below the one it validates.

    ``path`` is relative to the model the validator belongs to, so a cross-field rule can point at
    the exact list item it refuses instead of at the whole model.
    """

    def __init__(self, path: tuple[str | int, ...], message: str, value: object = None) -> None:
        super().__init__(message)
        self.path = path
        self.value = value


class ManyFieldsError(ValueError):
    """Several ManyFieldsError from one cross-field rule, so the user sees all of them at once."""

    def __init__(self, errors: list[FieldValueError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class SettingsError(Exception):
    """One or more problems in the environment files; ``str()`` is ready to print."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- field types ------------------------------------------------------------------------------


def _cidr(value: object) -> ipaddress.IPv4Network:
    if isinstance(value, ipaddress.IPv4Network):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an IPv4 CIDR block written as a string, such as '10.0.0.0/16'")
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f"; did you mean '{ipaddress.IPv4Network(value, strict=False)}'?"
        raise ValueError(f"is not a valid IPv4 CIDR block ({error}){hint}") from None


def _quoted_string(value: object) -> object:
    """Refuse a YAML number where a string is meant, with the fix (quote it) in the message."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be a string: quote it in YAML (e.g. '012345678901')")
    return value


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_cidr)]


class Strict(BaseModel):
    """Base of every settings model: unknown keys refused, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- models -----------------------------------------------------------------------------------


class FlowLogs(Strict):
    retention_days: int = Field(description="CloudWatch Logs retention of the VPC flow logs.")
    traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        return _check_retention(days)


def _check_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise ValueError(f"is not a retention CloudWatch Logs accepts; use one of {allowed}")
    return days


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
    def _subnets_fit(self) -> Network:
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


# Task sizes Fargate accepts: CPU units -> memory (MiB) choices.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
DATABASE_PORTS = {"aurora-postgresql": 5432, "aurora-mysql": 3306}
SERVICE_NAME = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
ENVIRONMENT_NAME = r"^[a-z][a-z0-9]{0,11}$"
SECRET_REFERENCE = r"^(secretsmanager:[A-Za-z0-9/_+=.@-]{1,512}(#[A-Za-z0-9_.-]+)?|ssm:/[A-Za-z0-9/_.-]{1,1011})$"
# A secret's complete name: the name, a hyphen and the 6 random characters Secrets Manager appends
# (the end of its ARN). ECS takes the full ARN of a secret (ECS API reference, Secret.valueFrom).
COMPLETE_SECRET_NAME = r"^secretsmanager:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}(#.*)?$"
ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
# What a service with database_access receives: host, port and name as variables, user and
# password from the database's secret.
DATABASE_VARIABLES = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USERNAME", "DB_PASSWORD")


class Capacity(Strict):
    """How a service's tasks are spread over FARGATE and FARGATE_SPOT."""

    fargate_base: int = Field(ge=0, le=100000, description="Tasks that always run on FARGATE (on-demand).")
    fargate_weight: int = Field(ge=0, le=1000, description="Share of tasks beyond the base placed on FARGATE.")
    spot_weight: int = Field(ge=0, le=1000, description="Share of tasks beyond the base placed on FARGATE_SPOT.")

    @model_validator(mode="after")
    def _some_weight(self) -> Capacity:
        if self.fargate_weight == self.spot_weight == 0:
            raise FieldValueError(("spot_weight",), "fargate_weight and spot_weight cannot both be 0", 0)
        return self


class Routing(Strict):
    """Which requests the ALB sends to a service: path patterns and/or host headers."""

    paths: list[str] = Field(default_factory=list, max_length=5)
    hosts: list[str] = Field(default_factory=list, max_length=5)
    priority: int | None = Field(
        default=None, ge=1, le=50000, description="Listener rule priority; derived from the rule when not set."
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        for index, path in enumerate(paths):
            if not re.fullmatch(r"/[A-Za-z0-9_\-.$/~\"'@:+*?&=%]{0,127}", path):
                raise FieldValueError(
                    (index,), "a path pattern starts with '/' and has at most 128 URL characters, * or ?", path
                )
        return paths

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for index, host in enumerate(hosts):
            if not re.fullmatch(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", host):
                raise FieldValueError((index,), "is not a host name such as 'api.example.com' or '*.example.com'", host)
        return hosts

    @model_validator(mode="after")
    def _something(self) -> Routing:
        if not self.paths and not self.hosts:
            raise ValueError("give at least one path pattern or host header")
        limit = quotas.CONDITION_VALUES_PER_RULE
        if len(self.paths) + len(self.hosts) > limit.default:
            raise ValueError(
                f"{len(self.paths)} paths and {len(self.hosts)} hosts make one listener rule of "
                f"{len(self.paths) + len(self.hosts)} condition values; AWS quota '{limit.name}' is "
                f"{limit.default} ({limit.source})"
            )
        wildcards = sum(value.count("*") + value.count("?") for value in [*self.paths, *self.hosts])
        if wildcards > quotas.CONDITION_WILDCARDS_PER_RULE.default:
            limit = quotas.CONDITION_WILDCARDS_PER_RULE
            raise ValueError(
                f"{wildcards} wildcards (* or ?) in one listener rule; AWS quota '{limit.name}' is "
                f"{limit.default} ({limit.source})"
            )
        return self


class HealthCheck(Strict):
    path: str = Field(default="/health", pattern=r"^/[A-Za-z0-9_\-.~/?=&%]{0,1023}$")
    healthy_codes: str = Field(
        default="200-399",
        pattern=r"^[0-9]{3}(-[0-9]{3})?(,[0-9]{3}(-[0-9]{3})?)*$",
        description="HTTP codes of a healthy target: codes (200,202) or ranges (200-299) within 200-499.",
    )

    @field_validator("healthy_codes")
    @classmethod
    def _alb_codes(cls, codes: str) -> str:
        """An Application Load Balancer takes HTTP codes 200 to 499, single or as ranges (AWS::
        ElasticLoadBalancingV2::TargetGroup Matcher, HttpCode: "For Application Load Balancers, you
        can specify values between 200 and 499"; ELB API reference, Matcher)."""
        for part in codes.split(","):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if not ALB_HEALTHY_CODES[0] <= first <= last <= ALB_HEALTHY_CODES[1]:
                raise ValueError(
                    f"{part} is outside what a load balancer accepts: codes and ascending ranges within "
                    f"{ALB_HEALTHY_CODES[0]}-{ALB_HEALTHY_CODES[1]}"
                )
        return codes


class Autoscaling(Strict):
    min: int = Field(ge=0, le=1000)
    max: int = Field(ge=1, le=1000)
    cpu_target: int = Field(default=60, ge=10, le=90, description="Average CPU % the service scales to hold.")
    requests_per_target: int | None = Field(
        default=1000, ge=1, le=1000000, description="ALB requests per task per minute to hold; null turns it off."
    )

    @model_validator(mode="after")
    def _order(self) -> Autoscaling:
        if self.min > self.max:
            raise FieldValueError(("min",), f"is above max ({self.max})", self.min)
        return self


class Service(Strict):
    """One containerised service: one image, one ECS service, one stack."""

    port: int = Field(ge=1, le=65535, description="The container port the ALB sends traffic to.")
    cpu: int = Field(description="Fargate CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384.")
    memory: int = Field(description="MiB; must be a size Fargate accepts for the CPU.")
    desired_count: int = Field(ge=0, le=1000)
    autoscaling: Autoscaling
    routing: Routing
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    environment: dict[str, str] = Field(default_factory=dict, description="Plain, non-secret variables.")
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Variable -> 'secretsmanager:NAME-SUFFIX[#json-key]' (the secret's complete name, as its ARN "
        "ends, with the 6 characters Secrets Manager appended) or 'ssm:/NAME': references, never values.",
    )
    capacity: Capacity | None = Field(default=None, description="Overrides platform.capacity for this service.")
    architecture: Literal["X86_64", "ARM64"] = "X86_64"
    user: str | None = Field(
        default="1000",
        pattern=r"^[0-9]{1,10}(:[0-9]{1,10})?$",
        description="uid[:gid] to run as; null keeps the image's",
    )
    read_only_root_filesystem: bool = True
    exec: bool = Field(
        default=False,
        description="ECS Exec (a shell into running tasks); off unless asked. Needs read_only_root_filesystem: "
        "false (the ECS Exec agent writes to the container's filesystem).",
    )
    database_access: bool = Field(default=False, description="Whether the service may connect to the database.")
    deployment_strategy: Literal["blue-green", "rolling"] | None = Field(
        default=None, description="Overrides deployment.strategy for this service."
    )
    assets: Literal["none", "read", "write"] = Field(
        default="none", description="What the service may do with the static-assets bucket."
    )
    pre_release: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="A one-off command (the container's command, exec form: ['python', 'manage.py', 'migrate']) "
        "run as a task of the new revision before any traffic moves to it; a non-zero exit rolls the release "
        "back. Needs deployment strategy blue-green with controller ecs (an ECS lifecycle hook).",
    )

    @model_validator(mode="after")
    def _fargate_size(self) -> Service:
        if self.cpu not in FARGATE_SIZES:
            raise FieldValueError(
                ("cpu",), f"is not a Fargate CPU size; use one of {', '.join(map(str, FARGATE_SIZES))}"
            )
        if self.memory not in FARGATE_SIZES[self.cpu]:
            sizes = FARGATE_SIZES[self.cpu]
            raise FieldValueError(
                ("memory",),
                f"is not a size Fargate accepts with cpu {self.cpu}; use {sizes[0]} to {sizes[-1]} "
                f"in steps of {sizes[1] - sizes[0]}",
            )
        return self

    @model_validator(mode="after")
    def _exec_needs_writable_root(self) -> Service:
        # ECS Developer Guide, ECS Exec considerations: the SSM agent ECS Exec runs in the container
        # writes to its filesystem; the gate's rule E9004 checks the same on the template.
        if self.exec and self.read_only_root_filesystem:
            raise FieldValueError(
                ("exec",),
                "needs read_only_root_filesystem: false (the ECS Exec agent cannot run on a read-only root "
                "filesystem); set it for this service, or turn exec off",
                self.exec,
            )
        return self

    @model_validator(mode="after")
    def _count_in_range(self) -> Service:
        if not self.autoscaling.min <= self.desired_count <= self.autoscaling.max:
            raise FieldValueError(
                ("desired_count",),
                f"must lie between autoscaling.min ({self.autoscaling.min}) and max ({self.autoscaling.max})",
            )
        return self

    @field_validator("environment")
    @classmethod
    def _plain_names(cls, variables: dict[str, str]) -> dict[str, str]:
        for key, value in variables.items():
            if not re.fullmatch(ENV_VAR_NAME, key):
                raise FieldValueError((key,), "is not a valid environment variable name")
            kinds = credential_kinds(key, str(value))
            if kinds:
                raise FieldValueError(
                    (key,),
                    f"looks like a credential ({', '.join(kinds)}, by detect-secrets), and a plain variable is "
                    "written in clear into the templates and release files: store it in Secrets Manager or SSM "
                    "and give it under secrets: instead ('secretsmanager:NAME-SUFFIX[#json-key]' or "
                    "'ssm:/PARAMETER/NAME')",
                    "(hidden)",
                )
        return variables

    @field_validator("secrets")
    @classmethod
    def _references_only(cls, secrets: dict[str, str]) -> dict[str, str]:
        for key, value in secrets.items():
            if not re.fullmatch(ENV_VAR_NAME, key):
                raise FieldValueError((key,), "is not a valid environment variable name", value)
            if not re.fullmatch(SECRET_REFERENCE, value):
                raise FieldValueError(
                    (key,),
                    "looks like a value, not a reference: give 'secretsmanager:NAME' (optionally '#json-key') "
                    "or 'ssm:/PARAMETER/NAME' and keep the value in AWS",
                    "(hidden)",
                )
            if value.startswith("secretsmanager:") and not re.fullmatch(COMPLETE_SECRET_NAME, value):
                raise FieldValueError(
                    (key,),
                    "names the secret without the 6 characters Secrets Manager appends to its name: give the "
                    "complete name as its ARN ends ('secretsmanager:shop/api/payment-AbC123#key', see "
                    "'aws secretsmanager describe-secret'); ECS takes a secret's full ARN",
                    value,
                )
        return secrets

    @model_validator(mode="after")
    def _no_overlap(self) -> Service:
        both = sorted(set(self.environment) & set(self.secrets))
        if both:
            raise FieldValueError(("secrets", both[0]), "is also set in environment; keep one")
        if self.database_access:
            for field in ("environment", "secrets"):
                taken = sorted(set(getattr(self, field)) & set(DATABASE_VARIABLES))
                if taken:
                    raise FieldValueError(
                        (field, taken[0]),
                        f"is set from the database when database_access is true ({', '.join(DATABASE_VARIABLES)}); "
                        "use another name",
                    )
        return self


class Firewalls(Strict):
    """Which WAF web ACLs the environment has. Each costs a fixed amount a month (AWS WAF pricing:
    per web ACL and per rule, in every region) plus its requests."""

    load_balancer: bool = Field(
        default=True,
        description="A REGIONAL web ACL on the load balancer. May be left out only with ingress 'cloudfront' and "
        "the CloudFront web ACL on: then every request has passed CloudFront's.",
    )
    cloudfront: bool = Field(
        default=True,
        description="A CLOUDFRONT web ACL on the distribution (in us-east-1, as AWS requires). Without it, "
        "requests through CloudFront are filtered by the load balancer's web ACL only, and the assets not at all.",
    )


class Platform(Strict):
    """The shared front of the environment: ALB, WAF, cluster defaults."""

    certificate_arn: str = Field(
        description="ACM certificate for the ALB's HTTPS listener, in the environment's account and region."
    )
    ingress: Literal["internet", "cloudfront"] = Field(
        description="Who may reach the ALB: 'cloudfront' (the default) only CloudFront, through its origin-facing "
        "managed prefix list, HTTPS only, and the regional web ACL counts the viewer's address (X-Forwarded-For); "
        "'internet' anyone, on HTTPS and the HTTP redirect.",
    )
    cloudfront_prefix_list_id: str | None = Field(
        default=None,
        pattern=r"^pl-[0-9a-f]{8,17}$",
        description="ID of com.amazonaws.global.cloudfront.origin-facing in this region (ingress: cloudfront). "
        "Optional: without it the security stack looks the list up by name when it deploys.",
    )
    http_redirect: bool = Field(
        default=True,
        description="Listen on port 80 only to redirect to HTTPS (ingress: internet). Behind CloudFront "
        "(ingress: cloudfront) the load balancer has no port 80: CloudFront redirects viewers itself and reaches "
        "the origin over HTTPS only.",
    )
    deletion_protection: bool
    waf_rate_limit: int = Field(ge=10, le=2_000_000_000, description="Requests per IP per 5 minutes before WAF blocks.")
    waf: Firewalls = Field(default_factory=Firewalls, description="Which WAF web ACLs to create.")
    container_insights: Literal["enabled", "enhanced", "disabled"] = Field(
        default="enabled",
        description="CloudWatch Container Insights on the cluster (AWS::ECS::Cluster ClusterSettings "
        "containerInsights): 'enabled' per-cluster and per-service metrics, 'enhanced' also per task and "
        "container, 'disabled' none (ECS's free service CPU and memory metrics remain). Billed as custom metrics.",
    )
    log_retention_days: int = Field(description="Retention of the services' and WAF's log groups.")
    access_log_expiration_days: int = Field(ge=1, le=3650, description="Days ALB access logs are kept in S3.")
    capacity: Capacity

    _retention = field_validator("log_retention_days")(lambda cls, days: _check_retention(days))

    @model_validator(mode="after")
    def _prefix_list(self) -> Platform:
        if self.ingress == "internet" and self.cloudfront_prefix_list_id is not None:
            raise FieldValueError(
                ("cloudfront_prefix_list_id",), "is only used when ingress is 'cloudfront'; remove it"
            )
        if not self.waf.load_balancer and (self.ingress != "cloudfront" or not self.waf.cloudfront):
            raise FieldValueError(
                ("waf", "load_balancer"),
                "may be false only when every request passes CloudFront's web ACL first: set ingress: cloudfront "
                "and keep waf.cloudfront true, or keep the load balancer's web ACL",
                False,
            )
        return self

    @property
    def listens_http(self) -> bool:
        """Whether the load balancer has the port-80 redirect listener: only when the internet reaches
        it. CloudFront talks to the origin over HTTPS only (the API origin's ``https-only`` policy)."""
        return self.http_redirect and self.ingress == "internet"


def certificate_id(arn: str) -> str:
    """The id at the end of an ACM certificate ARN."""
    return arn.rsplit("/", 1)[-1]


class Registry(Strict):
    """Where the container images live: one ECR repository per service, for the whole project."""

    account_id: Annotated[str, BeforeValidator(_quoted_string)] = Field(pattern=r"^[0-9]{12}$")
    region: str
    keep_release_images: int = Field(ge=1, le=1000, description="Tagged images kept per repository.")
    untagged_expire_days: int = Field(ge=1, le=365, description="Days before an untagged image is deleted.")

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        return _check_region(region)


RESERVED_DB_USERS = ("admin", "administrator", "postgres", "root", "rdsadmin", "master", "mysql", "sa", "user")


class ServerlessCapacity(Strict):
    mode: Literal["serverless"]
    min_acu: float = Field(
        ge=0,
        le=256,
        description="Aurora capacity units at the least; 0 lets idle instances pause (auto-pause: needs Aurora "
        "PostgreSQL 13.15/14.12/15.7/16.3+ or MySQL 3.08.0+).",
    )
    max_acu: float = Field(
        ge=1,
        le=256,
        description="Aurora capacity units at the most: up to 256 on recent Aurora versions, 128 on older ones "
        "(RDS API, ServerlessV2ScalingConfiguration.MaxCapacity).",
    )
    readers: int = Field(default=0, ge=0, le=15, description="Reader instances besides the writer.")
    seconds_until_auto_pause: int | None = Field(
        default=None,
        ge=300,
        le=86400,
        description="With min_acu 0: idle seconds before an instance pauses (AWS: 300 to 86400; AWS's default "
        "when unset). Only with min_acu 0.",
    )

    @model_validator(mode="after")
    def _order(self) -> ServerlessCapacity:
        problems = []
        for field in ("min_acu", "max_acu"):
            if (getattr(self, field) * 2) % 1:
                problems.append(FieldValueError((field,), "must be a multiple of 0.5", getattr(self, field)))
        if self.min_acu > self.max_acu:
            problems.append(FieldValueError(("min_acu",), f"is above max_acu ({self.max_acu})", self.min_acu))
        if self.seconds_until_auto_pause is not None and self.min_acu != 0:
            problems.append(
                FieldValueError(
                    ("seconds_until_auto_pause",),
                    f"applies only with min_acu 0 (auto-pause); min_acu is {self.min_acu}",
                    self.seconds_until_auto_pause,
                )
            )
        if problems:
            raise ManyFieldsError(problems)
        return self


class ProvisionedCapacity(Strict):
    mode: Literal["provisioned"]
    instance_class: str = Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$", description="Such as db.r7g.large.")
    readers: int = Field(ge=0, le=15, description="Reader instances besides the writer, spread over the zones.")


class DnsFailover(Strict):
    """Where the API's origin name lives in Route 53, and how its primary is checked."""

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
        description="Route 53 failover records for the primary's edge.origin_domain (the API's origin name): "
        "the primary's load balancer while its health check passes, this environment's otherwise.",
    )


class Standby(Strict):
    """Which environment stands by for this one: set by the generator, never in a file."""

    environment: str
    region: str
    dns: DnsFailover | None = None


MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock_minutes(text: str) -> int:
    """``hh:mm`` (24 hours) as minutes after midnight; ValueError past 23:59."""
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text} is not a time of day (hh24:mi)")
    return hours * 60 + minutes


def _week_minutes(text: str) -> int:
    """``ddd:hh:mm`` as minutes after Monday midnight."""
    day, clock = text.split(":", 1)
    return WEEKDAYS.index(day) * MINUTES_PER_DAY + _clock_minutes(clock)


class Database(Strict):
    engine: Literal["aurora-postgresql", "aurora-mysql"]
    engine_version: str
    name: str = Field(default="app", pattern=r"^[a-z][a-z0-9_]{0,62}$", description="The first database's name.")
    master_username: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,15}$", description="Administrator user name (not a well-known default)."
    )
    capacity: ServerlessCapacity | ProvisionedCapacity = Field(discriminator="mode")
    password: Literal["managed", "generated"] = Field(
        default="managed",
        description="'managed': RDS generates and keeps it (not allowed in a global database); 'generated': "
        "a Secrets Manager secret the stack generates, replicated to the DR region when one protects this.",
    )
    backup_retention_days: int = Field(ge=1, le=35)
    backup_plan_retention_days: int = Field(
        default=35,
        ge=7,
        le=36500,
        description="Days AWS Backup keeps each daily backup of the cluster (and its copy in the DR region's vault, "
        "when a DR environment protects this one); in production at least the vault lock's minimum, 7.",
    )
    deletion_protection: bool
    performance_insights_retention_days: int = Field(
        default=7, description="7, or a multiple of 31 up to 731 (paid beyond 7)."
    )
    monitoring_interval: Literal[1, 5, 10, 15, 30, 60] = Field(
        default=60, description="Seconds between enhanced monitoring samples."
    )
    log_retention_days: int = Field(default=30, description="Retention of the database's exported logs.")
    preferred_backup_window: str = Field(
        default="02:00-03:00",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Daily, UTC, hh24:mi-hh24:mi, at least 30 minutes, apart from the maintenance window.",
    )
    preferred_maintenance_window: str = Field(
        default="sun:03:30-sun:04:30",
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]$",
        description="Weekly, UTC, ddd:hh24:mi-ddd:hh24:mi (mon..sun), at least 30 minutes, apart from the "
        "backup window.",
    )

    _retention = field_validator("log_retention_days")(lambda cls, days: _check_retention(days))

    @field_validator("master_username")
    @classmethod
    def _not_default(cls, user: str) -> str:
        if user in RESERVED_DB_USERS:
            raise ValueError(
                f"is a well-known or reserved name; pick one of your own (not {', '.join(RESERVED_DB_USERS)})"
            )
        return user

    # RDS, CreateDBCluster: each window "must be at least 30 minutes" and the two "must not
    # conflict" (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html).
    # troposphere refuses (with a traceback) a window whose end is less than 30 minutes from its
    # start either way, so that is refused here too, with the field named.
    @field_validator("preferred_backup_window")
    @classmethod
    def _backup_window(cls, window: str) -> str:
        start, end = (_clock_minutes(part) for part in window.split("-"))
        if (end - start) % MINUTES_PER_DAY < 30 or abs(end - start) < 30:
            raise ValueError("must last at least 30 minutes (RDS), its end at least 30 minutes from its start")
        return window

    @field_validator("preferred_maintenance_window")
    @classmethod
    def _maintenance_window(cls, window: str) -> str:
        start, end = (_week_minutes(part) for part in window.split("-"))
        if (end - start) % MINUTES_PER_WEEK < 30 or abs(end - start) < 30:
            raise ValueError("must last at least 30 minutes (RDS), its end at least 30 minutes from its start")
        return window

    @model_validator(mode="after")
    def _windows_apart(self) -> Database:
        start, end = (_clock_minutes(part) for part in self.preferred_backup_window.split("-"))
        backup = (end - start) % MINUTES_PER_DAY
        m_start, m_end = (_week_minutes(part) for part in self.preferred_maintenance_window.split("-"))
        maintenance = (m_end - m_start) % MINUTES_PER_WEEK
        for day in range(7):
            b_start = day * MINUTES_PER_DAY + start
            if (b_start - m_start) % MINUTES_PER_WEEK < maintenance or (m_start - b_start) % MINUTES_PER_WEEK < backup:
                raise FieldValueError(
                    ("preferred_backup_window",),
                    f"overlaps preferred_maintenance_window ({self.preferred_maintenance_window}); RDS requires "
                    "the two not to conflict",
                    self.preferred_backup_window,
                )
        return self

    @field_validator("performance_insights_retention_days")
    @classmethod
    def _pi_retention(cls, days: int) -> int:
        if days != 7 and not (days % 31 == 0 and 31 <= days <= 731) and days != 731:
            raise ValueError("Performance Insights keeps 7 days, or a multiple of 31 days up to 731")
        return days

    @model_validator(mode="after")
    def _known_version(self) -> Database:
        known = aurora_versions(self.engine)
        if self.engine_version not in known:
            raise FieldValueError(
                ("engine_version",),
                f"is not a {self.engine} version CloudFormation accepts for a new cluster (unknown or "
                f"deprecated); use one of {', '.join(known)}",
                self.engine_version,
            )
        capacity = self.capacity
        if isinstance(capacity, ServerlessCapacity) and capacity.min_acu == 0:
            # One statement of the contract, shared with the gate's rule E9007 (rules/_zero_acu.py:
            # the rule module itself imports cfn-lint, 0.75 s that settings never need).
            from infra_templates.rules._zero_acu import supports_zero_acu  # noqa: PLC0415

            if not supports_zero_acu(self.engine, self.engine_version):
                raise FieldValueError(
                    ("capacity", "min_acu"),
                    f"0 (auto-pause) needs {self.engine} 13.15, 14.12, 15.7, 16.3 or later (PostgreSQL), "
                    f"3.08.0 or later (MySQL); {self.engine_version} takes 0.5 at the least",
                    0,
                )
        return self

    @property
    def port(self) -> int:
        return DATABASE_PORTS[self.engine]

    @property
    def major(self) -> str:
        """The parameter group family's version part: '16' or '8.0'."""
        if self.engine == "aurora-mysql":
            return self.engine_version.split(".mysql_aurora")[0]
        return self.engine_version.split(".")[0]

    @property
    def parameter_family(self) -> str:
        return f"{self.engine}{self.major}"

    @property
    def log_types(self) -> list[str]:
        """Every log type the engine can export to CloudWatch Logs."""
        return ["postgresql"] if self.engine == "aurora-postgresql" else ["audit", "error", "general", "slowquery"]


HOST_NAME = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
CLOUDFRONT_REGION = "us-east-1"  # CloudFront's certificates and web ACLs live here, whatever the environment's


class Edge(Strict):
    """Static assets in S3 and the API behind one CloudFront distribution."""

    origin_domain: str = Field(
        pattern=HOST_NAME.replace("(\\*\\.)?", ""),
        description="Host name CloudFront connects to for the API: a DNS name of the ALB that "
        "platform.certificate_arn covers (CloudFront checks the ALB's certificate against it).",
    )
    api_path: str = Field(default="/api/*", pattern=r"^/[A-Za-z0-9_\-.~/]*\*?$")
    aliases: list[str] = Field(default_factory=list, max_length=10, description="Viewer host names.")
    certificate_arn: str | None = Field(
        default=None, description="ACM certificate for the aliases; CloudFront needs it in us-east-1."
    )
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_100"
    default_root_object: str = Field(default="index.html", pattern=r"^[A-Za-z0-9_\-.]{1,255}$")
    noncurrent_asset_days: int = Field(default=30, ge=1, le=3650, description="Days old versions of assets are kept.")

    @field_validator("aliases")
    @classmethod
    def _hosts(cls, aliases: list[str]) -> list[str]:
        for index, alias in enumerate(aliases):
            if not re.fullmatch(HOST_NAME, alias):
                raise FieldValueError((index,), "is not a host name such as 'www.example.com'", alias)
            if alias in aliases[:index]:
                raise FieldValueError((index,), "is listed twice", alias)
        return aliases


TrafficShift = Literal[
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
]
Strategy = Literal["blue-green", "rolling"]
ECS_MAX_BAKE_MINUTES = 1440


class Deployment(Strict):
    """How this environment's services take a new release (a service may override the strategy)."""

    strategy: Strategy = Field(
        description="blue-green: traffic shifts between two target groups (by ECS or CodeDeploy: controller); "
        "rolling: ECS replaces tasks in place, with the circuit breaker rolling back."
    )
    traffic_shift: TrafficShift = Field(
        default="CodeDeployDefault.ECSCanary10Percent5Minutes",
        description="The traffic shift of a blue-green release: CodeDeploy's configuration name; with controller "
        "ecs, AllAtOnce is BLUE_GREEN, Canary/Linear the ECS CANARY/LINEAR strategy with the same percent and minutes.",
    )
    termination_wait_minutes: int = Field(
        default=5,
        ge=0,
        le=2880,
        description="Minutes the old (blue) tasks keep running after the shift (the ECS bake time).",
    )
    test_listener_port: int = Field(
        default=8443, ge=1024, le=65535, description="ALB port of the test listener, reachable from the VPC only."
    )
    controller: Literal["ecs", "codedeploy"] = Field(
        default="ecs",
        description="Who shifts a blue-green service's traffic. ecs: ECS itself (DeploymentConfiguration.Strategy "
        "BLUE_GREEN, CANARY or LINEAR from traffic_shift), the stack is the service's one owner and every change is "
        "a stack update; codedeploy: a CodeDeploy deployment group, which then owns the service's task definition, "
        "load balancers, network configuration and capacity mix.",
    )

    @model_validator(mode="after")
    def _bake_time(self) -> Deployment:
        # ECS API reference, DeploymentConfiguration.bakeTimeInMinutes: 0 to 1440 minutes.
        if self.controller == "ecs" and self.termination_wait_minutes > ECS_MAX_BAKE_MINUTES:
            raise FieldValueError(
                ("termination_wait_minutes",),
                f"is the ECS bake time with controller ecs: at most {ECS_MAX_BAKE_MINUTES} minutes",
                self.termination_wait_minutes,
            )
        return self

    def ecs_strategy(self) -> tuple[str, float, int]:
        """``(Strategy, percent, step bake minutes)`` for the ECS controller, from ``traffic_shift``:
        AllAtOnce is BLUE_GREEN (percent and minutes 0), CanaryXPercentYMinutes is CANARY (X %, Y
        minutes), LinearXPercentEveryYMinutes is LINEAR. ECS API reference, CanaryConfiguration and
        LinearConfiguration."""
        shape = r"CodeDeployDefault\.ECS(Canary|Linear)(\d+)Percent(?:Every)?(\d+)Minutes?"
        match = re.fullmatch(shape, self.traffic_shift)
        if match is None:
            return ("BLUE_GREEN", 0.0, 0)
        return (match.group(1).upper(), float(match.group(2)), int(match.group(3)))


class Connection(Strict):
    """A CodeStar connection (GitHub, GitLab, Bitbucket), created and authorised once in the console."""

    provider: Literal["GitHub", "GitHubEnterpriseServer", "GitLab", "Bitbucket"]
    arn: str = Field(
        pattern=r"^arn:aws(-[a-z]+)*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/[0-9a-f-]{36}$",
        description="The connection's ARN, in the registry's account.",
    )
    repositories: dict[str, str] = Field(
        description="Per service, the repository id the connection reads: owner/name.",
    )
    infrastructure: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$",
        description="The repository id (owner/name) of these templates' own repository: the source of the "
        "infrastructure pipeline.",
    )

    @field_validator("repositories")
    @classmethod
    def _repository_ids(cls, repositories: dict[str, str]) -> dict[str, str]:
        for service, repository in repositories.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", repository):
                raise FieldValueError((service,), "is not a repository id: owner/name", repository)
        return repositories


class Delivery(Strict):
    """The release pipelines, one per service, in the registry's account and region."""

    stages: list[str] = Field(min_length=1, description="Environments a release goes through, in order.")
    approval_before: list[str] = Field(
        default_factory=list, description="Stages that wait for a manual approval (notified by SNS) first."
    )
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]{1,100}$", description="The branch released.")
    connection: Connection | None = Field(
        default=None,
        description="Source from GitHub/GitLab/Bitbucket; without it each service gets a CodeCommit repository.",
    )
    build_image: str = Field(default="aws/codebuild/amazonlinux-x86_64-standard:5.0", pattern=r"^[a-z0-9./:_-]+$")
    build_compute: Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"] = (
        "BUILD_GENERAL1_SMALL"
    )
    test_command: str = Field(
        default="make test", min_length=1, description="What the build runs before building the image."
    )
    artifact_expiration_days: int = Field(default=30, ge=1, le=3650, description="Days pipeline artifacts are kept.")
    log_retention_days: int = Field(default=90, description="Retention of the builds' log groups.")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        return _check_retention(days)

    @model_validator(mode="after")
    def _stages(self) -> Delivery:
        problems = []
        seen: set[str] = set()
        for index, stage in enumerate(self.stages):
            if not re.fullmatch(ENVIRONMENT_NAME, stage):
                plain = re.sub(r"[^a-z0-9]", "", stage.lower())
                problems.append(
                    FieldValueError(
                        ("stages", index),
                        "is not an environment name (the name of its file without .yaml: lower-case letters and "
                        "digits, starting with a letter)" + (f"; did you mean {plain!r}?" if plain else ""),
                        stage,
                    )
                )
            if stage in seen:
                problems.append(
                    FieldValueError(("stages", index), "is listed twice; a release visits a stage once", stage)
                )
            seen.add(stage)
        for index, stage in enumerate(self.approval_before):
            if stage not in seen:
                problems.append(
                    FieldValueError(("approval_before", index), f"is not one of delivery.stages {self.stages}", stage)
                )
        if problems:
            raise ManyFieldsError(problems)
        return self


EMAIL_ADDRESS = r"^[A-Za-z0-9._%+-]{1,64}@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


def _check_emails(addresses: list[str]) -> list[str]:
    for index, address in enumerate(addresses):
        if not re.fullmatch(EMAIL_ADDRESS, address):
            raise FieldValueError((index,), "is not an e-mail address such as 'ops@example.com'", address)
    if len(set(addresses)) != len(addresses):
        raise ValueError("lists an address twice")
    return addresses


class SnsEmail(Strict):
    """Path 1: the alarm topic's own e-mail subscriptions (plain JSON-ish SNS mails)."""

    enabled: bool = Field(default=False, description="Subscribe the recipients to the alarm topic by e-mail.")
    recipients: list[str] = Field(default_factory=list, max_length=20, description="E-mail addresses.")

    _emails = field_validator("recipients")(lambda cls, addresses: _check_emails(addresses))

    @model_validator(mode="after")
    def _someone(self) -> SnsEmail:
        if self.enabled and not self.recipients:
            raise FieldValueError(("recipients",), "is empty while enabled is true: name who gets the alarms", [])
        return self


class SesEmail(Strict):
    """Path 2: a Lambda function turns alarm state changes into readable mails sent through SES."""

    enabled: bool = Field(default=False, description="Send formatted alarm mails through SES.")
    sender: str | None = Field(
        default=None, description="Verified SES e-mail identity the mails come from (created by the stack)."
    )
    recipients: list[str] = Field(default_factory=list, max_length=20, description="E-mail addresses.")

    _emails = field_validator("recipients")(lambda cls, addresses: _check_emails(addresses))

    @field_validator("sender")
    @classmethod
    def _sender(cls, sender: str | None) -> str | None:
        if sender is not None and not re.fullmatch(EMAIL_ADDRESS, sender):
            raise ValueError("is not an e-mail address such as 'alarms@example.com'")
        return sender

    @model_validator(mode="after")
    def _complete(self) -> SesEmail:
        if not self.enabled:
            return self
        problems = []
        if self.sender is None:
            problems.append(
                FieldValueError(("sender",), "is required while enabled is true: the SES identity mails come from")
            )
        if not self.recipients:
            problems.append(
                FieldValueError(("recipients",), "is empty while enabled is true: name who gets the mails", [])
            )
        if problems:
            raise ManyFieldsError(problems)
        return self


class Thresholds(Strict):
    """When an alarm fires. Counts are per period; the period and evaluation periods apply to all."""

    period_seconds: Literal[60, 300, 900, 3600] = Field(default=60, description="Length of one evaluation period.")
    evaluation_periods: int = Field(default=5, ge=1, le=60, description="Periods looked at for a decision.")
    datapoints_to_alarm: int = Field(default=3, ge=1, le=60, description="Breaching periods among them that fire.")
    alb_5xx_count: int = Field(default=10, ge=1, description="ELB or target 5xx responses per period.")
    alb_rejected_connections: int = Field(default=1, ge=1, description="Connections refused at max connections.")
    alb_p95_response_seconds: float = Field(default=1.5, gt=0, le=60, description="p95 target response time.")
    alb_p99_response_seconds: float = Field(
        default=5, gt=0, le=60, description="p99 target response time past which the paging alarm fires."
    )
    service_cpu_percent: int = Field(default=85, ge=1, le=100)
    service_memory_percent: int = Field(default=85, ge=1, le=100)
    service_5xx_count: int = Field(default=5, ge=1, description="A service's target 5xx per period (paging part).")
    database_cpu_percent: int = Field(default=80, ge=1, le=100)
    database_freeable_memory_mib: int = Field(default=256, ge=1, description="Alarm below this much free memory.")
    database_connections: int = Field(default=400, ge=1, description="Alarm above this many connections.")
    database_replica_lag_ms: int = Field(default=1000, ge=1, description="AuroraReplicaLag, milliseconds.")
    database_acu_percent: int = Field(default=90, ge=1, le=100, description="ACUUtilization (Serverless v2 only).")
    nat_dropped_packets: int = Field(default=100, ge=1, description="PacketsDropCount per period.")
    cloudfront_5xx_percent: float = Field(default=5, gt=0, le=100, description="CloudFront 5xxErrorRate, %.")

    @model_validator(mode="after")
    def _datapoints(self) -> Thresholds:
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise FieldValueError(("datapoints_to_alarm",), f"is above evaluation_periods ({self.evaluation_periods})")
        return self


class Monitoring(Strict):
    """Alarms, the dashboard and the two notification paths (SNS e-mail, SES mail)."""

    sns_email: SnsEmail = Field(default_factory=SnsEmail)
    ses_email: SesEmail = Field(default_factory=SesEmail)
    alarms: Thresholds = Field(default_factory=Thresholds)
    log_retention_days: int = Field(default=30, description="Retention of the alarm mailer's log group.")

    _retention = field_validator("log_retention_days")(lambda cls, days: _check_retention(days))


def _check_region(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"is not an AWS region{did_you_mean(region, REGIONS)}; use one of {', '.join(REGIONS)}")
    return region


def did_you_mean(given: object, valid: Sequence[object]) -> str:
    """``"; did you mean 'x'?"`` for the valid choice closest to ``given`` (difflib, ratio 0.6 or
    more, ignoring case and look-alike characters: ``eu-w\u0435st-1`` suggests ``eu-west-1``), else ``""``."""
    text = str(given)
    folded = {_fold(str(v)): v for v in valid}
    close = difflib.get_close_matches(_fold(text), list(folded), n=1, cutoff=0.6)
    if not close or str(folded[close[0]]) == text:
        return ""
    return f"; did you mean {folded[close[0]]!r}?"


def _fold(text: str) -> str:
    """Lower case, with each character replaced by its ASCII look-alike where NFKD gives one, and
    Cyrillic/Greek letters that look Latin mapped to them (so a homoglyph is close to the real name)."""
    ascii_text = unicodedata.normalize("NFKD", text).translate(_HOMOGLYPHS)
    return ascii_text.lower()


_HOMOGLYPHS = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0410\u0412\u0415\u041a\u041c\u041d"
    "\u041e\u0420\u0421\u0422\u0425\u03bf\u039f\u0391\u0392\u0395",
    "aeopcyxijsABEKMHOPCTXoOABE",
)


class Environment(Strict):
    """One environment: what ``environments/defaults.yaml`` + ``environments/<name>.yaml`` say."""

    name: str = Field(
        pattern=ENVIRONMENT_NAME,
        description="The file name without .yaml: lower-case letters and digits, starting with a letter, "
        "at most 12 (it becomes part of every stack name)",
    )
    project: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,19}$",
        description="Lower-case letters, digits and hyphens, starting with a letter, at most 20.",
    )
    account_id: Annotated[str, BeforeValidator(_quoted_string)] = Field(pattern=r"^[0-9]{12}$")
    region: str
    production: bool = Field(description="Production-grade safety nets (deletion protection...).")
    tags: dict[str, str] = Field(default_factory=dict)
    network: Network
    platform: Platform
    registry: Registry
    database: Database
    edge: Edge
    dr: DisasterRecovery | None = Field(default=None, description="Only in a DR environment's own file.")
    standby: Standby | None = Field(default=None, description="Set from the DR environment that protects this one.")
    services: dict[str, Service] = Field(description="Services by name (DNS-safe, unique).")
    delivery: Delivery
    deployment: Deployment
    monitoring: Monitoring = Field(default_factory=Monitoring)

    @field_validator("project")
    @classmethod
    def _no_double_hyphen(cls, project: str) -> str:
        if project.endswith("-") or "--" in project:
            raise ValueError("must not end with a hyphen or contain '--' (it is joined to names with '-')")
        return project

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        return _check_region(region)

    @field_validator("services", mode="before")
    @classmethod
    def _service_names(cls, services: Any) -> Any:
        for name in services if isinstance(services, dict) else ():
            if not re.fullmatch(SERVICE_NAME, str(name)):
                raise FieldValueError(
                    (name,),
                    "is not a DNS-safe service name: lower-case letters, digits and hyphens, starting with a "
                    "letter, at most 32",
                )
            if name in RESERVED_SERVICE_NAMES or str(name).startswith(RESERVED_SERVICE_PREFIXES):
                raise FieldValueError(
                    (name,),
                    "would give a service stack the name of one of the project's own stacks (registry-replication, "
                    "registry-replica-<region>, delivery-infrastructure, delivery-artifacts-<region>); pick another "
                    f"name (not {', '.join(RESERVED_SERVICE_NAMES)}, nor starting with "
                    f"{', '.join(RESERVED_SERVICE_PREFIXES)})",
                )
        return services

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        room = MAX_TAGS_PER_RESOURCE - len(RESERVED_TAG_KEYS)
        if len(tags) > room:
            raise ValueError(
                f"has {len(tags)} tags; a resource takes {MAX_TAGS_PER_RESOURCE} (AWS tagging limits) and the "
                f"generator adds {len(RESERVED_TAG_KEYS)}, so at most {room}"
            )
        for key, value in tags.items():
            if len(value) > MAX_TAG_VALUE:
                raise FieldValueError(
                    (key,), f"is {len(value):,} characters; a tag value takes at most {MAX_TAG_VALUE}", value
                )
            if key in RESERVED_TAG_KEYS:
                raise FieldValueError((key,), f"is set by the generator; use another key than {RESERVED_TAG_KEYS}")
            if key.lower().startswith("aws:") or not 1 <= len(key) <= 128:
                raise FieldValueError((key,), "tag keys are 1-128 characters and must not start with 'aws:'")
        return tags

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_ENVIRONMENT_NAMES:
            raise ValueError("is reserved for the output of project-wide stacks; rename the file")
        return name

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Environment:
        """Every rule that spans several settings, all reported at once."""
        problems = [
            *self._certificate_problems(),
            *self._route_problems(),
            *self._zone_problems(),
            *self._production_problems(),
            *self._edge_problems(),
            *self._posture_problems(),
            *self._delivery_problems(),
            *self._architecture_problems(),
            *self._quota_problems(),
            *self._pre_release_problems(),
        ]
        if problems:
            raise ManyFieldsError(problems)
        return self

    def _architecture_problems(self) -> list[FieldValueError]:
        """ARM64 tasks never run on Fargate Spot ("Linux tasks with the ARM64 architecture don't
        support the Fargate Spot capacity provider": ECS developer guide, Fargate capacity providers):
        an ARM64 service's share on FARGATE_SPOT would never start."""
        return [
            FieldValueError(
                ("services", name, "architecture"),
                f"ARM64 tasks cannot run on Fargate Spot, and this service's capacity puts a share there "
                f"(spot_weight {self.capacity_of(name).spot_weight}); give it capacity {{fargate_weight: 1, "
                "spot_weight: 0}} or architecture X86_64",
                "ARM64",
            )
            for name, service in sorted(self.services.items())
            if service.architecture == "ARM64" and self.capacity_of(name).spot_weight > 0
        ]

    def _quota_problems(self) -> list[FieldValueError]:
        """AWS's default quotas the environment's load balancers and security groups would exceed
        (quotas.py has each quota's name, value and source; the gate counts the same in the
        output). Services are split over as many load balancers as the quotas need
        (``load_balancer_groups``); what no split can fix is refused, the quota named."""
        problems: list[FieldValueError] = []
        for group in self.load_balancer_groups():
            problems += [
                FieldValueError(
                    ("services", group[0]) if len(group) == 1 else ("services",),
                    f"{count} {what}; AWS quota '{quota.name}' is {quota.default} ({quota.source})",
                )
                for quota, count, what in self._load_balancer_usage(group)
                if count > quota.default
            ]
        groups = len(self.load_balancer_groups())
        reached = self._reached_by_cloudfront()
        beyond = [name for group in self.load_balancer_groups()[1:] for name in group if name in reached]
        if beyond:
            problems.append(
                FieldValueError(
                    ("services", beyond[0]),
                    f"routes under edge.api_path ({self.edge.api_path}), which CloudFront sends to the first load "
                    f"balancer only, but the {len(reached)} such services do not fit on one (AWS's quotas per "
                    "Application Load Balancer: 100 target groups, 100 rules; a blue-green service takes two of each)",
                )
            )
        if groups > quotas.LOAD_BALANCERS_PER_REGION.default:
            limit = quotas.LOAD_BALANCERS_PER_REGION
            problems.append(
                FieldValueError(
                    ("services",),
                    f"need {groups} load balancers; AWS quota '{limit.name}' is {limit.default} ({limit.source})",
                )
            )
        weight = quotas.CLOUDFRONT_ORIGIN_FACING_WEIGHT if self.platform.ingress == "cloudfront" else 1
        inbound = weight * (2 if self.platform.listens_http else 1) + (1 if self.blue_green_services else 0)
        database = sum(1 for s in self.services.values() if s.database_access)
        for where, count, what in (
            (
                ("platform", "ingress"),
                inbound,
                "inbound rules on a load balancer's security group (platform.http_redirect adds a second port)",
            ),
            (
                ("services",),
                database,
                "inbound rules on the database's security group (one per service with database_access)",
            ),
        ):
            limit = quotas.INBOUND_RULES_PER_GROUP
            if count > limit.default:
                problems.append(
                    FieldValueError(
                        where, f"{count} {what}; AWS quota '{limit.name}' is {limit.default} ({limit.source})"
                    )
                )
        return problems

    def _load_balancer_usage(self, group: Sequence[str]) -> list[tuple[quotas.Quota, int, str]]:
        """What the services of one load balancer put on it and on its security group."""
        per_service = {name: 2 if self.strategy_of(name) == "blue-green" else 1 for name in group}
        return [
            (quotas.TARGET_GROUPS_PER_ALB, sum(per_service.values()),
             "target groups on one load balancer (a blue-green service has two)"),
            (quotas.RULES_PER_ALB, sum(per_service.values()),
             "listener rules on one load balancer (a blue-green service has a test listener rule too)"),
            (quotas.OUTBOUND_RULES_PER_GROUP, 1 + len(group),
             "outbound rules on a load balancer's security group (one per service, one that removes the default)"),
            (quotas.TARGETS_PER_ALB, sum(self.services[n].autoscaling.max * per_service[n] for n in group),
             "targets at most on one load balancer (autoscaling.max of each service, twice for blue-green)"),
        ]  # fmt: skip

    def load_balancer_groups(self) -> list[list[str]]:
        """The services of each load balancer (a copy of ``_load_balancer_groups``)."""
        return [list(group) for group in self._load_balancer_groups]

    def load_balancer_of(self, service: str) -> int:
        """Index (from 0) of the load balancer whose listeners route to ``service``."""
        return self._load_balancer_index[service]

    @cached_property
    def _load_balancer_index(self) -> dict[str, int]:
        return {name: i for i, group in enumerate(self._load_balancer_groups) for name in group}

    @cached_property
    def _load_balancer_groups(self) -> tuple[tuple[str, ...], ...]:
        """The services of each load balancer, the first load balancer's first (computed once:
        every service stack asks which load balancer it is on).

        One load balancer holds as many services as AWS's default quotas let it (100 target groups
        and 100 rules, 60 outbound rules on its security group, 1,000 targets; a blue-green service
        takes two target groups and two rules): services are taken in order and a new load balancer
        starts when the next one would not fit. The order puts the services CloudFront reaches
        (routes under ``edge.api_path``, served through ``edge.origin_domain``: the first load
        balancer) first, then by name. An environment that fits in one gets one, as before.
        """
        reached = self._reached_by_cloudfront()
        order = reached + sorted(set(self.services) - set(reached))
        groups: list[list[str]] = [[]]
        for name in order:
            candidate = [*groups[-1], name]
            fits = all(count <= quota.default for quota, count, _ in self._load_balancer_usage(candidate))
            if groups[-1] and not fits:
                groups.append([name])
            else:
                groups[-1].append(name)
        return tuple(tuple(group) for group in groups)

    def _reached_by_cloudfront(self) -> list[str]:
        """Services with a path under ``edge.api_path``: CloudFront sends those to the first ALB."""
        api = self.edge.api_path.rstrip("*")
        return sorted(n for n, s in self.services.items() if any(p.startswith(api) for p in s.routing.paths))

    def _certificate_problems(self) -> list[FieldValueError]:
        match = re.fullmatch(
            r"arn:aws(-[a-z]+)*:acm:([a-z0-9-]+):([0-9]{12}):certificate/[0-9a-f-]{36}", self.platform.certificate_arn
        )
        where = ("platform", "certificate_arn")
        if not match:
            return [FieldValueError(where, "is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)")]
        if match.group(2) != self.region or match.group(3) != self.account_id:
            return [
                FieldValueError(
                    where,
                    f"must be a certificate in this environment's account {self.account_id} and region "
                    f"{self.region}: an ALB can only use a certificate from its own account and region",
                )
            ]
        return []

    def _route_problems(self) -> list[FieldValueError]:
        problems: list[FieldValueError] = []
        seen: dict[tuple[frozenset[str], str], str] = {}
        for name in sorted(self.services):
            routing = self.services[name].routing
            hosts = frozenset(routing.hosts)
            for index, path in enumerate(routing.paths or ["(any)"]):
                owner = seen.setdefault((hosts, path), name)
                if owner != name:
                    problems.append(
                        FieldValueError(
                            ("services", name, "routing", "paths" if routing.paths else "hosts", index),
                            f"routes the same requests as services.{owner}; give each service its own paths or hosts",
                            path,
                        )
                    )
        priorities: dict[int, str] = {}
        for name in sorted(self.services):
            priority = self.services[name].routing.priority
            if priority is not None:
                owner = priorities.setdefault(priority, name)
                if owner != name:
                    problems.append(
                        FieldValueError(
                            ("services", name, "routing", "priority"),
                            f"is already the priority of services.{owner}; priorities must be unique",
                            priority,
                        )
                    )
        return problems

    def _posture_problems(self) -> list[FieldValueError]:
        if self.dr is None or self.dr.posture != "pilot-light":
            return []
        return [
            FieldValueError(
                ("services", name, "desired_count"),
                "must be 0 or 1 in a pilot-light DR environment (dr.posture); failover scales it up",
                service.desired_count,
            )
            for name, service in sorted(self.services.items())
            if service.desired_count > 1 or service.autoscaling.min > 1
        ]

    def _edge_problems(self) -> list[FieldValueError]:
        edge = self.edge
        where = ("edge", "certificate_arn")
        if edge.certificate_arn is None:
            if edge.aliases:
                return [
                    FieldValueError(
                        where, "is required with edge.aliases: CloudFront serves an alias only with its certificate"
                    )
                ]
            return []
        if not edge.aliases:
            return [FieldValueError(where, "is set but edge.aliases is empty: give the host names it is for")]
        match = re.fullmatch(
            r"arn:aws(-[a-z]+)*:acm:([a-z0-9-]+):([0-9]{12}):certificate/[0-9a-f-]{36}", edge.certificate_arn
        )
        problem = None
        if not match:
            problem = "is not an ACM certificate ARN (arn:aws:acm:us-east-1:ACCOUNT:certificate/ID)"
        elif match.group(2) != CLOUDFRONT_REGION:
            problem = f"must be a certificate in {CLOUDFRONT_REGION}: CloudFront uses no other region's"
        elif match.group(3) != self.account_id:
            problem = f"must be a certificate of this environment's account {self.account_id}"
        return [FieldValueError(where, problem)] if problem else []

    def _production_problems(self) -> list[FieldValueError]:
        """Production environments keep their safety nets on."""
        if not self.production:
            return []
        problems = []
        if not self.database.deletion_protection:
            problems.append(
                FieldValueError(
                    ("database", "deletion_protection"),
                    "must be true in a production environment (production: true)",
                    False,
                )
            )
        if not self.platform.deletion_protection:
            problems.append(
                FieldValueError(
                    ("platform", "deletion_protection"),
                    "must be true in a production environment (production: true)",
                    False,
                )
            )
        if (
            self.dr is None  # a DR cluster's instances follow its posture; its primary has the reader
            and self.database.capacity.readers < 1
        ):
            problems.append(
                FieldValueError(
                    ("database", "capacity", "readers"),
                    "must be at least 1 in a production environment: a reader in another zone takes over "
                    "when the writer's zone fails",
                    self.database.capacity.readers,
                )
            )
        return problems

    def _zone_problems(self) -> list[FieldValueError]:
        known = len(zones_of(self.region))
        if self.network.availability_zones > known:
            return [
                FieldValueError(
                    ("network", "availability_zones"),
                    f"{self.region} has {known} availability zones; use at most {known}",
                    self.network.availability_zones,
                )
            ]
        return []

    def _pre_release_problems(self) -> list[FieldValueError]:
        """A pre-release command runs from an ECS lifecycle hook (POST_SCALE_UP), which the ECS
        controller calls for its blue/green, canary and linear deployments (Amazon ECS Developer
        Guide, "Lifecycle hooks for Amazon ECS service deployments")."""
        return [
            FieldValueError(
                ("services", name, "pre_release"),
                "needs deployment strategy blue-green with deployment.controller ecs: the command runs from an "
                f"ECS lifecycle hook before traffic shifts (this service: {self.strategy_of(name)}"
                f"{', codedeploy' if self.codedeploy(name) else ''})",
            )
            for name, service in sorted(self.services.items())
            if service.pre_release and (self.strategy_of(name) != "blue-green" or self.codedeploy(name))
        ]

    def _delivery_problems(self) -> list[FieldValueError]:
        """Role names fit IAM's 64 characters; a connection names a repository for every service."""
        problems = [
            FieldValueError(
                ("services", name),
                f"makes the role name {self.project}-{self.name}-{name}-deploy longer than IAM's 64 characters; "
                "use a shorter service, environment or project name",
            )
            for name in sorted(self.services)
            if len(f"{self.project}-{self.name}-{name}-deploy") > 64
        ]
        connection = self.delivery.connection
        if connection is None:
            return problems
        if connection.infrastructure is None:
            problems.append(
                FieldValueError(
                    ("delivery", "connection", "infrastructure"),
                    "is missing: with a connection, the infrastructure pipeline reads this repository through it "
                    "too; give its repository id (owner/name)",
                )
            )
        problems += [
            FieldValueError(
                ("delivery", "connection", "repositories", name),
                "is missing: with a connection every service needs its repository id (owner/name)",
            )
            for name in sorted(set(self.services) - set(connection.repositories))
        ]
        problems += [
            FieldValueError(
                ("delivery", "connection", "repositories", name),
                f"is not a service; services are {sorted(self.services)}",
            )
            for name in sorted(set(connection.repositories) - set(self.services))
        ]
        return problems

    def strategy_of(self, service: str) -> Strategy:
        """The service's own strategy if it sets one, else the environment's."""
        return self.services[service].deployment_strategy or self.deployment.strategy

    @property
    def blue_green_services(self) -> list[str]:
        """Services released blue/green, by either controller."""
        return [name for name in sorted(self.services) if self.strategy_of(name) == "blue-green"]

    @property
    def codedeploy_services(self) -> list[str]:
        """Blue/green services whose traffic CodeDeploy shifts (``deployment.controller: codedeploy``)."""
        return self.blue_green_services if self.deployment.controller == "codedeploy" else []

    def codedeploy(self, service: str) -> bool:
        """Whether CodeDeploy releases ``service`` (CODE_DEPLOY controller); otherwise ECS does."""
        return service in self.codedeploy_services

    def capacity_of(self, service: str) -> Capacity:
        return self.services[service].capacity or self.platform.capacity

    def listener_priorities(self) -> dict[str, int]:
        """A listener rule priority per service: explicit ones as given, the rest derived.

        Derived priorities put more specific rules first (host headers before paths only, deeper
        paths before shallower, the catch-all ``/*`` last) and, within that band, a slot from a hash
        of the name: adding a service leaves the others' priorities alone, so service stacks can
        be deployed in any order without two rules claiming one priority.
        """
        taken = {s.routing.priority: n for n, s in self.services.items() if s.routing.priority is not None}
        result = {name: priority for priority, name in taken.items()}
        for name in sorted(self.services):
            if name in result:
                continue
            routing = self.services[name].routing
            depth = max(
                (len([x for x in p.split("*")[0].split("?")[0].split("/") if x]) for p in routing.paths), default=0
            )
            band = (0 if routing.hosts else 10) + 9 - min(depth, 9)
            slot = zlib.crc32(name.encode()) % PRIORITY_BAND
            priority = band * PRIORITY_BAND + 1 + slot
            while priority in taken:
                priority = band * PRIORITY_BAND + 1 + (priority - band * PRIORITY_BAND) % PRIORITY_BAND
            taken[priority] = name
            result[name] = priority
        return dict(sorted(result.items()))


# --- loading ----------------------------------------------------------------------------------


def available_environments(folder: Path) -> list[str]:
    """The environments of ``folder``: ``<name>.yaml`` for every visible ``*.yaml`` but defaults.yaml.

    Hidden files (a name starting with ``.``: macOS's ``._prod.yaml``, Emacs's ``.#dev.yaml``, Vim's
    ``.dev.yaml.swp``) and names not ending in ``.yaml`` (``dev.yaml~``, ``dev.yaml.bak``) are not
    read. A visible ``*.yaml`` whose name breaks the environment-name rule is not skipped: loading it
    refuses it by name, so nothing a user wrote is silently ignored.
    """
    return sorted(p.stem for p in folder.glob("*.yaml") if p.name != DEFAULTS_FILE and not p.name.startswith("."))


def _misnamed(folder: Path) -> list[str]:
    """Problems for visible files that look like environment files but are never read (``prod.yml``)."""
    return [
        f"{_show(p)}: is not read: environment files end in .yaml; rename it to {p.stem}.yaml"
        for p in sorted(folder.glob("*.yml"))
        if not p.name.startswith(".")
    ]


def load_environment(name: str, folder: Path) -> Environment:
    """Read ``folder/defaults.yaml`` and ``folder/<name>.yaml``, merge and validate them.

    Raises SettingsError whose lines name the file, the field, the value and what would be valid.
    """
    env_path = folder / f"{name}.yaml"
    defaults_path = folder / DEFAULTS_FILE
    if not env_path.is_file():
        known = ", ".join(available_environments(folder)) or "none"
        raise SettingsError([f"{_show(env_path)}: no such environment file; environments here: {known}"])
    defaults = _read_mapping(defaults_path) if defaults_path.is_file() else {}
    own = _read_mapping(env_path)
    for derived in ("name", "standby"):
        if derived in own or derived in defaults:
            raise SettingsError(
                [f"{_show(env_path)}: {derived}: is set by the generator, not in a file; remove the key"]
            )
    merged = deep_merge(defaults, own)
    merged["name"] = name
    try:
        return Environment.model_validate(merged)
    except ValidationError as error:
        sources = {"own": (env_path, own), "defaults": (defaults_path, defaults)}
        lines = {line for e in error.errors() for line in _describe(e, sources, merged)}
        raise SettingsError(sorted(lines)) from None
    except (ValueError, TypeError, ArithmeticError, RecursionError, LookupError) as error:
        # A value no rule foresaw made a rule itself fail: still a refusal, never a traceback.
        raise SettingsError(
            [
                f"{_show(env_path)}: could not be checked ({type(error).__name__}: {_escaped(str(error))}); "
                "a value here or in defaults.yaml is of a kind the settings do not expect (please report it)"
            ]
        ) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``override`` replaces what ``base`` had."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _construct_mapping_once(
    self: yaml.constructor.SafeConstructor, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    """A mapping, refusing a key given twice in it (PyYAML keeps the last silently)."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = self.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    mapping: dict[Any, Any] = yaml.constructor.SafeConstructor.construct_mapping(self, node, deep=deep)
    return mapping


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping."""

    construct_mapping = _construct_mapping_once


_FastStrictLoader: Any = _StrictLoader
if yaml.__with_libyaml__:  # libyaml's parser (C), the same constructor: 3x faster on a valid file

    class _CStrictLoader(yaml.CSafeLoader):
        construct_mapping = _construct_mapping_once

    _FastStrictLoader = _CStrictLoader


MAX_FILE_BYTES = 1024 * 1024  # environment files are a few KB; 1 MiB is far beyond any real one
MAX_NODES = 100_000  # values in one file once YAML aliases are expanded (a "billion laughs" stays small)
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _read_mapping(path: Path) -> dict[str, Any]:
    """The settings of one environment file: the one reading path of every file the tool reads.

    Returns the top-level mapping (``{}`` for an empty file). Raises SettingsError naming the file
    (and the line where YAML gives one) for every way a file can fail: unreadable, larger than
    MAX_FILE_BYTES (checked before parsing: a 20 MB file is refused at once), not UTF-8 (a Latin-1
    byte, a UTF-16 or UTF-32 file; a UTF-8 byte-order mark is accepted, as YAML allows), not YAML,
    a tag this reader does not construct (``!!python/object``...), a key given twice, a merge key
    (``<<``) on something other than a mapping, nesting too deep for the parser, or aliases that
    expand to more than MAX_NODES values. Parsed by libyaml (the C loader) and, only when that
    fails, again by PyYAML's own parser for its messages and line marks.
    """
    shown = _show(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise SettingsError([f"{shown}: cannot be read: {error.strerror or error}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SettingsError([f"{shown}: is larger than {MAX_FILE_BYTES // 1024} KiB; an environment file is a few KB"])
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise SettingsError([f"{shown}: is {encoding} encoded; save it as UTF-8"])
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise SettingsError([f"{shown}: line {line}: contains a NUL byte (UTF-16 or a binary file?); save it as UTF-8"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SettingsError(
            [f"{shown}: line {line}: byte 0x{raw[error.start]:02x} is not UTF-8 (Latin-1?); save the file as UTF-8"]
        ) from None
    try:
        data = _parse(text, _FastStrictLoader)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        try:  # read it again with PyYAML's own parser, whose messages (and marks) the user gets
            data = _parse(text, _StrictLoader)
        except yaml.YAMLError as error:
            raise SettingsError([f"{shown}: is not valid YAML{_where(error)}: {_yaml_problem(error)}"]) from None
        except RecursionError:
            raise SettingsError([f"{shown}: is nested too deeply to be settings"]) from None
        except (ValueError, TypeError, OverflowError) as error:
            raise SettingsError([f"{shown}: is not valid YAML: {_escaped(str(error))}"]) from None
    try:
        size = _size(data, {})
    except RecursionError:
        raise SettingsError([f"{shown}: is nested too deeply to be settings"]) from None
    if size > MAX_NODES:
        raise SettingsError([f"{shown}: its aliases (*name) expand to more than {MAX_NODES:,} values; write them out"])
    return _checked_mapping(path, data)


def _parse(text: str, loader: Any) -> Any:
    return yaml.load(text, Loader=loader)  # _StrictLoader or _CStrictLoader: both safe loaders


def _escaped(text: str) -> str:
    """``text`` with every character outside printable ASCII escaped (``\\u0435``), so a look-alike
    (a Cyrillic e, U+0435, in eu-west-1), an invisible space or a control character shows in a message."""
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text)


def _where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


def _yaml_problem(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None) or str(error)
    if isinstance(error, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        problem += "; settings are plain mappings, lists, strings, numbers and booleans"
    return _escaped(problem)


def _size(data: Any, seen: dict[int, int]) -> int:
    """How many values ``data`` holds with every alias written out (shared objects counted each
    time they appear, computed once each: a billion laughs is measured without expanding it)."""
    if not isinstance(data, dict | list):
        return 1
    known = seen.get(id(data))
    if known is not None:
        return known
    seen[id(data)] = MAX_NODES + 1  # a recursive alias (&a [*a]) is refused as too large
    items = [*data.keys(), *data.values()] if isinstance(data, dict) else data
    total = 1
    for item in items:
        total += _size(item, seen)
        if total > MAX_NODES:
            break
    seen[id(data)] = total
    return total


def _checked_mapping(path: Path, data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError([f"{_show(path)}: must be a mapping of settings, not {type(data).__name__}"])
    bad = [key for key in data if not isinstance(key, str)]
    if bad:
        raise SettingsError([f"{_show(path)}: key {bad[0]!r}: keys must be strings"])
    return data


def _show(path: Path) -> str:
    """The path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _describe(error: Any, sources: dict[str, tuple[Path, dict[str, Any]]], merged: dict[str, Any]) -> list[str]:
    """One line per problem: ``file: field.path = value: what is wrong and what would be valid``."""
    raw: tuple[str | int, ...] = tuple(error["loc"])
    loc = _as_written(raw, merged)
    value = error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    causes = cause.errors if isinstance(cause, ManyFieldsError) else [cause]
    if all(isinstance(c, FieldValueError) for c in causes):
        return [
            _line(
                _as_written(raw + c.path, merged),
                c.value if c.value is not None else _lookup(value, c.path),
                str(c),
                sources,
            )
            for c in causes
            if isinstance(c, FieldValueError)
        ]
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(Environment, loc[:-1])
        message = "is not a known setting" + did_you_mean(loc[-1], allowed)
        message += f"; valid keys here: {', '.join(allowed)}" if allowed else ""
    elif error["type"] == "missing":  # said of the file being loaded, where the value is missing
        own_path, _ = sources["own"]
        return [f"{_show(own_path)}: {_dotted(loc)}: is required and set neither in this file nor in {DEFAULTS_FILE}"]
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else message
        if error["type"] == "literal_error":  # "Input should be 'a', 'b' or 'c'"
            choices = re.findall(r"'([^']*)'|(-?\d+)", str((error.get("ctx") or {}).get("expected", "")))
            message += did_you_mean(value, [quoted or number for quoted, number in choices])
        hint = _description_at(Environment, loc)
        if hint and error["type"] != "value_error":
            message += f" ({hint})"
    return [_line(loc, value, message, sources)]


def _line(
    loc: tuple[str | int, ...], value: object, message: str, sources: dict[str, tuple[Path, dict[str, Any]]]
) -> str:
    shown = "" if value is None or isinstance(value, dict | list) else f" = {_shown(value)}"
    return f"{_show(_origin(loc, sources))}: {_dotted(loc)}{shown}: {_escaped(message)}"


def _shown(value: object, limit: int = 80) -> str:
    """A value as a message shows it: Python's literal with non-ASCII escaped (``ascii``), so a
    look-alike character shows; an over-long value cut, with its length."""
    text = ascii(value)
    return text if len(text) <= limit else f"{text[: limit - 10]}... ({len(str(value)):,} characters)"


def _as_written(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """``loc`` without the parts pydantic adds that are not in the file (a union's tag, such as
    ``capacity.serverless.min_acu`` for what the file calls ``capacity.min_acu``)."""
    written: list[str | int] = []
    for index, part in enumerate(loc):
        following = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(data, dict) and isinstance(part, str) and part not in data and following in data:
            continue
        written.append(part)
        data = _lookup(data, (part,)) if _has(data, (part,)) else None
    return tuple(written)


def _origin(loc: tuple[str | int, ...], sources: dict[str, tuple[Path, dict[str, Any]]]) -> Path:
    """The file that set the value at ``loc`` (or the deepest part of it that exists)."""
    own_path, own = sources["own"]
    defaults_path, defaults = sources["defaults"]
    for depth in range(len(loc), 0, -1):
        if _has(own, loc[:depth]):
            return own_path
        if _has(defaults, loc[:depth]):
            return defaults_path
    return own_path


def _has(data: object, path: tuple[str | int, ...]) -> bool:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
            continue
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            continue
        return False
    return True


def _lookup(data: object, path: tuple[str | int, ...]) -> object:
    for part in path:
        if isinstance(data, BaseModel) and isinstance(part, str):
            data = getattr(data, part, None)
        elif isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return str(data) if isinstance(data, ipaddress.IPv4Network) else data


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{_escaped(str(part))}" if text else _escaped(str(part)))
    return text or "(top level)"


def _description_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    """The Field description of the setting at ``loc``, used as a hint in messages."""
    fields = [part for part in loc if isinstance(part, str)]
    if not fields:
        return None
    parent: Any = model
    for part in fields[:-1]:
        if not (isinstance(parent, type) and issubclass(parent, BaseModel)) or part not in parent.model_fields:
            return None
        parent = _model_in(parent.model_fields[part].annotation)
    if isinstance(parent, type) and issubclass(parent, BaseModel) and fields[-1] in parent.model_fields:
        return parent.model_fields[fields[-1]].description
    return None


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (used to suggest what an unknown key should be)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = _model_in(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(k for k in current.model_fields if k != "name")
    return []


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``list[Model]`` / ``Model | None`` annotations, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


# --- the project: what all environments share --------------------------------------------------


@dataclass(frozen=True)
class Project:
    """What the environments share, for project-wide stacks (the image registry)."""

    name: str
    registry: Registry
    environments: tuple[Environment, ...]

    @property
    def account_id(self) -> str:
        return self.registry.account_id

    @property
    def region(self) -> str:
        return self.registry.region

    @property
    def services(self) -> list[str]:
        """Every service of any environment: each gets its repository."""
        return sorted({name for env in self.environments for name in env.services})

    @property
    def delivery(self) -> Delivery:
        return self.environments[0].delivery

    @property
    def accounts(self) -> list[str]:
        """The accounts that run the environments (and pull images)."""
        return sorted({env.account_id for env in self.environments})

    @property
    def tags(self) -> dict[str, str]:
        """The extra tags every environment agrees on."""
        first, *rest = self.environments
        return {k: v for k, v in first.tags.items() if all(e.tags.get(k) == v for e in rest)}


def project_of(environments: Sequence[Environment], folder: Path) -> Project:
    """The project the environments describe; they must agree on its name and registry."""
    if not environments:
        raise SettingsError([f"{_show(folder)}: no environment files; add one such as dev.yaml"])
    first = environments[0]
    problems = [
        line for field in ("project", "registry", "delivery") for line in _shared_problems(environments, field, folder)
    ]
    problems.extend(_dr_problems(environments, folder))
    names = available_environments(folder)
    for index, stage in enumerate(first.delivery.stages):
        if stage not in names:
            problems.append(
                f"{_show(folder / DEFAULTS_FILE)}: delivery.stages[{index}] = {_shown(stage)}: is not an environment"
                f"{did_you_mean(stage, names)}; environments are {names}"
            )
    problems.extend(_alias_problems(environments, folder))
    if problems:
        raise SettingsError(problems)
    return Project(first.project, first.registry, tuple(environments))


def _alias_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """A host name is the alias of one CloudFront distribution only ("CNAMEAlreadyExists": an
    alternate domain name belongs to one distribution; CloudFront developer guide, "Use custom URLs
    by adding alternate domain names (CNAMEs)"); two environments naming it would fail the second deploy."""
    owner: dict[str, str] = {}
    problems = []
    for env in environments:
        for index, alias in enumerate(env.edge.aliases):
            if alias in owner:
                problems.append(
                    f"{_show(folder / (env.name + '.yaml'))}: edge.aliases[{index}] = {_shown(alias)}: is also "
                    f"{owner[alias]}'s alias; a host name is the alias of one CloudFront distribution only"
                )
            else:
                owner[alias] = env.name
    return problems


def _shared_problems(environments: Sequence[Environment], field: str, folder: Path) -> list[str]:
    """A setting every environment must share, set differently by some: each line names the file
    that differs from what most environments say (a tie: from the first environment in order), the
    field path and its value there, and the value the others have."""
    by_value: dict[str, list[Environment]] = {}
    for env in environments:
        by_value.setdefault(getattr(env, field).model_dump_json() if field != "project" else env.project, []).append(
            env
        )
    if len(by_value) < 2:
        return []
    common = max(by_value.values(), key=len)  # max keeps the first of equals: the first environment's group
    reference = common[0]
    others = ", ".join(e.name for e in common)
    problems = []
    for env in environments:
        if env in common:
            continue
        for path, value, expected in _differences(getattr(env, field), getattr(reference, field), (field,)):
            problems.append(
                f"{_show(folder / (env.name + '.yaml'))}: {_dotted(path)} = {_shown(value)}: differs from "
                f"{_shown(expected)} in {others}; every environment shares one {field} (set it in "
                f"{DEFAULTS_FILE} only)"
            )
    return problems


def _differences(a: Any, b: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], Any, Any]]:
    """The leaves where ``a`` and ``b`` differ: (path, value in ``a``, value in ``b``)."""
    if isinstance(a, BaseModel) and type(a) is type(b):
        return [d for key in type(a).model_fields for d in _differences(getattr(a, key), getattr(b, key), (*path, key))]
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted({*a, *b}, key=str) for d in _differences(a.get(key), b.get(key), (*path, key))]
    return [] if a == b else [(path, a, b)]


def _dr_problems(environments: Sequence[Environment], folder: Path) -> list[str]:
    """A DR environment must pair with its primary the way an Aurora global database allows."""
    by_name = {env.name: env for env in environments}
    problems = []
    for env in environments:
        if env.dr is None:
            continue
        where = f"{_show(folder / (env.name + '.yaml'))}: dr.protects = {env.dr.protects!r}"
        primary = by_name.get(env.dr.protects)
        if primary is None or primary.dr is not None:
            names = ", ".join(sorted(n for n, e in by_name.items() if e.dr is None and n != env.name))
            problems.append(f"{where}: is not an environment it can protect; use one of {names}")
            continue
        checks = [
            (
                primary.region != env.region,
                f"region: is {env.region}, the same as {primary.name}'s; a DR copy runs in another region",
            ),
            (
                primary.account_id == env.account_id,
                f"account_id: differs from {primary.name}'s; an Aurora global database spans one account",
            ),
            (
                (primary.database.engine, primary.database.engine_version)
                == (env.database.engine, env.database.engine_version),
                f"database.engine_version: must equal {primary.name}'s ({primary.database.engine} "
                f"{primary.database.engine_version}); a global database runs one version",
            ),
            (
                # The DR vault's lock refuses a copy kept shorter than its minimum (AWS Backup Vault Lock).
                not env.production
                or primary.database.backup_plan_retention_days >= env.database.backup_plan_retention_days,
                f"database.backup_plan_retention_days: is {env.database.backup_plan_retention_days}, the minimum "
                f"its locked vault keeps, but {primary.name}'s backups are copied here for "
                f"{primary.database.backup_plan_retention_days} days; use at most that",
            ),
        ]
        problems.extend(f"{_show(folder / (env.name + '.yaml'))}: {message}" for ok, message in checks if not ok)
        if primary.database.password == "managed":
            problems.append(
                f"{_show(folder / (primary.name + '.yaml'))}: database.password = 'managed': AWS does not allow an "
                f"RDS-managed password on a global database member, and {env.name} protects {primary.name}; "
                "set database.password: generated"
            )
    return problems


def link(environments: Sequence[Environment]) -> list[Environment]:
    """The environments, each primary told which DR environment stands by for it (``standby``)."""
    linked = []
    for env in environments:
        guard = next((e for e in environments if e.dr is not None and e.dr.protects == env.name), None)
        standby = (
            None
            if guard is None or guard.dr is None
            else Standby(environment=guard.name, region=guard.region, dns=guard.dr.dns)
        )
        linked.append(env.model_copy(update={"standby": standby}) if standby else env)
    return linked


def primary_of(environment: Environment, environments: Sequence[Environment]) -> Environment | None:
    """The environment a DR environment protects."""
    if environment.dr is None:
        return None
    return next((e for e in environments if e.name == environment.dr.protects), None)


def load_settings(
    folder: Path, names: Sequence[str] | None = None
) -> tuple[list[Environment], Project, list[Environment]]:
    """The named environments (default: all), linked to their DR standby; the project; and every
    environment, linked.

    Every environment file is read and checked even when only some are named: the project-wide
    stacks and a DR pairing depend on all of them. SettingsError lists every problem at once.
    """
    everything = available_environments(folder)
    wanted = list(names or everything)
    bad = [n for n in names or () if not re.fullmatch(ENVIRONMENT_NAME, n)]
    if bad:  # never read a path made of a name (--env ../x, --env ._prod)
        raise SettingsError(
            [
                f"--env {_shown(n)}: is not an environment name (lower-case letters and digits, starting with a "
                f"letter, at most 12){did_you_mean(n, everything)}; environments here: {', '.join(everything)}"
                for n in bad
            ]
        )
    problems: list[str] = _misnamed(folder)
    loaded = []
    for name in [*everything, *(n for n in wanted if n not in everything)]:
        try:
            loaded.append(load_environment(name, folder))
        except SettingsError as error:
            problems.extend(p for p in error.problems if p not in problems)  # defaults.yaml once
    if problems:
        raise SettingsError(problems)
    project = project_of(loaded, folder)
    everyone = link(loaded)
    return [env for env in everyone if env.name in wanted], project, everyone
