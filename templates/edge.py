"""Edge layer: a private static-assets bucket served by CloudFront through Origin Access Control,
and every web service's route behind the same distribution, over HTTPS to the ALB, uncached.
Security headers, TLS 1.2+, HTTP/2 and HTTP/3, compression, access logs and a WAF web ACL.

Behaviours, in CloudFront's order (the first whose path pattern matches wins, the default last):
``edge.assets_path`` from the bucket; one per distinct path pattern of the web services CloudFront
reaches (``Environment.cloudfront_routes``: the first load balancer's, routed by path) to the load
balancer; the default behaviour to the load balancer when one of them owns '/*'
(``cloudfront_default_to_load_balancer``), else to the bucket. A route's behaviour carries the
route's own pattern: CloudFront and the ALB match a pattern the same way (``settings.edge``).

With a DR environment standing by, the assets bucket replicates to the DR environment's replica
bucket (``assets-replica``), and the assets behaviours reach an origin group that fails over to
that replica. The load balancer's behaviours take every method, and CloudFront fails over only
behaviours limited to GET, HEAD and OPTIONS: the origin name moves by DNS instead (``dns``).
A DR environment's edge stack serves its replica bucket rather than a bucket of its own.
"""

from __future__ import annotations

from typing import Any

from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs.aws import Principal, StringEquals, StringLike
from troposphere import GetAtt, Ref, Sub, Template, cloudfront, s3
from troposphere import iam as iam_resources

from infra_templates import constructs, iam
from infra_templates.config import CLOUDFRONT_REGION, Environment
from infra_templates.layer import LayerContext
from templates import origin_verify
from templates.contracts import AssetsReplica, Edge, EdgeFirewall, Keys, Platform

# AWS-managed CloudFront policies (their ids are the same in every account).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
# Every viewer header, cookie and query string, except Host: CloudFront must present the origin's
# own name to the ALB, or its certificate check fails.
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
ASSETS = "assets"
ASSETS_STANDBY = "assets-standby"
ASSETS_GROUP = "assets-failover"
LOAD_BALANCER = "load-balancer"
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
# What the assets origin answers when its region is in trouble (403: the key or bucket is
# unreachable; 404: an object not replicated back yet is still looked for in the other copy).
FAILOVER_STATUS_CODES = [403, 404, 500, 502, 503, 504]
S3_BUCKET_ARN = r"^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
S3_REGIONAL_DOMAIN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\.s3\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
DISTRIBUTION_ID = r"^[A-Z0-9]{6,20}$"


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "edge")
    edge = env.edge
    t = ctx.new_template("static assets in S3 and the API behind one CloudFront distribution")
    log_bucket = ctx.import_value(Platform.LOG_BUCKET_NAME)

    bucket_name: Any
    bucket_arn: Any
    bucket_domain: Any
    standby_domain: Any = None
    if env.dr is not None:
        # A DR environment serves the copy its primary replicates into it.
        bucket_name = ctx.import_value(AssetsReplica.BUCKET_NAME)
        bucket_arn = ctx.import_value(AssetsReplica.BUCKET_ARN)
        bucket_domain = ctx.import_value(AssetsReplica.BUCKET_DOMAIN)
    else:
        bucket = constructs.private_bucket(
            "AssetsBucket",
            env,
            kms_key_arn=ctx.import_value(Keys.DATA_KEY_ARN),
            expire_days=None,
            noncurrent_days=edge.noncurrent_asset_days,
        )
        bucket.LoggingConfiguration = s3.LoggingConfiguration(
            DestinationBucketName=log_bucket, LogFilePrefix=f"s3/{ctx.stack_name}-assets/"
        )
        t.add_resource(bucket)
        bucket_name, bucket_arn, bucket_domain = (
            Ref(bucket),
            GetAtt(bucket, "Arn"),
            GetAtt(bucket, "RegionalDomainName"),
        )
        standby_domain = _replicate(t, ctx, bucket) if env.standby is not None else None

    access = t.add_resource(
        cloudfront.OriginAccessControl(
            "OriginAccessControl",
            OriginAccessControlConfig=cloudfront.OriginAccessControlConfig(
                Name=f"{ctx.stack_name}-assets",
                Description="CloudFront signs every request to the assets bucket",
                OriginAccessControlOriginType="s3",
                SigningBehavior="always",
                SigningProtocol="sigv4",
            ),
        )
    )
    headers = t.add_resource(_security_headers(ctx))
    web_acl: Any = None
    if not env.platform.waf.cloudfront:
        pass  # platform.waf.cloudfront: false; the load balancer's web ACL filters what reaches the origin
    elif env.region == CLOUDFRONT_REGION:
        acl = constructs.firewall(
            t,
            env,
            name=f"{ctx.stack_name}-cloudfront",
            scope="CLOUDFRONT",
            rate_limit=env.platform.waf_rate_limit,
            logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
            retention_days=env.platform.log_retention_days,
        )
        web_acl = GetAtt(acl, "Arn")
    else:
        # The firewall stack is in us-east-1 whatever the reader's region (a DR folder deploys its
        # primary's edge stack, and lists not the primary's firewall stack): say so.
        web_acl = Ref(ctx.parameter_from(t, EdgeFirewall.WEB_ACL_ARN, region=CLOUDFRONT_REGION))

    assets_origin = ASSETS_GROUP if standby_domain else ASSETS
    to_load_balancer = env.cloudfront_default_to_load_balancer()
    routes = env.cloudfront_routes()
    distribution = t.add_resource(
        cloudfront.Distribution(
            "Distribution",
            DistributionConfig=cloudfront.DistributionConfig(
                Comment=_comment(ctx.stack_name, edge.assets_path, to_load_balancer, len(routes)),
                Enabled=True,
                HttpVersion="http2and3",
                IPV6Enabled=True,
                PriceClass=edge.price_class,
                # The root URL's object comes from the default behaviour's origin: only the bucket has it.
                **({} if to_load_balancer else {"DefaultRootObject": edge.default_root_object}),
                Origins=[
                    _bucket_origin(ASSETS, bucket_domain, access),
                    *([_bucket_origin(ASSETS_STANDBY, standby_domain, access)] if standby_domain else []),
                    *([_alb_origin(env)] if to_load_balancer or routes else []),
                ],
                DefaultCacheBehavior=(
                    # The site's entry: a viewer on http:// is redirected (as the ALB's own port-80
                    # listener does with ingress: internet); HSTS keeps browsers on https after that.
                    _load_balancer_behaviour(cloudfront.DefaultCacheBehavior, headers, "redirect-to-https")
                    if to_load_balancer
                    else _assets_behaviour(cloudfront.DefaultCacheBehavior, assets_origin, headers)
                ),
                CacheBehaviors=[
                    _assets_behaviour(cloudfront.CacheBehavior, assets_origin, headers, PathPattern=edge.assets_path),
                    # An API call must not be redirected: a POST would turn into a GET.
                    *(
                        _load_balancer_behaviour(cloudfront.CacheBehavior, headers, "https-only", PathPattern=route)
                        for route in routes
                    ),
                ],
                ViewerCertificate=_certificate(env),
                Logging=cloudfront.Logging(
                    Bucket=Sub("${LogBucket}.s3.${AWS::URLSuffix}", LogBucket=log_bucket),
                    Prefix=f"cloudfront/{ctx.stack_name}/",
                    IncludeCookies=False,
                ),
                **({"WebACLId": web_acl} if web_acl is not None else {}),
            ),
        )
    )
    if web_acl is None:
        constructs.skip_checkov(
            distribution,
            (
                "CKV_AWS_68",
                "platform.waf.cloudfront is false in this environment's settings (a cost choice): requests to "
                "the load balancer pass its own web ACL; the static assets are not filtered",
            ),
        )
    if standby_domain is not None:
        distribution.properties["DistributionConfig"].OriginGroups = _failover_group()
    if edge.aliases:
        distribution.properties["DistributionConfig"].Aliases = edge.aliases
    else:
        constructs.skip_checkov(
            distribution,
            (
                "CKV_AWS_174",
                "no edge.aliases in this environment's settings: CloudFront serves its own *.cloudfront.net "
                "name with its default certificate, whose minimum protocol it fixes itself; give aliases and "
                "a certificate to get TLSv1.2_2021",
            ),
        )

    readers = [distribution_arn(distribution.title)]
    if env.dr is not None:
        # The primary's distribution fails over to this bucket: it reads here too.
        primary = ctx.parameter_from(t, Edge.DISTRIBUTION_ID, DISTRIBUTION_ID, environment=env.dr.protects)
        readers.append(distribution_arn(primary.title))
    t.add_resource(
        s3.BucketPolicy(
            "AssetsBucketPolicy",
            Bucket=bucket_name,
            PolicyDocument=iam.document(
                constructs.deny_insecure_transport(bucket_arn),
                iam.allow(
                    "DistributionsReadAssets" if len(readers) > 1 else "ThisDistributionReadsAssets",
                    [s3_actions.GetObject],
                    [Sub("${Bucket}/*", Bucket=bucket_arn)],
                    conditions=[StringEquals("AWS:SourceArn", readers if len(readers) > 1 else readers[0])],
                    principal=Principal("Service", "cloudfront.amazonaws.com"),
                ),
            ),
        )
    )

    if env.dr is None:  # a DR environment's bucket is exported by the assets-replica stack
        ctx.export(t, Edge.ASSETS_BUCKET_NAME, bucket_name)
        ctx.export(t, Edge.ASSETS_BUCKET_ARN, bucket_arn)
    ctx.export(t, Edge.DISTRIBUTION_ID, Ref(distribution))
    ctx.export(t, Edge.DISTRIBUTION_DOMAIN, GetAtt(distribution, "DomainName"))
    return t


def replication_rule_id(env: Environment) -> str:
    """The assets bucket's replication rule (a dimension of S3's replication metrics)."""
    assert env.standby is not None
    return f"assets-to-{env.standby.environment}"


def distribution_arn(name: str) -> Sub:
    """The ARN of the distribution whose id is the template's resource or parameter ``name``."""
    return Sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${%s}" % name)


def _comment(stack: str, assets_path: str, to_load_balancer: bool, routes: int) -> str:
    if to_load_balancer:
        return f"{stack}: {assets_path} from S3, everything else from the ALB"
    return f"{stack}: {routes} route(s) from the ALB, everything else from S3 ({assets_path} first)"


def _alb_origin(env: Environment) -> cloudfront.Origin:
    """The first load balancer, by the name ``edge.origin_domain`` (a DNS record of it that
    ``platform.certificate_arn`` covers: CloudFront checks the certificate against the name), over
    HTTPS only, TLS 1.2."""
    return cloudfront.Origin(
        Id=LOAD_BALANCER,
        DomainName=env.edge.origin_domain,
        CustomOriginConfig=cloudfront.CustomOriginConfig(
            OriginProtocolPolicy="https-only",
            HTTPSPort=443,
            OriginSSLProtocols=["TLSv1.2"],
        ),
        **origin_verify.custom_headers(env),  # the secret header the load balancer's rules require
    )


def _load_balancer_behaviour(kind: Any, headers: Any, viewer: str, **path: str) -> Any:
    """Every method to the load balancer, uncached, with every viewer header, cookie and query
    string but Host (``ALL_VIEWER_EXCEPT_HOST``)."""
    return kind(
        **path,
        TargetOriginId=LOAD_BALANCER,
        ViewerProtocolPolicy=viewer,
        AllowedMethods=ALL_METHODS,
        CachedMethods=["GET", "HEAD"],
        Compress=True,
        CachePolicyId=CACHING_DISABLED,
        OriginRequestPolicyId=ALL_VIEWER_EXCEPT_HOST,
        ResponseHeadersPolicyId=Ref(headers),
    )


def _assets_behaviour(kind: Any, origin: str, headers: Any, **path: str) -> Any:
    """The bucket (or its failover group), cached. Only GET, HEAD and OPTIONS: what CloudFront
    allows an origin group to fail over."""
    return kind(
        **path,
        TargetOriginId=origin,
        ViewerProtocolPolicy="redirect-to-https",
        AllowedMethods=["GET", "HEAD", "OPTIONS"],
        CachedMethods=["GET", "HEAD"],
        Compress=True,
        CachePolicyId=CACHING_OPTIMIZED,
        ResponseHeadersPolicyId=Ref(headers),
    )


def _bucket_origin(origin_id: str, domain: Any, access: cloudfront.OriginAccessControl) -> cloudfront.Origin:
    return cloudfront.Origin(
        Id=origin_id,
        DomainName=domain,
        OriginAccessControlId=GetAtt(access, "Id"),
        S3OriginConfig=cloudfront.S3OriginConfig(OriginAccessIdentity=""),
    )


def _failover_group() -> cloudfront.OriginGroups:
    return cloudfront.OriginGroups(
        Quantity=1,
        Items=[
            cloudfront.OriginGroup(
                Id=ASSETS_GROUP,
                FailoverCriteria=cloudfront.OriginGroupFailoverCriteria(
                    StatusCodes=cloudfront.StatusCodes(Quantity=len(FAILOVER_STATUS_CODES), Items=FAILOVER_STATUS_CODES)
                ),
                Members=cloudfront.OriginGroupMembers(
                    Quantity=2,
                    Items=[cloudfront.OriginGroupMember(OriginId=o) for o in (ASSETS, ASSETS_STANDBY)],
                ),
            )
        ],
    )


def _replicate(t: Template, ctx: LayerContext, bucket: s3.Bucket) -> Any:
    """Replicate every object, delete marker and tag of the assets bucket to the DR environment's
    replica bucket, re-encrypted there with its key; return the replica's domain name.

    The role's policy is a resource of its own: the bucket names the role, and the policy names
    the bucket, so one resource holding both would be a circular dependency.
    """
    standby = ctx.env.standby
    assert standby is not None
    replica_arn = Ref(ctx.parameter_from(t, AssetsReplica.BUCKET_ARN, S3_BUCKET_ARN, environment=standby.environment))
    # The DR environment's data key, which encrypts its replica bucket.
    replica_key = Ref(ctx.parameter_from(t, Keys.DATA_KEY_ARN, environment=standby.environment))
    replica_domain = Ref(
        ctx.parameter_from(t, AssetsReplica.BUCKET_DOMAIN, S3_REGIONAL_DOMAIN, environment=standby.environment)
    )
    source_key = ctx.import_value(Keys.DATA_KEY_ARN)
    role = t.add_resource(
        iam_resources.Role(
            "ReplicationRole",
            Description=f"S3 replicates the assets of {ctx.stack_name} to {standby.environment} ({standby.region})",
            AssumeRolePolicyDocument=iam.service_trust("s3.amazonaws.com"),
        )
    )
    source_arn = GetAtt(bucket, "Arn")
    source_objects = Sub("${%s.Arn}/*" % bucket.title)
    # With S3 Bucket Keys the encryption context is the bucket's ARN, without them the object's.
    t.add_resource(
        iam_resources.PolicyType(
            "ReplicationPolicy",
            PolicyName="replicate-assets",
            Roles=[Ref(role)],
            PolicyDocument=iam.document(
                iam.allow(
                    "ReadReplicationConfiguration",
                    [s3_actions.GetReplicationConfiguration, s3_actions.ListBucket],
                    [source_arn],
                ),
                iam.allow(
                    "ReadSourceVersions",
                    [
                        s3_actions.GetObjectVersionForReplication,
                        s3_actions.GetObjectVersionAcl,
                        s3_actions.GetObjectVersionTagging,
                    ],
                    [source_objects],
                ),
                iam.allow(
                    "WriteReplica",
                    [s3_actions.ReplicateObject, s3_actions.ReplicateDelete, s3_actions.ReplicateTags],
                    [Sub("${Bucket}/*", Bucket=replica_arn)],
                ),
                iam.allow(
                    "DecryptSourceThroughS3",
                    [kms_actions.Decrypt],
                    [source_key],
                    conditions=[
                        StringEquals("kms:ViaService", Sub("s3.${AWS::Region}.amazonaws.com")),
                        StringLike("kms:EncryptionContext:aws:s3:arn", [source_arn, source_objects]),
                    ],
                ),
                iam.allow(
                    "EncryptReplicaThroughS3",
                    [kms_actions.Encrypt, kms_actions.GenerateDataKey],
                    [replica_key],
                    conditions=[
                        StringEquals("kms:ViaService", f"s3.{standby.region}.amazonaws.com"),
                        StringLike(
                            "kms:EncryptionContext:aws:s3:arn", [replica_arn, Sub("${Bucket}/*", Bucket=replica_arn)]
                        ),
                    ],
                ),
            ),
        )
    )
    bucket.ReplicationConfiguration = s3.ReplicationConfiguration(
        Role=GetAtt(role, "Arn"),
        Rules=[
            s3.ReplicationConfigurationRules(
                Id=replication_rule_id(ctx.env),
                Status="Enabled",
                Priority=1,
                Filter=s3.ReplicationRuleFilter(Prefix=""),
                DeleteMarkerReplication=s3.DeleteMarkerReplication(Status="Enabled"),
                SourceSelectionCriteria=s3.SourceSelectionCriteria(
                    SseKmsEncryptedObjects=s3.SseKmsEncryptedObjects(Status="Enabled")
                ),
                Destination=s3.ReplicationConfigurationRulesDestination(
                    Bucket=replica_arn,
                    EncryptionConfiguration=s3.EncryptionConfiguration(ReplicaKmsKeyID=replica_key),
                    # Replication Time Control: 99.99 % of objects within 15 minutes, and the
                    # metrics (latency, pending, failed) to watch it by.
                    ReplicationTime=s3.ReplicationTime(Status="Enabled", Time=s3.ReplicationTimeValue(Minutes=15)),
                    Metrics=s3.Metrics(Status="Enabled", EventThreshold=s3.ReplicationTimeValue(Minutes=15)),
                ),
            )
        ],
    )
    return replica_domain


def _certificate(env: Environment) -> cloudfront.ViewerCertificate:
    if env.edge.certificate_arn is None:
        return cloudfront.ViewerCertificate(CloudFrontDefaultCertificate=True)
    # The settings checked it is in us-east-1 and this account.
    return cloudfront.ViewerCertificate(
        AcmCertificateArn=Sub(
            "arn:${AWS::Partition}:acm:%s:${AWS::AccountId}:certificate/%s"
            % (CLOUDFRONT_REGION, env.edge.certificate_arn.rsplit("/", 1)[1])
        ),
        SslSupportMethod="sni-only",
        MinimumProtocolVersion="TLSv1.2_2021",
    )


def _security_headers(ctx: LayerContext) -> cloudfront.ResponseHeadersPolicy:
    return cloudfront.ResponseHeadersPolicy(
        "SecurityHeaders",
        ResponseHeadersPolicyConfig=cloudfront.ResponseHeadersPolicyConfig(
            Name=f"{ctx.stack_name}-security-headers",
            Comment="HSTS, nosniff, no framing, strict referrer",
            SecurityHeadersConfig=cloudfront.SecurityHeadersConfig(
                StrictTransportSecurity=cloudfront.StrictTransportSecurity(
                    AccessControlMaxAgeSec=63072000, IncludeSubdomains=True, Preload=True, Override=True
                ),
                ContentTypeOptions=cloudfront.ContentTypeOptions(Override=True),
                FrameOptions=cloudfront.FrameOptions(FrameOption="DENY", Override=True),
                ReferrerPolicy=cloudfront.ReferrerPolicy(
                    ReferrerPolicy="strict-origin-when-cross-origin", Override=True
                ),
                XSSProtection=cloudfront.XSSProtection(Protection=True, ModeBlock=True, Override=True),
            ),
        ),
    )
