"""Edge firewall layer, in us-east-1: the CloudFront web ACL (AWS accepts CLOUDFRONT-scope web ACLs
only there), with a logs key of its own in that region. Built only for environments in another
region, and only with platform.waf.cloudfront; the edge stack reads the web ACL's ARN from this
stack's output."""

from __future__ import annotations

from awacs import kms
from awacs.aws import ArnLike, Principal
from troposphere import GetAtt, Sub, Template

from infra_templates import constructs, iam
from infra_templates.config import CLOUDFRONT_REGION, Environment
from infra_templates.layer import LayerContext
from templates.contracts import EdgeFirewall


def needed(env: Environment) -> bool:
    return env.region != CLOUDFRONT_REGION and env.platform.waf.cloudfront


def region(env: Environment) -> str:
    return CLOUDFRONT_REGION


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "edge-waf")
    t = ctx.new_template(f"CloudFront web ACL, in {CLOUDFRONT_REGION} as AWS requires, with its logs key")
    key = t.add_resource(
        constructs.kms_key(
            "LogsKey",
            env,
            f"Encrypts the CloudFront web ACL logs of {env.project} {env.name} in {CLOUDFRONT_REGION}",
            iam.key_policy(
                iam.allow(
                    "CloudWatchLogsEncryptsTheWebAclLogs",
                    [
                        kms.Encrypt,
                        kms.Decrypt,
                        kms.ReEncryptFrom,
                        kms.ReEncryptTo,
                        kms.GenerateDataKey,
                        kms.DescribeKey,
                    ],
                    ["*"],
                    conditions=[
                        ArnLike(
                            "kms:EncryptionContext:aws:logs:arn",
                            Sub(
                                "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                                f"{constructs.WAF_LOG_PREFIX}{ctx.stack_name}"
                            ),
                        )
                    ],
                    principal=Principal("Service", Sub("logs.${AWS::Region}.amazonaws.com")),
                )
            ),
        )
    )
    acl = constructs.firewall(
        t,
        env,
        name=ctx.stack_name,
        scope="CLOUDFRONT",
        rate_limit=env.platform.waf_rate_limit,
        logs_key_arn=GetAtt(key, "Arn"),
        retention_days=env.platform.log_retention_days,
    )
    ctx.output(t, EdgeFirewall.WEB_ACL_ARN, GetAtt(acl, "Arn"))
    return t
