"""Platform layer: the ECS cluster (Fargate + Fargate Spot), the internet-facing ALB with HTTPS, its
access-log bucket, and a WAF web ACL with AWS's managed rules and a rate limit."""

from __future__ import annotations

from awacs import s3 as s3_actions
from troposphere import GetAtt, Ref, Sub, Template, ecs, s3, wafv2
from troposphere import elasticloadbalancingv2 as elb

from infra_templates import constructs, iam
from infra_templates.config import Environment, certificate_id
from infra_templates.layer import LayerContext
from templates.contracts import WAF_LOG_PREFIX, Keys, Network, Platform, Security

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # TLS 1.3 and 1.2 with forward secrecy only
ACCESS_LOG_PREFIX = "alb"
MANAGED_RULE_GROUPS = (
    # (name, why) in evaluation order after the rate limit
    ("AWSManagedRulesAmazonIpReputationList", "sources known for bots and reconnaissance"),
    ("AWSManagedRulesCommonRuleSet", "OWASP top-ten style exploits"),
    ("AWSManagedRulesKnownBadInputsRuleSet", "request patterns known to be malicious, Log4Shell among them"),
)


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "platform")
    t = ctx.new_template("ECS cluster on Fargate and Fargate Spot, HTTPS load balancer with WAF and access logs")

    cluster = t.add_resource(
        ecs.Cluster(
            "Cluster",
            ClusterSettings=[ecs.ClusterSetting(Name="containerInsights", Value="enabled")],
            CapacityProviders=["FARGATE", "FARGATE_SPOT"],
            DefaultCapacityProviderStrategy=_strategy(env),
        )
    )

    bucket, bucket_policy = _access_log_bucket(t, ctx)
    alb = t.add_resource(
        elb.LoadBalancer(
            "LoadBalancer",
            DependsOn=[bucket_policy.title],  # ELB checks that it may write before it accepts the bucket
            Type="application",
            Scheme="internet-facing",
            IpAddressType="ipv4",
            Subnets=ctx.import_list(Network.PUBLIC_SUBNET_IDS),
            SecurityGroups=[ctx.import_value(Security.ALB_SECURITY_GROUP)],
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
    https = t.add_resource(
        elb.Listener(
            "HttpsListener",
            LoadBalancerArn=Ref(alb),
            Port=443,
            Protocol="HTTPS",
            SslPolicy=TLS_POLICY,
            # The settings checked that the certificate is in this account and region.
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
    )
    if env.platform.http_redirect:
        t.add_resource(
            elb.Listener(
                "HttpRedirectListener",
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

    _firewall(t, ctx, alb)

    ctx.export(t, Platform.CLUSTER_NAME, Ref(cluster))
    ctx.export(t, Platform.CLUSTER_ARN, GetAtt(cluster, "Arn"))
    ctx.export(t, Platform.LOAD_BALANCER_ARN, Ref(alb))
    ctx.export(t, Platform.LOAD_BALANCER_FULL_NAME, GetAtt(alb, "LoadBalancerFullName"))
    ctx.export(t, Platform.LOAD_BALANCER_DNS_NAME, GetAtt(alb, "DNSName"))
    ctx.export(t, Platform.HTTPS_LISTENER_ARN, Ref(https))
    ctx.export(t, Platform.LOG_BUCKET_NAME, Ref(bucket))
    return t


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
            PolicyDocument=iam.document(constructs.deny_insecure_transport(bucket), delivery),
        )
    )
    return bucket, policy


def _firewall(t: Template, ctx: LayerContext, alb: elb.LoadBalancer) -> None:
    env = ctx.env
    metric = ctx.stack_name.replace("-", "")

    def visibility(name: str) -> wafv2.VisibilityConfig:
        return wafv2.VisibilityConfig(
            CloudWatchMetricsEnabled=True, SampledRequestsEnabled=True, MetricName=f"{metric}{name}"
        )

    rules = [
        wafv2.WebACLRule(
            Name="RateLimitPerIp",
            Priority=0,
            Action=wafv2.RuleAction(Block=wafv2.BlockAction()),
            Statement=wafv2.Statement(
                RateBasedStatement=wafv2.RateBasedStatement(
                    Limit=env.platform.waf_rate_limit, AggregateKeyType="IP", EvaluationWindowSec=300
                )
            ),
            VisibilityConfig=visibility("RateLimitPerIp"),
        )
    ]
    for priority, (group, _why) in enumerate(MANAGED_RULE_GROUPS, start=1):
        rules.append(
            wafv2.WebACLRule(
                Name=group,
                Priority=priority,
                OverrideAction=wafv2.OverrideAction(**{"None": {}}),
                Statement=wafv2.Statement(
                    ManagedRuleGroupStatement=wafv2.ManagedRuleGroupStatement(VendorName="AWS", Name=group)
                ),
                VisibilityConfig=visibility(group),
            )
        )
    acl = t.add_resource(
        wafv2.WebACL(
            "WebAcl",
            # WAF descriptions allow letters, digits, spaces and = : # @ / - , . only.
            Description=f"{ctx.stack_name} - rate limit per IP, then AWS managed rules - "
            + ", ".join(group.removeprefix("AWSManagedRules") for group, _ in MANAGED_RULE_GROUPS),
            Scope="REGIONAL",
            DefaultAction=wafv2.DefaultAction(Allow=wafv2.AllowAction()),
            Rules=rules,
            VisibilityConfig=visibility("WebAcl"),
        )
    )
    t.add_resource(wafv2.WebACLAssociation("WebAclAssociation", ResourceArn=Ref(alb), WebACLArn=GetAtt(acl, "Arn")))
    # WAF writes only to log groups whose names start with aws-waf-logs-; the logs key trusts them.
    group = constructs.log_group(
        "WafLogGroup", env, env.platform.log_retention_days, ctx.import_value(Keys.LOGS_KEY_ARN)
    )
    group.LogGroupName = f"{WAF_LOG_PREFIX}{ctx.stack_name}"
    t.add_resource(group)
    t.add_resource(
        wafv2.LoggingConfiguration(
            "WafLogging",
            ResourceArn=GetAtt(acl, "Arn"),
            # WAF wants the log group's ARN without the ":*" that GetAtt Arn ends with.
            LogDestinationConfigs=[
                Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${%s}" % group.title)
            ],
        )
    )
