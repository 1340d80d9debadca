"""Service settings: one container service each (image, size, routing, health check, scaling, secrets)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from infra_templates import quotas
from infra_templates.credentials import credential_kinds
from infra_templates.settings.common import FieldValueError, Strict

ALB_HEALTHY_CODES = (200, 499)  # TargetGroup Matcher.HttpCode for an Application Load Balancer
# Services whose per-service project stacks would take another project stack's name: {project}-
# registry-<service> and {project}-delivery-<service> beside the project layers registry-replication,
# registry-replica-<region>, delivery-infrastructure and delivery-artifacts-<region> (templates/
# __init__.py PROJECT_LAYERS; tests/test_settings_limits.py derives them from it).
RESERVED_SERVICE_NAMES = ("infrastructure", "replication")
RESERVED_SERVICE_PREFIXES = ("replica-", "artifacts-")
PRIORITY_BAND = 2000  # listener rule priorities per specificity band; 20 bands fit under 50,000


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
SERVICE_NAME = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
SECRET_REFERENCE = r"^(secretsmanager:[A-Za-z0-9/_+=.@-]{1,512}(#[A-Za-z0-9_.-]+)?|ssm:/[A-Za-z0-9/_.-]{1,1011})$"
# A secret's complete name: the name, a hyphen and the 6 random characters Secrets Manager appends
# (the end of its ARN). ECS takes the full ARN of a secret (ECS API reference, Secret.valueFrom).
COMPLETE_SECRET_NAME = r"^secretsmanager:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}(#.*)?$"
ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"
# What a service with database_access receives as variables: where the database is, the service's
# own user and how it signs in (IAM database authentication: no password anywhere). DB_PASSWORD
# stays reserved, so that no one sets one believing the application would use it.
DATABASE_VARIABLES = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USERNAME", "DB_AUTH", "DB_REGION", "DB_PASSWORD")


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
