"""Edge settings: CloudFront, its aliases and certificate, and how traffic reaches the load balancer."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from infra_templates.settings.common import FieldValueError, Strict

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
