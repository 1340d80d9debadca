"""Names of stacks, exports, logical IDs and the standard tags."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from infra_templates import MANAGED_BY

if TYPE_CHECKING:  # names only: naming stays importable without the settings models
    from infra_templates.config import Environment


def stack_name(project: str, environment: str | None, layer: str) -> str:
    """``{project}-{env}-{layer}``; a project-level stack (``environment=None``) drops the env."""
    parts = [project, environment, layer] if environment else [project, layer]
    return "-".join(parts)


def export_name(stack: str, output_key: str) -> str:
    return f"{stack}-{output_key}"


def logical_id(*parts: str) -> str:
    """PascalCase logical ID from words: ``logical_id("private", "subnet", "a")`` is ``PrivateSubnetA``."""
    words = [w for part in parts for w in re.split(r"[^A-Za-z0-9]+", part) if w]
    return "".join(w[0].upper() + w[1:] for w in words)


def standard_tags(project: str, environment: str, layer: str, extra: dict[str, str]) -> dict[str, str]:
    """The tags every taggable resource carries; the file's own tags come after, sorted."""
    tags = {"Project": project, "Environment": environment, "Layer": layer, "ManagedBy": MANAGED_BY}
    tags.update(sorted(extra.items()))
    return tags


def repository_prefix(project: str) -> str:
    """The namespace of the project's repositories (``shop`` of ``shop/web``): replication and the
    repository creation templates of the DR regions select the project's repositories by it."""
    return project


def repository_name(project: str, service: str) -> str:
    """A service's ECR repository: named, because pipelines push to it and people look for it."""
    return f"{repository_prefix(project)}/{service}"


def image_region(env: Environment) -> str:
    """The region ``env`` pulls its images from, in the registry's account.

    A DR environment pulls from ECR's replica in its own region, so a failover does not need the
    registry's region, the one that may be down; every other environment pulls from the registry's
    region. The service stacks, the release files, the pipelines and the runbook all ask here.
    """
    return env.region if env.dr is not None else env.registry.region


def image_repository(account: str, region: str, project: str, service: str, url_suffix: str) -> str:
    """``<account>.dkr.ecr.<region>.<url_suffix>/<repository>``: a service's repository in one region."""
    return f"{account}.dkr.ecr.{region}.{url_suffix}/{repository_name(project, service)}"


def key_alias(project: str, environment: str, purpose: str) -> str:
    """The alias of an environment's KMS key (``alias/shop-prod-keys/data``): known in any region,
    unlike the key's id, so a stack elsewhere can name the key."""
    return f"alias/{stack_name(project, environment, 'keys')}/{purpose}"


# Names the release pipeline (in the registry's account) must know before the environments' stacks
# exist, so they are set, not left to CloudFormation: the deploy actions name them in other accounts.
def cluster_name(project: str, environment: str) -> str:
    return f"{project}-{environment}"


def release_name(project: str, environment: str, service: str) -> str:
    """The CodeDeploy application and deployment group of a blue/green service."""
    return f"{project}-{environment}-{service}"


def service_role_name(project: str, environment: str, service: str, purpose: str) -> str:
    """``{project}-{env}-{service}-{purpose}``: a role of a service in an environment (exec, task, deploy)."""
    return f"{project}-{environment}-{service}-{purpose}"


def pipeline_role_name(project: str, service: str) -> str:
    return f"{project}-{service}-pipeline"


def release_build_role_name(project: str, service: str) -> str:
    """The role of the CodeBuild project that releases a service through CloudFormation: each
    environment's release role trusts it by name."""
    return f"{project}-{service}-release"


def image_tag_parameter(project: str, environment: str, service: str) -> str:
    """The SSM parameter holding the image tag a service runs in an environment: the release writes
    it, the service stack resolves it (``AWS::SSM::Parameter::Value<String>``)."""
    return f"/{project}/{environment}/{service}/image-tag"


def artifact_bucket_name(project: str, account: str, region: str) -> str:
    """The pipelines' artifact bucket of one region (a cross-region deploy needs one there too)."""
    return f"{project}-delivery-{account}-{region}"


def template_bucket_name(project: str, environment: str, account: str) -> str:
    """The bucket ``deploy.sh`` uploads an environment's templates beyond a request's 51,200 bytes
    through (``aws cloudformation deploy --s3-bucket``): global, so with the account.

    Without the region, unlike ``artifact_bucket_name``: S3 bucket names have at most 63
    characters (Amazon S3 User Guide, "General purpose bucket naming rules"), and a 20-character
    project, a 12-character environment, ``-templates-``, the account and a 14-character region
    would make 71; an environment lives in one region. It begins with ``{project}-{env}-``, the
    prefix the deployer's role is scoped to (templates/deployer.py). At most 20+1+12+11+12 = 56.
    """
    return f"{project}-{environment}-templates-{account}"


def artifact_key_alias(project: str) -> str:
    return f"alias/{project}-delivery/artifacts"


# The infrastructure pipeline (in the registry's account) acts in each environment's account
# through two roles of that environment's deployer stack, named so each side can name the other.
def deployer_role_name(project: str, environment: str, purpose: str) -> str:
    """``{project}-{env}-deployer-{purpose}``: ``action`` (the pipeline's hand in the account) or
    ``cfn`` (what CloudFormation runs as)."""
    return f"{project}-{environment}-deployer-{purpose}"


def infrastructure_pipeline_role_name(project: str) -> str:
    return f"{project}-infrastructure-pipeline"


def permissions_boundary_name(project: str, environment: str) -> str:
    """``{project}-{env}-boundary``: the managed policy (IAM policy name, at most 128 characters)
    every role of the environment's stacks carries as its permissions boundary."""
    return f"{project}-{environment}-boundary"


def queue_name(project: str, environment: str, worker: str) -> str:
    """The SQS queue of a worker service: its stack's name, so its senders and the dashboard derive
    it from the settings (within SQS's 80 characters: the settings check)."""
    return stack_name(project, environment, f"svc-{worker}")
