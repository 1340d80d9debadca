"""Monitoring settings: alarm thresholds and the two notification paths (SNS e-mail, SES mail)."""

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from infra_templates.settings.common import (
    FieldValueError,
    ManyFieldsError,
    Strict,
    check_retention,
    lower_case_hint,
    no_items,
)

EMAIL_ADDRESS = r"^[A-Za-z0-9._%+-]{1,64}@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


def _check_emails(addresses: list[str]) -> list[str]:
    for index, address in enumerate(addresses):
        if not re.fullmatch(EMAIL_ADDRESS, address):
            hint = lower_case_hint(address, EMAIL_ADDRESS)
            raise FieldValueError((index,), f"is not an e-mail address such as 'ops@example.com'{hint}", address)
    if len(set(addresses)) != len(addresses):
        raise ValueError("lists an address twice")
    return addresses


class SnsEmail(Strict):
    """Path 1: the alarm topic's own e-mail subscriptions (plain JSON-ish SNS mails)."""

    enabled: bool = Field(default=False, description="Subscribe the recipients to the alarm topic by e-mail.")
    recipients: list[str] = Field(default_factory=no_items, max_length=20, description="E-mail addresses.")

    _emails = field_validator("recipients")(lambda cls, addresses: _check_emails(addresses))

    @model_validator(mode="after")
    def _someone(self) -> "SnsEmail":
        if self.enabled and not self.recipients:
            raise FieldValueError(("recipients",), "is empty while enabled is true: name who gets the alarms", [])
        return self


class SesEmail(Strict):
    """Path 2: a Lambda function turns alarm state changes into readable mails sent through SES."""

    enabled: bool = Field(default=False, description="Send formatted alarm mails through SES.")
    sender: str | None = Field(
        default=None, description="Verified SES e-mail identity the mails come from (created by the stack)."
    )
    recipients: list[str] = Field(default_factory=no_items, max_length=20, description="E-mail addresses.")

    _emails = field_validator("recipients")(lambda cls, addresses: _check_emails(addresses))

    @field_validator("sender")
    @classmethod
    def _sender(cls, sender: str | None) -> str | None:
        if sender is not None and not re.fullmatch(EMAIL_ADDRESS, sender):
            raise ValueError(
                f"is not an e-mail address such as 'alarms@example.com'{lower_case_hint(sender, EMAIL_ADDRESS)}"
            )
        return sender

    @model_validator(mode="after")
    def _complete(self) -> "SesEmail":
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
    def _datapoints(self) -> "Thresholds":
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise FieldValueError(("datapoints_to_alarm",), f"is above evaluation_periods ({self.evaluation_periods})")
        return self


class Monitoring(Strict):
    """Alarms, the dashboard and the two notification paths (SNS e-mail, SES mail)."""

    sns_email: SnsEmail = Field(default_factory=SnsEmail)
    ses_email: SesEmail = Field(default_factory=SesEmail)
    alarms: Thresholds = Field(default_factory=Thresholds)
    dashboard: bool = Field(
        default=True,
        description="Whether the environment has its CloudWatch dashboard, a stack of its own (<env>-dashboard): "
        "$3 a month beyond the free tier's 3 dashboards per account.",
    )
    log_retention_days: int = Field(default=30, description="Retention of the alarm mailer's log group.")

    _retention = field_validator("log_retention_days")(lambda cls, days: check_retention(days))
