"""Assets-replica layer, in a DR environment only: the bucket its primary's static assets replicate
to, in the recovery region, encrypted with this environment's data key.

It is a stack of its own, apart from the edge stack, because the primary's edge stack names it as
its replication destination and so must come after it; this stack needs only the DR environment's
keys and its access-log bucket, not its edge. The DR environment's edge stack serves this bucket,
and the primary's distribution fails over to it.
"""

from __future__ import annotations

from troposphere import GetAtt, Ref, Template, s3

from infra_templates import constructs
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import AssetsReplica, Keys, Platform


def needed(env: Environment) -> bool:
    return env.dr is not None


def build(env: Environment) -> Template:
    assert env.dr is not None
    ctx = LayerContext(env, "assets-replica")
    t = ctx.new_template(f"the copy of {env.dr.protects}'s static assets, replicated into this region")
    bucket = constructs.private_bucket(
        "ReplicaBucket",
        env,
        kms_key_arn=ctx.import_value(Keys.DATA_KEY_ARN),
        expire_days=None,
        noncurrent_days=env.edge.noncurrent_asset_days,
    )
    bucket.LoggingConfiguration = s3.LoggingConfiguration(
        DestinationBucketName=ctx.import_value(Platform.LOG_BUCKET_NAME), LogFilePrefix=f"s3/{ctx.stack_name}/"
    )
    t.add_resource(bucket)
    # The bucket policy (TLS only; reads by this environment's and the primary's distributions)
    # is in this environment's edge stack, which knows both distributions.
    ctx.export(t, AssetsReplica.BUCKET_NAME, Ref(bucket))
    ctx.export(t, AssetsReplica.BUCKET_ARN, GetAtt(bucket, "Arn"))
    ctx.export(t, AssetsReplica.BUCKET_DOMAIN, GetAtt(bucket, "RegionalDomainName"))
    return t
