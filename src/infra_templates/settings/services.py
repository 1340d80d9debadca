"""Service settings: one container service each (image, size, routing, health check, scaling, secrets)."""

import itertools
import re
import zoneinfo
from functools import cache
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from infra_templates import quotas
from infra_templates.catalog import nearest_numbers
from infra_templates.credentials import credential_kinds
from infra_templates.settings.common import (
    HOST_NAME,
    FieldValueError,
    ManyFieldsError,
    Strict,
    check_each,
    lower_case_hint,
    mapping_text,
    no_items,
)

ALB_HEALTHY_CODES = (200, 499)  # TargetGroup Matcher.HttpCode for an Application Load Balancer
# Services whose per-service project stacks would take another project stack's name: {project}-
# registry-<service> and {project}-delivery-<service> beside the project layers registry-replication,
# registry-replica-<region>, delivery-infrastructure and delivery-artifacts-<region> (templates/
# __init__.py PROJECT_LAYERS; tests/test_settings_limits.py derives them from it).
RESERVED_SERVICE_NAMES = ("infrastructure", "replication")
RESERVED_SERVICE_PREFIXES = ("replica-", "artifacts-")
# Condition values of the origin-verify header (its AWSCURRENT and AWSPREVIOUS value) in every
# forwarding rule behind CloudFront (templates/origin_verify.py).
ORIGIN_HEADER_VALUES = 2
PRIORITY_BAND = 2000  # listener rule priorities per specificity band; 20 bands fit under 50,000


# Task sizes Fargate accepts: CPU units -> memory (MiB) choices (Amazon ECS Developer Guide, "Troubleshoot
# Amazon ECS task definition invalid CPU or memory errors", the table for tasks hosted on Fargate:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-cpu-memory-error.html; every pair is
# also in cfn-lint's fargate_cpu_memory.json, tests/test_catalog.py checks).
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


def _raise(error: Exception) -> None:
    raise error


class Capacity(Strict):
    """How a service's tasks are spread over FARGATE and FARGATE_SPOT."""

    fargate_base: int = Field(ge=0, le=100000, description="Tasks that always run on FARGATE (on-demand).")
    fargate_weight: int = Field(ge=0, le=1000, description="Share of tasks beyond the base placed on FARGATE.")
    spot_weight: int = Field(ge=0, le=1000, description="Share of tasks beyond the base placed on FARGATE_SPOT.")

    @model_validator(mode="after")
    def _some_weight(self) -> "Capacity":
        if self.fargate_weight == self.spot_weight == 0:
            raise FieldValueError(("spot_weight",), "fargate_weight and spot_weight cannot both be 0", 0)
        return self


class Routing(Strict):
    """Which requests the ALB sends to a service: path patterns and/or host headers."""

    paths: list[str] = Field(default_factory=no_items, max_length=5)
    hosts: list[str] = Field(default_factory=no_items, max_length=5)
    priority: int | None = Field(
        default=None, ge=1, le=50000, description="Listener rule priority; derived from the rule when not set."
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        # The characters both an ALB path-pattern condition (Elastic Load Balancing API Reference,
        # RuleCondition Values) and a CloudFront cache behaviour's PathPattern (CloudFront Developer
        # Guide, "Cache behavior settings", Path pattern) take: CloudFront reaches each route with a
        # behaviour of the same pattern, case-sensitive in both, '*' and '?' the same wildcards.
        check_each(
            (
                (index, path)
                for index, path in enumerate(paths)
                if not re.fullmatch(r"/[A-Za-z0-9_\-.$/~\"'@:+*?&]{0,127}", path)
            ),
            lambda bad: _raise(
                FieldValueError(
                    (bad[0],),
                    "a path pattern starts with '/' and has at most 128 characters: letters, digits, "
                    "_ - . $ / ~ \" ' @ : + &, and the wildcards * and ?",
                    bad[1],
                )
            ),
        )
        return paths

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        check_each(
            ((index, host) for index, host in enumerate(hosts) if not re.fullmatch(HOST_NAME, host)),
            lambda bad: _raise(
                FieldValueError(
                    (bad[0],),
                    "is not a host name such as 'api.example.com' or '*.example.com'"
                    + lower_case_hint(bad[1], HOST_NAME),
                    bad[1],
                )
            ),
        )
        return hosts

    @model_validator(mode="after")
    def _something(self) -> "Routing":
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
    def _order(self) -> "Autoscaling":
        if self.min > self.max:
            raise FieldValueError(("min",), f"is above max ({self.max})", self.min)
        return self


def plain_variables(variables: dict[str, str]) -> dict[str, str]:
    """``variables`` if every name is a variable name and no value looks like a credential."""

    def check(item: tuple[str, str]) -> None:
        key, value = item
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

    check_each(variables.items(), check)
    return variables


def secret_references(secrets: dict[str, str]) -> dict[str, str]:
    """``secrets`` if every value is a complete reference (Secrets Manager or SSM), never a value."""

    def check(item: tuple[str, str]) -> None:
        key, value = item
        if not re.fullmatch(ENV_VAR_NAME, key):
            raise FieldValueError((key,), "is not a valid environment variable name", value)
        if not re.fullmatch(SECRET_REFERENCE, value):
            raise FieldValueError(
                (key,),
                "looks like a value, not a reference: give 'secretsmanager:NAME-SUFFIX' (the secret's complete "
                "name, with the 6 characters Secrets Manager appends; optionally '#json-key') or "
                "'ssm:/PARAMETER/NAME' and keep the value in AWS (DEPLOY.md, 'Secrets and parameters', creates both)",
                "(hidden)",
            )
        if value.startswith("secretsmanager:") and not re.fullmatch(COMPLETE_SECRET_NAME, value):
            name = value.removeprefix("secretsmanager:").split("#")[0]
            raise FieldValueError(
                (key,),
                "names the secret without the 6 characters Secrets Manager appends to its name: give the "
                "complete name as its ARN ends ('secretsmanager:shop/api/payment-AbC123#key'; ECS takes a "
                f"secret's full ARN). In the environment's account and region, 'aws secretsmanager describe-secret "
                f"--secret-id {name} --query ARN' gives it, once 'aws secretsmanager create-secret --name {name}' "
                "has made it",
                value,
            )

    check_each(secrets.items(), check)
    return secrets


Kind = Literal["web", "backend", "worker", "job"]


class Queue(Strict):
    """A worker's SQS queue (Amazon SQS Developer Guide; ranges from the SQS API Reference,
    SetQueueAttributes) and how the worker scales and alarms on it."""

    visibility_timeout_seconds: int = Field(
        default=300,
        ge=0,
        le=43_200,
        description="How long a received message stays hidden from other consumers (SQS: 0 to 43,200 s); longer "
        "than the worker takes to process one.",
    )
    retention_seconds: int = Field(
        default=345_600, ge=60, le=1_209_600, description="How long SQS keeps a message (60 s to 14 days; 4 days)."
    )
    max_receive_count: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Receives before a message moves to the dead-letter queue (redrive policy maxReceiveCount).",
    )
    backlog_per_task: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Messages waiting per running task the worker scales to hold (the acceptable latency divided "
        "by the time one message takes; Application Auto Scaling, 'backlog per task').",
    )
    oldest_message_alarm_seconds: int = Field(
        default=900,
        ge=60,
        le=1_209_600,
        description="The age of the oldest waiting message (ApproximateAgeOfOldestMessage) that raises an alarm.",
    )


class Schedule(Strict):
    """When a job runs: an EventBridge Scheduler expression in a time zone (EventBridge Scheduler User
    Guide, "Schedule types on EventBridge Scheduler": cron-based and rate-based schedules)."""

    expression: str = Field(
        description="cron(minutes hours day-of-month month day-of-week year), e.g. 'cron(0 3 * * ? *)', or "
        "rate(value unit), e.g. 'rate(6 hours)'."
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone the cron expression is read in ('Europe/Paris'); UTC by default."
    )

    @field_validator("expression")
    @classmethod
    def _expression(cls, expression: str) -> str:
        cron = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)", expression)
        rate = re.fullmatch(r"rate\((1 (minute|hour|day)|[1-9][0-9]{0,8} (minutes|hours|days))\)", expression)
        if not cron and not rate:
            raise ValueError(
                "is not a cron expression of 6 fields ('cron(0 3 * * ? *)': minutes hours day-of-month month "
                "day-of-week year) nor a rate ('rate(1 day)', 'rate(6 hours)')"
            )
        if cron and "?" not in (cron.group(3), cron.group(5)):
            # EventBridge Scheduler: "You can't specify the Day-of-month and Day-of-week fields in the same
            # cron expression. If you specify a value in one of the fields, you must use a ? in the other."
            raise ValueError("needs '?' in day-of-month or day-of-week (EventBridge cron: one of the two is '?')")
        return expression

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, timezone: str) -> str:
        if not is_time_zone(timezone):
            raise ValueError("is not an IANA time zone name such as 'UTC' or 'Europe/Paris'")
        return timezone


@cache
def is_time_zone(name: str) -> bool:
    """``name in zoneinfo.available_timezones()``, found without listing them all: that call opens
    each of the system's 600 time zone files to read its first bytes (10 ms of a build's CPU, for
    the one or two names the settings give). zoneinfo's own loader finds and reads the one file;
    the list leaves out what the loader would still take: the ``posix/`` and ``right/`` copies and
    ``posixrules``."""
    if name == "posixrules" or name.startswith(("posix/", "right/")):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # none, a malformed name, not a TZif file
        return False
    return True


class Sidecar(Strict):
    """A helper container in a service's task beside the application's (a proxy, a collector...).
    Never essential: the application's container is the task's one essential container."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$", description="The container's name in the task.")
    image: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]*(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_.-]{1,128}|@sha256:[0-9a-f]{64})$",
        description="A public image with its registry, pinned by tag or digest "
        "('public.ecr.aws/aws-observability/aws-otel-collector:v0.43.1'); the execution role grants no private "
        "registry.",
    )
    memory: int = Field(ge=6, description="MiB: the container's hard limit, taken out of the task's memory.")
    cpu: int | None = Field(default=None, ge=0, description="CPU units reserved for it out of the task's.")
    port: int | None = Field(default=None, ge=1, le=65535, description="A port it listens on, if any.")
    command: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1, description="Overrides the image's command (exec form)."
    )
    environment: dict[str, str] = Field(default_factory=dict, description="Plain, non-secret variables.")
    secrets: dict[str, str] = Field(default_factory=dict, description="Variable -> reference, as a service's.")
    user: str | None = Field(default="1000", pattern=r"^[0-9]{1,10}(:[0-9]{1,10})?$")
    read_only_root_filesystem: bool = True

    @field_validator("environment")
    @classmethod
    def _plain_names(cls, variables: dict[str, str]) -> dict[str, str]:
        return plain_variables(variables)

    @field_validator("secrets")
    @classmethod
    def _references_only(cls, secrets: dict[str, str]) -> dict[str, str]:
        return secret_references(secrets)


# What each kind takes: (required, refused) fields of Service; the rest are optional for every kind.
KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "web": (("port", "routing", "autoscaling", "desired_count"), ("schedule", "queue")),
    "backend": (
        ("port", "autoscaling", "desired_count"),
        ("routing", "health_check", "schedule", "queue", "deployment_strategy", "pre_release"),
    ),
    "worker": (
        ("autoscaling", "desired_count"),
        ("port", "routing", "health_check", "schedule", "deployment_strategy", "pre_release"),
    ),
    "job": (
        ("schedule",),
        (
            "port", "routing", "health_check", "autoscaling", "desired_count", "queue", "calls",
            "deployment_strategy", "pre_release",
        ),
    ),
}  # fmt: skip
KIND_REASONS = {
    "web": "a web service is routed by the load balancer and runs no schedule or queue",
    "backend": "a backend is reached through Service Connect, not the load balancer, and releases rolling",
    "worker": "a worker has no port and no load balancer (it consumes its queue) and releases rolling",
    "job": "a job is one task per scheduled run: no port, no load balancer, no service to scale, and no Service "
    "Connect (ECS supports it only for the tasks of a service)",
}


def _takes(field: str) -> str:
    """What a service's ``field`` takes, for the line that says it is missing: a mapping's keys
    (``autoscaling``: ``a mapping of min, max (required), cpu_target, requests_per_target``), else
    the field's description."""
    info = Service.model_fields[field]
    model = next(
        (
            a
            for a in (info.annotation, *getattr(info.annotation, "__args__", ()))
            if isinstance(a, type) and issubclass(a, Strict)
        ),
        None,
    )
    if model is None:
        text = re.sub(r" \(not for [^)]*\)", "", info.description or "a value").rstrip(".")
        return text[:1].lower() + text[1:]
    return mapping_text(model)


def _sizes_text(sizes: tuple[int, ...]) -> str:
    """``512, 1024 or 2048`` when the sizes are not evenly spaced (cpu 256), else ``1024 to 4096 in
    steps of 1024``: never a range the list does not keep."""
    steps = {b - a for a, b in itertools.pairwise(sizes)}
    if len(steps) == 1 and len(sizes) > 3:
        return f"{sizes[0]} to {sizes[-1]} in steps of {steps.pop()}"
    return ", ".join(map(str, sizes[:-1])) + f" or {sizes[-1]}"


class Service(Strict):
    """One containerised service: one image, one ECS service, one stack."""

    kind: Kind = Field(
        default="web",
        description="web: HTTP behind the load balancer; backend: HTTP reached by other services through Service "
        "Connect; worker: consumes its own SQS queue; job: a task run on a schedule.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The container port: the ALB sends traffic to it (web), callers reach it (backend).",
    )
    cpu: int = Field(description="Fargate CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384.")
    memory: int = Field(description="MiB; must be a size Fargate accepts for the CPU.")
    desired_count: int | None = Field(
        default=None, ge=0, le=1000, description="Tasks at creation, 0 to 1000 (not for a job)."
    )
    autoscaling: Autoscaling | None = Field(default=None, description="Task count bounds (not for a job).")
    routing: Routing | None = Field(default=None, description="The load balancer's rule for it (web only).")
    calls: list[Annotated[str, Field(pattern=SERVICE_NAME)]] = Field(
        default_factory=no_items,
        description="Backend services it calls through Service Connect (by name): their ports open to it alone.",
    )
    sends_to: list[Annotated[str, Field(pattern=SERVICE_NAME)]] = Field(
        default_factory=no_items, description="Worker services whose queues it may send to (by name)."
    )
    queue: Queue = Field(default_factory=Queue, description="The worker's queue (worker only).")
    schedule: Schedule | None = Field(default=None, description="When the job runs (job only).")
    sidecars: list[Sidecar] = Field(
        default_factory=no_items, description="Helper containers beside the application's (never essential)."
    )
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

    def _fargate_size(self) -> "Service":
        if self.cpu not in FARGATE_SIZES:
            guess = " or ".join(map(str, nearest_numbers(self.cpu, FARGATE_SIZES)))
            raise FieldValueError(
                ("cpu",),
                f"is not a Fargate CPU size (did you mean {guess}?); use one of {', '.join(map(str, FARGATE_SIZES))}",
            )
        if self.memory not in FARGATE_SIZES[self.cpu]:
            sizes = FARGATE_SIZES[self.cpu]
            guess = " or ".join(map(str, nearest_numbers(self.memory, sizes)))
            raise FieldValueError(
                ("memory",),
                f"is not a size Fargate accepts with cpu {self.cpu} (did you mean {guess}?); use " + _sizes_text(sizes),
            )
        return self

    def _exec_needs_writable_root(self) -> "Service":
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

    def _kind_fields(self) -> "Service":
        """Each kind takes its own fields (KIND_FIELDS) and refuses those that cannot work for it."""
        required, refused = KIND_FIELDS[self.kind]
        missing = [
            FieldValueError((field,), f"is required for a {self.kind} service (kind: {self.kind}): {_takes(field)}")
            for field in required
            if getattr(self, field) is None
        ]
        if missing:  # every one at once: adding a service is one run, not one per missing setting
            raise ManyFieldsError(missing)
        for field in refused:
            if field in self.model_fields_set and getattr(self, field) not in (None, []):
                raise FieldValueError((field,), f"is not for a {self.kind} service: {KIND_REASONS[self.kind]}")
        scaling = self.autoscaling
        explicit = scaling is not None and "requests_per_target" in scaling.model_fields_set
        if self.kind != "web" and explicit and scaling is not None and scaling.requests_per_target:
            how = "its queue's backlog per task (queue.backlog_per_task) and CPU" if self.kind == "worker" else "CPU"
            raise FieldValueError(
                ("autoscaling", "requests_per_target"),
                f"is for a web service (load balancer requests); a {self.kind} scales on {how}",
            )
        return self

    @model_validator(mode="after")
    def _rules(self) -> "Service":
        """Every rule of one service, all reported at once: one validator that collects, since
        pydantic stops at the first model validator that raises and would hide the rest."""
        problems: list[FieldValueError] = []
        for rule in (
            self._fargate_size,
            self._exec_needs_writable_root,
            self._kind_fields,
            self._sidecars_fit,
            self._count_in_range,
            self._no_overlap,
        ):
            try:
                rule()
            except ManyFieldsError as error:
                problems.extend(error.errors)
            except FieldValueError as error:
                problems.append(error)
        if problems:
            raise ManyFieldsError(problems)
        return self

    @property
    def scaling(self) -> Autoscaling:
        """``autoscaling``, which every kind but job requires."""
        if self.autoscaling is None:
            raise ValueError(f"a {self.kind} service has no autoscaling")
        return self.autoscaling

    @property
    def container_port(self) -> int:
        """``port``, which a web service and a backend require."""
        if self.port is None:
            raise ValueError(f"a {self.kind} service has no port")
        return self.port

    @property
    def web_routing(self) -> Routing:
        """``routing``, which a web service requires."""
        if self.routing is None:
            raise ValueError(f"a {self.kind} service has no routing")
        return self.routing

    def _sidecars_fit(self) -> "Service":
        """Sidecars have their own names, and their memory and CPU fit in the task's beside the
        application's (on Fargate the containers' memory must not exceed the task's; ECS Developer
        Guide, task definition parameters "memory" and "cpu")."""
        names = [sidecar.name for sidecar in self.sidecars]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise FieldValueError(("sidecars", index, "name"), "is the name of another sidecar", name)
        memory = sum(sidecar.memory for sidecar in self.sidecars)
        if self.sidecars and memory >= self.memory:
            raise FieldValueError(
                ("sidecars",),
                f"take {memory} MiB of the task's {self.memory}: leave memory for the application's container",
            )
        cpu = sum(sidecar.cpu or 0 for sidecar in self.sidecars)
        if cpu >= self.cpu:
            raise FieldValueError(
                ("sidecars",), f"reserve {cpu} CPU units of the task's {self.cpu}: leave some for the application"
            )
        return self

    def _count_in_range(self) -> "Service":
        if self.autoscaling is None or self.desired_count is None:
            return self
        if not self.autoscaling.min <= self.desired_count <= self.autoscaling.max:
            raise FieldValueError(
                ("desired_count",),
                f"must lie between autoscaling.min ({self.autoscaling.min}) and max ({self.autoscaling.max})",
            )
        return self

    @field_validator("environment")
    @classmethod
    def _plain_names(cls, variables: dict[str, str]) -> dict[str, str]:
        return plain_variables(variables)

    @field_validator("secrets")
    @classmethod
    def _references_only(cls, secrets: dict[str, str]) -> dict[str, str]:
        return secret_references(secrets)

    def _no_overlap(self) -> "Service":
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
