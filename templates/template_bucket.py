"""Template-bucket layer: the private bucket ``deploy.sh`` uploads this environment's templates
through when one is beyond the 51,200 bytes CloudFormation takes in a request (up to the 1 MB it
reads from S3: CloudFormation User Guide, "CloudFormation quotas").

Built only when a stack after it, in its region, needs it (``LayerSpec.template_bucket``: the
pipeline measures the rendered templates, JSON and YAML); then that stack's manifest entry names
the bucket (``upload_bucket``), ``deploy.sh`` passes ``--s3-bucket <bucket> --s3-prefix templates``
(AWS CLI Command Reference, "aws cloudformation deploy": "--s3-bucket ... required the deployments
of templates sized greater than 51,200 bytes"), and the gate allows it 1 MB.

After the platform stack: its server access logs go to the platform's log bucket, whose policy
lets S3 deliver any of the account's buckets' logs under ``s3/``. Encrypted with SSE-S3, not KMS:
CloudFormation fetches a TemplateURL with the caller's credentials, and an SSE-KMS object would
need ``kms:Decrypt`` from everyone who deploys. An uploaded template is read only while a change
set is created (CloudFormation keeps the template of each stack itself), so objects expire after
``EXPIRE_DAYS``; ``aws cloudformation deploy`` names each upload by its content's MD5 and uploads
again what is missing.
"""

from __future__ import annotations

from troposphere import Ref, Template, s3

from infra_templates import constructs, iam
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from infra_templates.naming import template_bucket_name
from templates.contracts import Platform

LAYER = "templates"
EXPIRE_DAYS = 30  # an upload older than this is no stack's pending change set
NONCURRENT_DAYS = 1  # a version replaced (the same key uploaded again: the same content) or expired


def bucket_name(env: Environment) -> str:
    return template_bucket_name(env.project, env.name, env.account_id)


def build(env: Environment) -> Template:
    ctx = LayerContext(env, LAYER)
    t = ctx.new_template("the bucket deploy.sh uploads this environment's templates beyond 51,200 bytes through")
    bucket = constructs.private_bucket(
        "TemplateBucket", env, kms_key_arn=None, expire_days=EXPIRE_DAYS, noncurrent_days=NONCURRENT_DAYS
    )
    bucket.BucketName = bucket_name(env)  # deploy.sh names it; within S3's 63 characters (naming.py)
    bucket.LoggingConfiguration = s3.LoggingConfiguration(
        DestinationBucketName=ctx.import_value(Platform.LOG_BUCKET_NAME), LogFilePrefix=f"s3/{ctx.stack_name}/"
    )
    t.add_resource(bucket)
    t.add_resource(
        s3.BucketPolicy(
            "TemplateBucketPolicy",
            Bucket=Ref(bucket),
            PolicyDocument=iam.document(constructs.deny_insecure_transport(bucket)),
        )
    )
    return t
