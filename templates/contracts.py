"""Every name a layer exports, in one place: imported by the layer that exports it and by the
layers that read it, so a renamed export breaks at build time in Python, not at deploy time."""

from fnmatch import fnmatchcase

from infra_templates.config import Environment
from infra_templates.layer import ExportSpec


class Keys:
    LOGS_KEY_ARN = ExportSpec("keys", "LogsKeyArn", "KMS key that encrypts every log group of the environment")
    DATA_KEY_ARN = ExportSpec("keys", "DataKeyArn", "KMS key of the environment's data: database, its secret, assets")
    BACKUP_VAULT_ARN = ExportSpec("keys", "BackupVaultArn", "AWS Backup vault of the environment's data, and DR copies")


class Network:
    VPC_ID = ExportSpec("network", "VpcId", "VPC id")
    VPC_CIDR = ExportSpec("network", "VpcCidr", "VPC IPv4 CIDR block")
    PUBLIC_SUBNET_IDS = ExportSpec("network", "PublicSubnetIds", "Public subnet ids, comma-separated, one per zone")
    PRIVATE_SUBNET_IDS = ExportSpec(
        "network", "PrivateSubnetIds", "Private application subnet ids (egress through NAT), comma-separated"
    )
    DATA_SUBNET_IDS = ExportSpec(
        "network", "DataSubnetIds", "Isolated data subnet ids (no route to the internet), comma-separated"
    )
    NAT_GATEWAY_IDS = ExportSpec(
        "network", "NatGatewayIds", "NAT gateway ids, comma-separated, in zone order (one when shared)"
    )


class Security:
    ALB_SECURITY_GROUP = ExportSpec("security", "AlbSecurityGroupId", "Security group of the load balancer")
    ALB_HEALTH_CHECK_SECURITY_GROUP = ExportSpec(
        "security", "AlbHealthCheckSecurityGroupId", "Second group of the first load balancer: Route 53 health checkers"
    )
    DATABASE_SECURITY_GROUP = ExportSpec(
        "security", "DatabaseSecurityGroupId", "Security group of the database: its port, from services that may"
    )


def alb_health_checked(env: Environment) -> bool:
    """Whether the first load balancer also takes ``Security.ALB_HEALTH_CHECK_SECURITY_GROUP``:
    behind CloudFront, in a primary whose DR environment fails the API name over by DNS (``dns``),
    Route 53's health checkers need their own way in."""
    return env.platform.ingress == "cloudfront" and env.standby is not None and env.standby.dns is not None


class Platform:
    CLUSTER_NAME = ExportSpec("platform", "ClusterName", "ECS cluster name")
    CLUSTER_ARN = ExportSpec("platform", "ClusterArn", "ECS cluster ARN")
    HTTPS_LISTENER_ARN = ExportSpec("platform", "HttpsListenerArn", "The ALB's HTTPS listener")
    LOAD_BALANCER_ARN = ExportSpec("platform", "LoadBalancerArn", "The ALB")
    LOAD_BALANCER_FULL_NAME = ExportSpec("platform", "LoadBalancerFullName", "The ALB's name in CloudWatch metrics")
    LOAD_BALANCER_DNS_NAME = ExportSpec("platform", "LoadBalancerDnsName", "The ALB's DNS name")
    LOAD_BALANCER_ZONE_ID = ExportSpec(
        "platform", "LoadBalancerHostedZoneId", "The ALB's canonical hosted zone (a Route 53 alias target)"
    )
    LOG_BUCKET_NAME = ExportSpec("platform", "LogBucketName", "Bucket of the environment's access logs")
    TEST_LISTENER_ARN = ExportSpec(
        "platform", "TestListenerArn", "The ALB's test listener: a blue/green release's new tasks before the shift"
    )
    SERVICE_CONNECT_NAMESPACE_ARN = ExportSpec(
        "platform", "ServiceConnectNamespaceArn", "Cloud Map HTTP namespace of the services' Service Connect names"
    )


def service_group(service: str) -> ExportSpec:
    """The own security group of ``service``'s stack, exported where it takes part in Service Connect
    (templates/connect.py opens a backend's port to its callers' groups)."""
    return ExportSpec(f"svc-{service}", "ServiceSecurityGroupId", f"Security group of the {service} service")


def for_load_balancer(spec: ExportSpec, index: int) -> ExportSpec:
    """The export of the environment's ``index``-th load balancer (from 0; see
    ``Environment.load_balancer_groups``): the first keeps the plain name, so an environment with
    one load balancer exports exactly what it always did; the second adds ``2`` to the key."""
    if index == 0:
        return spec
    return ExportSpec(
        spec.layer, f"{spec.key}{index + 1}", f"{spec.description} (load balancer {index + 1})", spec.scope
    )


class Data:
    CLUSTER_IDENTIFIER = ExportSpec("data", "ClusterIdentifier", "Aurora cluster identifier")
    ENDPOINT = ExportSpec("data", "ClusterEndpoint", "Writer endpoint")
    READER_ENDPOINT = ExportSpec("data", "ReaderEndpoint", "Reader endpoint")
    PORT = ExportSpec("data", "Port", "Database port")
    SECRET_ARN = ExportSpec("data", "SecretArn", "Secrets Manager secret of the administrator (for ECS Secrets)")
    SECRET_RESOURCE = ExportSpec("data", "SecretResource", "The administrator secret's ARN as IAM policies name it")
    DATABASE_NAME = ExportSpec("data", "DatabaseName", "Name of the first database")
    CLUSTER_RESOURCE_ID = ExportSpec(
        "data", "ClusterResourceId", "The cluster's resource id, which names its users in rds-db:connect ARNs"
    )
    MASTER_ROTATION_FUNCTION = ExportSpec(
        "data", "MasterRotationFunctionName", "The administrator secret's rotation function (alarmed on its errors)"
    )


class OriginVerify:
    ROTATION_FUNCTION = ExportSpec(
        "origin-verify", "RotationFunctionName", "The origin-verify secret's rotation function (alarmed on its errors)"
    )


def database_user(service: str) -> str:
    """The database user a service signs in as with IAM database authentication (``svc_`` and the
    service's name, hyphens as underscores: a name both engines take unquoted), created by the data
    layer and named by the service's task role (``rds-db:connect``)."""
    return "svc_" + service.replace("-", "_")


class EdgeFirewall:
    """Outputs (not exports: they are read from another region) of the us-east-1 firewall stack."""

    WEB_ACL_ARN = ExportSpec("edge-waf", "WebAclArn", "CloudFront web ACL (us-east-1)")


class AssetsReplica:
    """A DR environment's copy of its primary's static assets: exported for its own edge stack,
    and read as outputs by the primary's edge stack in the other region (which replicates into it)."""

    BUCKET_NAME = ExportSpec("assets-replica", "ReplicaBucketName", "Bucket the primary's static assets replicate to")
    BUCKET_ARN = ExportSpec("assets-replica", "ReplicaBucketArn", "ARN of the bucket the primary's assets replicate to")
    BUCKET_DOMAIN = ExportSpec(
        "assets-replica", "ReplicaBucketDomainName", "Regional domain name of the replica bucket (a CloudFront origin)"
    )


def dns_checked_service(env: Environment) -> str | None:
    """The web service whose health the Route 53 check of DNS failover follows (templates/dns.py),
    or None (no ``dr.dns``, or no service covers the path): the first by priority, on the first load
    balancer (the one health-checked), without a host condition (the checkers send the load
    balancer's own name as Host) and with a path pattern matching ``dr.dns.health_check_path``
    (``*`` and ``?`` wildcards, case-sensitive: "Listener rules for your Application Load Balancer",
    path conditions)."""
    if env.standby is None or env.standby.dns is None:
        return None
    path = env.standby.dns.health_check_path
    priorities = env.listener_priorities()
    candidates = [name for name in env.load_balancer_groups()[0] if name in priorities]
    for name in sorted(candidates, key=priorities.__getitem__):
        routing = env.service_routing(name)
        if not routing.hosts and any(fnmatchcase(path, pattern) for pattern in routing.paths):
            return name
    return None


def target_group_full_name(service: str, target_group: str) -> ExportSpec:
    """The CloudWatch name (``TargetGroupFullName``) of ``service``'s target group ``target_group``
    (its logical id: TargetGroup, GreenTargetGroup), for the dns stack's alarm on its healthy targets."""
    return ExportSpec(
        f"svc-{service}", f"{target_group}FullName", f"{service}'s {target_group} in CloudWatch metrics (dns reads it)"
    )


class Dns:
    """Outputs of a primary's dns stack, read by its us-east-1 alarms (Route 53's metrics are there)
    and the DR runbook."""

    HEALTH_CHECK_ID = ExportSpec(
        "dns", "PrimaryHealthCheckId", "Route 53 check of this environment's API: load balancer and healthy targets"
    )
    LOAD_BALANCER_CHECK_ID = ExportSpec(
        "dns", "LoadBalancerHealthCheckId", "Route 53 HTTPS check of the load balancer (answered by the load balancer)"
    )
    FAILOVER_GATE_ID = ExportSpec(
        "dns", "FailoverGateHealthCheckId", "Route 53 check the primary record follows: healthy until opened"
    )


class Edge:
    ASSETS_BUCKET_NAME = ExportSpec("edge", "AssetsBucketName", "Static-assets bucket")
    ASSETS_BUCKET_ARN = ExportSpec("edge", "AssetsBucketArn", "Static-assets bucket ARN")
    DISTRIBUTION_ID = ExportSpec("edge", "DistributionId", "CloudFront distribution id")
    DISTRIBUTION_DOMAIN = ExportSpec("edge", "DistributionDomainName", "CloudFront distribution domain name")


def assets_bucket_arn(env: Environment) -> ExportSpec:
    """Where an environment's static assets are: its edge bucket, or in a DR environment the
    replica its primary's assets replicate to."""
    return AssetsReplica.BUCKET_ARN if env.dr is not None else Edge.ASSETS_BUCKET_ARN


class Delivery:
    """Exports of the project's shared delivery stack, read by each service's delivery stack."""

    ARTIFACT_BUCKET_NAME = ExportSpec("delivery", "ArtifactBucketName", "Bucket of the pipelines' artifacts", "project")
    ARTIFACT_BUCKET_ARN = ExportSpec("delivery", "ArtifactBucketArn", "Bucket of the pipelines' artifacts", "project")
    ARTIFACT_KEY_ARN = ExportSpec("delivery", "ArtifactKeyArn", "KMS key of the pipelines' artifacts", "project")
    NOTIFICATION_TOPIC_ARN = ExportSpec(
        "delivery", "NotificationTopicArn", "SNS topic of approvals and failed releases", "project"
    )


class Monitoring:
    ALARM_TOPIC_ARN = ExportSpec("monitoring", "AlarmTopicArn", "SNS topic every alarm of the environment notifies")
    PAGING_TOPIC_ARN = ExportSpec("monitoring", "PagingTopicArn", "SNS topic paging alarms and failed releases page")


class Registry:
    KEY_ARN = ExportSpec("registry", "RegistryKeyArn", "KMS key of the container image repositories", "project")
