"""Database settings: Aurora engine, version, capacity (Serverless v2 or provisioned), backups."""

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from infra_templates.catalog import aurora_versions
from infra_templates.settings.common import FieldValueError, ManyFieldsError, Strict, check_retention

DATABASE_PORTS = {"aurora-postgresql": 5432, "aurora-mysql": 3306}


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
    def _order(self) -> "ServerlessCapacity":
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

    _retention = field_validator("log_retention_days")(lambda cls, days: check_retention(days))

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
    def _windows_apart(self) -> "Database":
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
    def _known_version(self) -> "Database":
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
