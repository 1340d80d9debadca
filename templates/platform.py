"""Platform layer: the ECS cluster (Fargate + Fargate Spot), the internet-facing ALB with HTTPS, its
access-log bucket, and a WAF web ACL with AWS's managed rules and a rate limit. Behind CloudFront
(``platform.ingress: cloudfront``, the default) the ALB's security group admits CloudFront only
(``security``), it has no port-80 listener, and the web ACL's rate limit counts the viewer's
address CloudFront forwards in X-Forwarded-For."""

from __future__ import annotations

from typing import Any

from awacs import s3 as s3_actions
from awacs.aws import Principal, StringEquals
from troposphere import AccountId, GetAtt, Ref, Sub, Template, ecs, s3, wafv2
from troposphere import elasticloadbalancingv2 as elb

from infra_templates import constructs, iam
from infra_templates.config import Environment, certificate_id
from infra_templates.layer import LayerContext
from infra_templates.naming import cluster_name
from templates import connect
from templates.contracts import Keys, Network, Platform, Security, alb_health_checked, for_load_balancer

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # TLS 1.3 and 1.2 with forward secrecy only
ACCESS_LOG_PREFIX = "alb"


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "platform")
    t = ctx.new_template("ECS cluster on Fargate and Fargate Spot, HTTPS load balancer with WAF and access logs")

    cluster = t.add_resource(
        ecs.Cluster(
            "Cluster",
            # Named: the release pipeline, in another account, names the cluster in its deploy actions.
            ClusterName=cluster_name(env.project, env.name),
            ClusterSettings=[ecs.ClusterSetting(Name="containerInsights", Value=env.platform.container_insights)],
            CapacityProviders=["FARGATE", "FARGATE_SPOT"],
            DefaultCapacityProviderStrategy=_strategy(env),
        )
    )
    connect.add_namespace(t, ctx, cluster)  # the Service Connect namespace, if the settings have a backend

    if env.platform.container_insights == "disabled":
        constructs.skip_checkov(
            cluster,
            (
                "CKV_AWS_65",
                "platform.container_insights is 'disabled' in this environment's settings (a cost choice): ECS's "
                "own service CPU and memory metrics, which the alarms and scaling use, remain",
            ),
        )
    bucket, bucket_policy = _access_log_bucket(t, ctx)
    albs = [_load_balancer(t, ctx, index, bucket, bucket_policy) for index in range(len(env.load_balancer_groups()))]

    if env.platform.waf.load_balancer:  # else only CloudFront reaches it, through CloudFront's web ACL (config)
        acl = constructs.firewall(
            t,
            env,
            name=ctx.stack_name,
            scope="REGIONAL",
            rate_limit=env.platform.waf_rate_limit,
            # Behind CloudFront every request comes from CloudFront's addresses: count the viewer's.
            forwarded_ip=env.platform.ingress == "cloudfront",
            logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
            retention_days=env.platform.log_retention_days,
        )
        for index, alb in enumerate(albs):
            t.add_resource(
                wafv2.WebACLAssociation(
                    f"WebAclAssociation{_suffix(index)}", ResourceArn=Ref(alb), WebACLArn=GetAtt(acl, "Arn")
                )
            )

    ctx.export(t, Platform.CLUSTER_NAME, Ref(cluster))
    ctx.export(t, Platform.CLUSTER_ARN, GetAtt(cluster, "Arn"))
    for index, alb in enumerate(albs):
        for spec, value in (
            (Platform.LOAD_BALANCER_ARN, Ref(alb)),
            (Platform.LOAD_BALANCER_FULL_NAME, GetAtt(alb, "LoadBalancerFullName")),
            (Platform.LOAD_BALANCER_DNS_NAME, GetAtt(alb, "DNSName")),
            (Platform.LOAD_BALANCER_ZONE_ID, GetAtt(alb, "CanonicalHostedZoneID")),
        ):
            ctx.export(t, for_load_balancer(spec, index), value)
        ctx.export(
            t, for_load_balancer(Platform.HTTPS_LISTENER_ARN, index), Ref(t.resources[f"HttpsListener{_suffix(index)}"])
        )
    ctx.export(t, Platform.LOG_BUCKET_NAME, Ref(bucket))
    return t


def _suffix(index: int) -> str:
    """Logical-ID suffix of the ``index``-th load balancer's resources: none for the first (an
    environment with one load balancer keeps its IDs), ``2``, ``3``... for the others."""
    return "" if index == 0 else str(index + 1)


def _load_balancer(
    t: Template, ctx: LayerContext, index: int, bucket: s3.Bucket, bucket_policy: s3.BucketPolicy
) -> elb.LoadBalancer:
    """The ``index``-th internet-facing ALB (``Environment.load_balancer_groups``: as many as AWS's
    default quotas on target groups and rules per load balancer need) with the security group the
    security layer made for it, its HTTPS listener, test listener and HTTP redirect; access logs
    go to the one bucket."""
    env = ctx.env
    suffix = _suffix(index)
    alb = t.add_resource(
        elb.LoadBalancer(
            f"LoadBalancer{suffix}",
            DependsOn=[bucket_policy.title],  # ELB checks that it may write before it accepts the bucket
            Type="application",
            Scheme="internet-facing",
            IpAddressType="ipv4",
            Subnets=ctx.import_list(Network.PUBLIC_SUBNET_IDS),
            SecurityGroups=_security_groups(ctx, index),
            LoadBalancerAttributes=[
                elb.LoadBalancerAttributes(Key=key, Value=value)
                for key, value in (
                    ("deletion_protection.enabled", _bool(env.platform.deletion_protection)),
                    ("routing.http.drop_invalid_header_fields.enabled", "true"),
                    ("routing.http.desync_mitigation_mode", "strictest"),
                    ("routing.http.x_amzn_tls_version_and_cipher_suite.enabled", "true"),
                    ("access_logs.s3.enabled", "true"),
                    ("access_logs.s3.bucket", Ref(bucket)),
                    ("access_logs.s3.prefix", ACCESS_LOG_PREFIX),
                    ("idle_timeout.timeout_seconds", "60"),
                )
            ],
        )
    )
    t.add_resource(_https_listener(f"HttpsListener{suffix}", env, alb, 443))
    _test_listener(t, ctx, alb, index)
    if env.platform.listens_http:
        t.add_resource(
            elb.Listener(
                f"HttpRedirectListener{suffix}",
                LoadBalancerArn=Ref(alb),
                Port=80,
                Protocol="HTTP",
                DefaultActions=[
                    elb.Action(
                        Type="redirect",
                        RedirectConfig=elb.RedirectConfig(Protocol="HTTPS", Port="443", StatusCode="HTTP_301"),
                    )
                ],
            )
        )
    return alb


def _security_groups(ctx: LayerContext, index: int) -> list[Any]:
    """The load balancer's own group; the first also takes the Route 53 health checkers' group
    when its DR environment fails the API name over by DNS behind CloudFront (``security``)."""
    groups = [ctx.import_value(for_load_balancer(Security.ALB_SECURITY_GROUP, index))]
    if index == 0 and alb_health_checked(ctx.env):
        groups.append(ctx.import_value(Security.ALB_HEALTH_CHECK_SECURITY_GROUP))
    return groups


def _test_listener(t: Template, ctx: LayerContext, alb: elb.LoadBalancer, index: int) -> None:
    """Blue/green releases: CodeDeploy routes this port to the new tasks before shifting production
    traffic, so they can be tried first. Only on a load balancer with a blue-green service; the
    security layer opens the port to the VPC only."""
    env = ctx.env
    if not any(env.strategy_of(s) == "blue-green" for s in env.load_balancer_groups()[index]):
        return
    listener = t.add_resource(
        _https_listener(f"TestListener{_suffix(index)}", env, alb, env.deployment.test_listener_port)
    )
    ctx.export(t, for_load_balancer(Platform.TEST_LISTENER_ARN, index), Ref(listener))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _strategy(env: Environment) -> list[ecs.CapacityProviderStrategyItem]:
    capacity = env.platform.capacity
    return [
        ecs.CapacityProviderStrategyItem(
            CapacityProvider="FARGATE", Base=capacity.fargate_base, Weight=capacity.fargate_weight
        ),
        ecs.CapacityProviderStrategyItem(CapacityProvider="FARGATE_SPOT", Weight=capacity.spot_weight),
    ]


def _access_log_bucket(t: Template, ctx: LayerContext) -> tuple[s3.Bucket, s3.BucketPolicy]:
    env = ctx.env
    # ALB access-log delivery writes with SSE-S3 only: a KMS default would make delivery fail.
    bucket = constructs.private_bucket(
        "AccessLogBucket", env, kms_key_arn=None, expire_days=env.platform.access_log_expiration_days
    )
    constructs.skip_checkov(
        bucket,
        ("CKV_AWS_18", "this is the environment's access-log bucket; logging its own access to itself would loop"),
    )
    # CloudFront's standard logging writes with an ACL grant to its log-delivery account, so this
    # one bucket keeps ACLs enabled (the writer's objects become the bucket owner's); public ACLs
    # stay blocked. Every other bucket enforces ownership with ACLs off.
    bucket.OwnershipControls = s3.OwnershipControls(
        Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerPreferred")]
    )
    t.add_resource(bucket)
    delivery = iam.allow(
        "LoadBalancerWritesAccessLogs",
        [s3_actions.PutObject],
        [Sub("${%s.Arn}/%s/AWSLogs/${AWS::AccountId}/*" % (bucket.title, ACCESS_LOG_PREFIX))],
        principal=constructs.elb_log_delivery(env.region),
    )
    policy = t.add_resource(
        s3.BucketPolicy(
            "AccessLogBucketPolicy",
            Bucket=Ref(bucket),
            PolicyDocument=iam.document(
                constructs.deny_insecure_transport(bucket),
                delivery,
                iam.allow(
                    "S3WritesServerAccessLogsOfThisAccount",
                    [s3_actions.PutObject],
                    [Sub("${%s.Arn}/s3/*" % bucket.title)],
                    conditions=[StringEquals("aws:SourceAccount", AccountId)],
                    principal=Principal("Service", "logging.s3.amazonaws.com"),
                ),
            ),
        )
    )
    return bucket, policy


def _https_listener(logical_id: str, env: Environment, alb: elb.LoadBalancer, port: int) -> elb.Listener:
    """An HTTPS listener with the modern TLS policy, the settings' certificate (checked to be in
    this account and region) and a fixed 404 for whatever no rule claims."""
    return elb.Listener(
        logical_id,
        LoadBalancerArn=Ref(alb),
        Port=port,
        Protocol="HTTPS",
        SslPolicy=TLS_POLICY,
        Certificates=[
            elb.Certificate(
                CertificateArn=Sub(
                    "arn:${AWS::Partition}:acm:${AWS::Region}:${AWS::AccountId}:certificate/"
                    + certificate_id(env.platform.certificate_arn)
                )
            )
        ],
        DefaultActions=[
            elb.Action(
                Type="fixed-response",
                FixedResponseConfig=elb.FixedResponseConfig(
                    StatusCode="404", ContentType="text/plain", MessageBody="Not found"
                ),
            )
        ],
    )
