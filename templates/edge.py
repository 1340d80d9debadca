"""Edge layer: a private static-assets bucket served by CloudFront through Origin Access Control,
and the API behind the same distribution, over HTTPS to the ALB, uncached. Security headers,
TLS 1.2+, HTTP/2 and HTTP/3, compression, access logs and a WAF web ACL."""

from __future__ import annotations

from awacs import s3 as s3_actions
from awacs.aws import Principal, StringEquals
from troposphere import GetAtt, Ref, Sub, Template, cloudfront, s3

from infra_templates import constructs, iam
from infra_templates.config import CLOUDFRONT_REGION, Environment
from infra_templates.layer import LayerContext
from templates.contracts import Edge, EdgeFirewall, Keys, Platform

# AWS-managed CloudFront policies (their ids are the same in every account).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
# Every viewer header, cookie and query string, except Host: CloudFront must present the origin's
# own name to the ALB, or its certificate check fails.
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
ASSETS = "assets"
API = "api"


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "edge")
    edge = env.edge
    t = ctx.new_template("static assets in S3 and the API behind one CloudFront distribution")
    log_bucket = ctx.import_value(Platform.LOG_BUCKET_NAME)

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
    if env.region == CLOUDFRONT_REGION:
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
        web_acl = Ref(ctx.parameter_from(t, EdgeFirewall.WEB_ACL_ARN))

    distribution = t.add_resource(
        cloudfront.Distribution(
            "Distribution",
            DistributionConfig=cloudfront.DistributionConfig(
                Comment=f"{ctx.stack_name}: assets from S3, {edge.api_path} from the ALB",
                Enabled=True,
                HttpVersion="http2and3",
                IPV6Enabled=True,
                PriceClass=edge.price_class,
                DefaultRootObject=edge.default_root_object,
                Origins=[
                    cloudfront.Origin(
                        Id=ASSETS,
                        DomainName=GetAtt(bucket, "RegionalDomainName"),
                        OriginAccessControlId=GetAtt(access, "Id"),
                        S3OriginConfig=cloudfront.S3OriginConfig(OriginAccessIdentity=""),
                    ),
                    cloudfront.Origin(
                        Id=API,
                        DomainName=edge.origin_domain,
                        CustomOriginConfig=cloudfront.CustomOriginConfig(
                            OriginProtocolPolicy="https-only",
                            HTTPSPort=443,
                            OriginSSLProtocols=["TLSv1.2"],
                        ),
                    ),
                ],
                DefaultCacheBehavior=cloudfront.DefaultCacheBehavior(
                    TargetOriginId=ASSETS,
                    ViewerProtocolPolicy="redirect-to-https",
                    AllowedMethods=["GET", "HEAD", "OPTIONS"],
                    CachedMethods=["GET", "HEAD"],
                    Compress=True,
                    CachePolicyId=CACHING_OPTIMIZED,
                    ResponseHeadersPolicyId=Ref(headers),
                ),
                CacheBehaviors=[
                    cloudfront.CacheBehavior(
                        PathPattern=edge.api_path,
                        TargetOriginId=API,
                        # An API call must not be redirected: a POST would turn into a GET.
                        ViewerProtocolPolicy="https-only",
                        AllowedMethods=["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
                        CachedMethods=["GET", "HEAD"],
                        Compress=True,
                        CachePolicyId=CACHING_DISABLED,
                        OriginRequestPolicyId=ALL_VIEWER_EXCEPT_HOST,
                        ResponseHeadersPolicyId=Ref(headers),
                    )
                ],
                ViewerCertificate=_certificate(env),
                Logging=cloudfront.Logging(
                    Bucket=Sub("${LogBucket}.s3.${AWS::URLSuffix}", LogBucket=log_bucket),
                    Prefix=f"cloudfront/{ctx.stack_name}/",
                    IncludeCookies=False,
                ),
                WebACLId=web_acl,
            ),
        )
    )
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

    t.add_resource(
        s3.BucketPolicy(
            "AssetsBucketPolicy",
            Bucket=Ref(bucket),
            PolicyDocument=iam.document(
                constructs.deny_insecure_transport(bucket),
                iam.allow(
                    "ThisDistributionReadsAssets",
                    [s3_actions.GetObject],
                    [Sub("${%s.Arn}/*" % bucket.title)],
                    conditions=[
                        StringEquals(
                            "AWS:SourceArn",
                            Sub(
                                "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${%s}"
                                % distribution.title
                            ),
                        )
                    ],
                    principal=Principal("Service", "cloudfront.amazonaws.com"),
                ),
            ),
        )
    )

    ctx.export(t, Edge.ASSETS_BUCKET_NAME, Ref(bucket))
    ctx.export(t, Edge.ASSETS_BUCKET_ARN, GetAtt(bucket, "Arn"))
    ctx.export(t, Edge.DISTRIBUTION_ID, Ref(distribution))
    ctx.export(t, Edge.DISTRIBUTION_DOMAIN, GetAtt(distribution, "DomainName"))
    return t


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
