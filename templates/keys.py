"""Keys layer: the customer managed KMS keys the environment's other layers encrypt with.

It deploys first because the network layer's flow-log group already needs the logs key.
"""

from __future__ import annotations

from awacs import kms
from awacs.aws import ArnLike, Principal, Statement, StringEquals
from troposphere import AccountId, GetAtt, Sub, Template, backup

from infra_templates import constructs, iam
from infra_templates.config import Environment
from infra_templates.constructs import WAF_LOG_PREFIX
from infra_templates.layer import LayerContext
from infra_templates.naming import key_alias
from templates.contracts import Keys


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
    t.add_resource(constructs.kms_alias("LogsKeyAlias", key_alias(env.project, env.name, "logs"), logs_key))
    ctx.export(t, Keys.LOGS_KEY_ARN, GetAtt(logs_key, "Arn"))

    data_key = t.add_resource(
        constructs.kms_key(
            "DataKey",
            env,
            f"Encrypts the data of {env.project} {env.name}: database storage, its secret, backups, static assets",
            iam.key_policy(_data_services_may_use(ctx), _distributions_may_read()),
        )
    )
    t.add_resource(constructs.kms_alias("DataKeyAlias", key_alias(env.project, env.name, "data"), data_key))
    ctx.export(t, Keys.DATA_KEY_ARN, GetAtt(data_key, "Arn"))

    vault = t.add_resource(backup_vault(env, GetAtt(data_key, "Arn")))
    ctx.export(t, Keys.BACKUP_VAULT_ARN, GetAtt(vault, "BackupVaultArn"))
    return t


# AWS Backup Vault Lock ("AWS::Backup::BackupVault LockConfigurationType", CloudFormation template
# reference): without ChangeableForDays the lock is in governance mode: it refuses to delete a
# recovery point before its retention ends, or to keep one beyond the maximum, and a principal
# allowed backup:DeleteBackupVaultLockConfiguration can still remove it. With ChangeableForDays (3 or
# more, the 72-hour cooling-off) it turns into compliance mode on the lock date and can never be
# changed or removed again, not even by AWS: a choice for the account's owner to make by hand, not
# for a generator's default.
LOCK_MAX_RETENTION_DAYS = 36500  # the largest retention backup_plan_retention_days allows


def backup_vault(env: Environment, key_arn: object) -> backup.BackupVault:
    """The environment's AWS Backup vault, encrypted with its data key; named ``{project}-{env}``,
    so a DR pair's plan can name it. Locked (governance mode) in production: no recovery point is
    deleted before ``database.backup_plan_retention_days``."""
    vault = backup.BackupVault(
        "BackupVault",
        BackupVaultName=f"{env.project}-{env.name}",
        EncryptionKeyArn=key_arn,
    )
    if env.production:
        vault.LockConfiguration = backup.LockConfigurationType(
            MinRetentionDays=env.database.backup_plan_retention_days,
            MaxRetentionDays=LOCK_MAX_RETENTION_DAYS,
        )
    constructs.protect(vault, env)
    return vault


def _data_services(env: Environment) -> list[str]:
    """The services that use the data key for this account's principals: RDS, Secrets Manager, S3,
    AWS Backup, and SQS where a worker's or a job's queue is encrypted with it."""
    queues = any(s.kind in ("worker", "job") for s in env.services.values())
    return ["rds", "secretsmanager", "s3", "backup", *(["sqs"] if queues else [])]


def _data_services_may_use(ctx: LayerContext) -> Statement:
    """The data services (``_data_services``) may use the key on behalf of this account's principals only.

    The AWS-managed keys' pattern: the principal must be in this account (and still needs IAM
    permission), and the request must come through one of the named services in this region.
    """
    return iam.allow(
        "DataServicesOfThisAccount",
        [
            kms.CreateGrant,
            kms.Decrypt,
            kms.DescribeKey,
            kms.Encrypt,
            kms.GenerateDataKey,
            kms.GenerateDataKeyWithoutPlaintext,
            kms.ListGrants,
            kms.ReEncryptFrom,
            kms.ReEncryptTo,
        ],
        ["*"],
        conditions=[
            StringEquals("kms:CallerAccount", AccountId),
            StringEquals(
                "kms:ViaService",
                [Sub("%s.${AWS::Region}.amazonaws.com" % service) for service in _data_services(ctx.env)],
            ),
        ],
        principal=iam.account_root(),
    )


def _distributions_may_read() -> Statement:
    """CloudFront may decrypt the static assets it fetches through Origin Access Control, for this
    account's distributions only (AWS: "Restrict access to an Amazon S3 origin", SSE-KMS). The
    distributions are made after this key, so they are matched by account, not by id; the assets
    buckets' policies name the exact distributions allowed to read."""
    return iam.allow(
        "CloudFrontDistributionsOfThisAccountDecryptAssets",
        [kms.Decrypt],
        ["*"],
        conditions=[
            ArnLike("AWS:SourceArn", Sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*"))
        ],
        principal=Principal("Service", "cloudfront.amazonaws.com"),
    )


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
                    for prefix in (
                        f"{env_prefix}-",
                        f"{WAF_LOG_PREFIX}{env_prefix}-",
                        f"/aws/rds/cluster/{env_prefix}/",  # the database's exported logs
                    )
                ],
            )
        ],
        principal=Principal("Service", Sub("logs.${AWS::Region}.amazonaws.com")),
    )
