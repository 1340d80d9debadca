"""Edge settings: CloudFront, its aliases and certificate, and how traffic reaches the load balancer;
CloudFront's path-pattern matching, which the settings and the tests judge routes by."""

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from infra_templates.settings.common import HOST_NAME, FieldValueError, Strict, check_each, lower_case_hint, no_items

# '/<prefix>/*': a literal prefix of the characters CloudFront's path patterns take (CloudFront
# Developer Guide, "Cache behavior settings", Path pattern), then one '*'.
ASSETS_PATH = r"^/[A-Za-z0-9_\-.$~\"'@:+&]+(/[A-Za-z0-9_\-.$~\"'@:+&]+)*/\*$"
CLOUDFRONT_REGION = "us-east-1"  # CloudFront's certificates and web ACLs live here, whatever the environment's


class Edge(Strict):
    """Static assets in S3 and every web service's route behind one CloudFront distribution."""

    origin_domain: str = Field(
        pattern=HOST_NAME.replace("(\\*\\.)?", ""),
        description="Host name CloudFront connects to for the web services: a DNS name of the (first) ALB "
        "that platform.certificate_arn covers (CloudFront checks the ALB's certificate against it).",
    )
    assets_path: str = Field(
        default="/assets/*",
        pattern=ASSETS_PATH,
        description="The path CloudFront serves from the assets bucket, before any web service's route: "
        "'/<prefix>/*', the objects under the key prefix '<prefix>/'.",
    )
    aliases: list[str] = Field(default_factory=no_items, max_length=10, description="Viewer host names.")
    certificate_arn: str | None = Field(
        default=None, description="ACM certificate for the aliases; CloudFront needs it in us-east-1."
    )
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_100"
    default_root_object: str = Field(default="index.html", pattern=r"^[A-Za-z0-9_\-.]{1,255}$")
    noncurrent_asset_days: int = Field(default=30, ge=1, le=3650, description="Days old versions of assets are kept.")

    @model_validator(mode="before")
    @classmethod
    def _api_path_is_gone(cls, data: object) -> object:
        if isinstance(data, dict) and "api_path" in data:
            raise FieldValueError(
                ("api_path",),
                "is gone: CloudFront now reaches every web service's routing.paths on the load balancer and "
                "serves the static assets under edge.assets_path; remove it",
                data["api_path"],
            )
        return data

    @field_validator("aliases")
    @classmethod
    def _hosts(cls, aliases: list[str]) -> list[str]:
        def check(item: tuple[int, str]) -> None:
            index, alias = item
            if not re.fullmatch(HOST_NAME, alias):
                hint = lower_case_hint(alias, HOST_NAME)
                raise FieldValueError((index,), f"is not a host name such as 'www.example.com'{hint}", alias)
            if alias in aliases[:index]:
                raise FieldValueError((index,), "is listed twice", alias)

        check_each(enumerate(aliases), check)
        return aliases


# --- CloudFront's path patterns ---------------------------------------------------------------
# CloudFront compares the request's path (not its query string) with each cache behaviour's
# PathPattern in the order the behaviours are listed, the first match wins and the default behaviour
# ('*') comes last; '*' matches 0 or more characters, '?' exactly one; the comparison is
# case-sensitive; a leading '/' makes no difference (CloudFront Developer Guide, "Cache behavior
# settings", Path pattern). An ALB path-pattern condition matches the same way: against the path
# only, case-sensitive, the same two wildcards (Elastic Load Balancing API Reference,
# PathPatternConditionConfig), always with the leading '/' (services.Routing requires it).


def path_pattern_matches(pattern: str, path: str) -> bool:
    """Whether CloudFront's PathPattern ``pattern`` matches the request path ``path`` (see above)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.removeprefix("/"))
    return re.fullmatch(regex, path.removeprefix("/"), re.DOTALL) is not None


def literal_prefix(pattern: str) -> str:
    """What every path ``pattern`` matches starts with: the pattern up to its first wildcard."""
    return re.split(r"[*?]", pattern, maxsplit=1)[0]


def is_catch_all(pattern: str) -> bool:
    """A pattern that matches every path ('/*'): CloudFront's default behaviour serves it."""
    return re.fullmatch(r"/?\*+", pattern) is not None


def lies_under(pattern: str, assets_path: str) -> bool:
    """Whether every path ``pattern`` matches also matches ``assets_path`` ('/<prefix>/*').

    Exactly when the pattern's literal prefix starts with '/<prefix>/': otherwise the literal prefix
    is either apart from it or shorter and followed by a wildcard, which can take a character that
    leaves it (or the pattern ends there, short of the prefix)."""
    return literal_prefix(pattern).startswith(assets_path.removesuffix("*"))
