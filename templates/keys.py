"""Keys layer: the customer managed KMS keys the environment's other layers encrypt with.

It deploys first because the network layer's flow-log group already needs the logs key.
"""

from __future__ import annotations

from awacs import kms
from awacs.aws import ArnLike, Principal, Statement
from troposphere import GetAtt, Sub, Template

from infra_templates import constructs, iam
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import WAF_LOG_PREFIX, Keys


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "keys")
    t = ctx.new_template("customer managed KMS keys, rotated yearly")
    logs_key = t.add_resource(
        constructs.kms_key(
            "LogsKey",
            env,
            f"Encrypts the CloudWatch Logs log groups of {env.project} {env.name}",
            iam.key_policy(_logs_may_use(ctx)),
        )
    )
    t.add_resource(constructs.kms_alias("LogsKeyAlias", f"{ctx.stack_name}/logs", logs_key))
    ctx.export(t, Keys.LOGS_KEY_ARN, GetAtt(logs_key, "Arn"))
    return t


def _logs_may_use(ctx: LayerContext) -> Statement:
    """CloudWatch Logs in this region may use the key, for this environment's log groups only.

    Log group names are left to CloudFormation, which starts them with the stack name, and every
    stack of the environment is named ``{project}-{env}-...``; WAF's group must be named
    ``aws-waf-logs-...``, so it is ``aws-waf-logs-{stack}``.
    """
    env_prefix = f"{ctx.env.project}-{ctx.env.name}"
    return iam.allow(
        "CloudWatchLogsEncryptsThisEnvironmentsLogGroups",
        [kms.Encrypt, kms.Decrypt, kms.ReEncryptFrom, kms.ReEncryptTo, kms.GenerateDataKey, kms.DescribeKey],
        ["*"],
        conditions=[
            ArnLike(
                "kms:EncryptionContext:aws:logs:arn",
                [
                    Sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:%s*" % prefix)
                    for prefix in (f"{env_prefix}-", f"{WAF_LOG_PREFIX}{env_prefix}-")
                ],
            )
        ],
        principal=Principal("Service", Sub("logs.${AWS::Region}.amazonaws.com")),
    )
