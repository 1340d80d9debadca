"""Platform settings: the cluster, the load balancer, its firewalls (WAF) and the image registry."""

from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from infra_templates.settings.common import FieldValueError, Strict, check_region, check_retention, quoted_string
from infra_templates.settings.services import Capacity


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
        "'internet' anyone, on HTTPS and the HTTP redirect. Behind CloudFront a service's routing.hosts and a "
        "second load balancer are refused: CloudFront sends the origin's name as Host and reaches the first only.",
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

    _retention = field_validator("log_retention_days")(lambda cls, days: check_retention(days))

    @model_validator(mode="after")
    def _prefix_list(self) -> "Platform":
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

    account_id: Annotated[str, BeforeValidator(quoted_string)] = Field(pattern=r"^[0-9]{12}$")
    region: str
    keep_release_images: int = Field(ge=1, le=1000, description="Tagged images kept per repository.")
    untagged_expire_days: int = Field(ge=1, le=365, description="Days before an untagged image is deleted.")

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        return check_region(region)
