"""The environment's template bucket: a stack whose template is beyond the 51,200 bytes
CloudFormation takes in a request is uploaded through it (CloudFormation User Guide,
"CloudFormation quotas": 51,200 bytes in a request, 1 MB in an Amazon S3 object).

The sample add-on tests/fixtures/addons-upload/ (prod's api: two parameters and a statement) puts
shop-prod-svc-api beyond 51,200 bytes; without it no fixture environment needs the bucket, and the
shipped output has none (tests/golden/ is the output without it).
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path
from typing import Any

import aws_cli
import pytest
import yaml
from conftest import FIXTURES, SETTINGS, generate_main
from test_deployer_scope import named_patterns

from infra_templates import checks
from infra_templates.config import load_settings
from infra_templates.pipeline import Stack, build_stacks, template_bytes
from infra_templates.quotas import TEMPLATE_BODY_BYTES
from templates import LAYERS, paired_stacks, template_bucket

UPLOAD = FIXTURES / "addons-upload"
BUCKET = "shop-prod-templates-333333333333"  # {project}-{env}-templates-{account} of the fixture prod


# One worker runs them all (make unit: --dist loadgroup), with test_aws_commands.py: each process
# builds this module's output/ and loads the AWS CLI's driver once.
pytestmark = pytest.mark.xdist_group("aws-cli")


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """output/ of the fixture settings with prod's api add-on that needs the upload."""
    root = tmp_path_factory.mktemp("upload")
    shutil.copytree(SETTINGS, root / "environments")
    shutil.copytree(UPLOAD, root / "environments" / "addons")
    status, _, err = generate_main("--quiet", "--settings", str(root / "environments"), "--output", str(root / "out"))
    assert status == 0, err
    return root / "out"


def entries(output: Path, folder: str) -> dict[str, dict[str, Any]]:
    manifest = json.loads((output / folder / "manifest.json").read_text())
    return {stack["name"]: stack for stack in manifest["stacks"]}


def test_no_shipped_environment_needs_the_bucket(stacks: dict[str, dict[str, Stack]]) -> None:
    for env, built in stacks.items():
        assert template_bucket.LAYER not in built, env
        for layer, stack in built.items():
            assert stack.upload_bucket is None, (env, layer)
            assert template_bytes(stack) <= TEMPLATE_BODY_BYTES, (env, layer)  # else the bucket would be there


def test_the_addon_puts_the_api_beyond_a_request_body_and_it_uploads_through_the_bucket(output: Path) -> None:
    assert (output / "prod" / "svc-api.json").stat().st_size > TEMPLATE_BODY_BYTES
    stacks = entries(output, "prod")
    order = list(stacks)
    api = stacks["shop-prod-svc-api"]
    assert api["upload_bucket"] == BUCKET
    assert "shop-prod-templates" in api["depends_on"]
    assert order.index("shop-prod-platform") < order.index("shop-prod-templates") < order.index("shop-prod-svc-api")
    assert stacks["shop-prod-templates"]["depends_on"] == ["shop-prod-platform"]
    # Only the stack that needs it, and none of the environments the add-on does not touch.
    assert [name for name, s in stacks.items() if "upload_bucket" in s and s["scope"] == "environment"] == [
        "shop-prod-svc-api"
    ]
    for folder in ("dev", "staging", "dr"):
        assert not (output / folder / "templates.json").exists(), folder


def test_the_bucket_is_private_tls_only_sse_s3_logged_and_expires_uploads(output: Path) -> None:
    body = json.loads((output / "prod" / "templates.json").read_text())
    bucket = body["Resources"]["TemplateBucket"]
    props = bucket["Properties"]
    assert props["BucketName"] == BUCKET
    assert len(BUCKET) <= 63  # S3's bucket naming rules
    # SSE-S3: CloudFormation reads the template with the caller's credentials, who would need kms:Decrypt for KMS.
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["ExpirationInDays"] == template_bucket.EXPIRE_DAYS
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Fn::ImportValue": "shop-prod-platform-LogBucketName"},
        "LogFilePrefix": "s3/shop-prod-templates/",
    }
    assert bucket["DeletionPolicy"] == "Retain"  # prod keeps its buckets
    (statement,) = body["Resources"]["TemplateBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_deployer_may_manage_the_bucket_by_its_name(output: Path) -> None:
    """The infrastructure pipeline deploys the templates stack too, with the deployer's
    CloudFormation role: the bucket's name begins with the environment's stack prefix it is scoped to."""
    patterns = named_patterns(json.loads((output / "prod" / "deployer.json").read_text()))
    assert any(fnmatch.fnmatchcase(f"arn:aws:s3:::{BUCKET}", p) for p in patterns), patterns
    assert not any(fnmatch.fnmatchcase("arn:aws:s3:::shop-staging-templates-333333333333", p) for p in patterns)


def test_deploy_sh_uploads_the_api_through_the_bucket_and_the_cli_accepts_it(output: Path) -> None:
    script = (output / "prod" / "deploy.sh").read_text()
    start = script.index("  --stack-name shop-prod-svc-api \\")
    command = script[script.rindex("aws cloudformation deploy", 0, start) : script.index('"${changeset[@]}"', start)]
    assert f"--s3-bucket {BUCKET} --s3-prefix templates" in command
    argv = aws_cli.split(command.replace("\\\n", " ").replace('"$here/', f'"{output / "prod"}/'))
    result = aws_cli.run(argv)
    assert result.accepted, result.stderr
    uploads = [c for c in result.calls if c.service == "s3"]
    assert uploads, [(c.service, c.operation) for c in result.calls]
    assert {c.params["Bucket"] for c in uploads} == {BUCKET}
    # The stacks within a request body are not uploaded.
    start = script.index("  --stack-name shop-prod-svc-web \\")
    assert "--s3-bucket" not in script[start : script.index('"${changeset[@]}"', start)]
    guide = (output / "prod" / "DEPLOY.md").read_text()
    assert f"Uploaded through the bucket `{BUCKET}` (prefix `templates/`)" in guide
    assert f"`s3:PutObject` and `s3:GetObject` on the objects `{BUCKET}/templates/*`" in guide


def test_the_gate_allows_the_uploaded_api_1_mb_and_a_body_51200_bytes(output: Path) -> None:
    files = checks.template_files(checks.load_manifests(output, ["prod"]))
    assert next(f for f in files if f.path.name == "svc-api.json").uploaded
    assert checks.check_limits(files) == []
    assert checks.check_wiring(checks.load_manifests(output, ["prod"])) == []
    # Without the manifest's upload_bucket the same file is beyond a request body: the limit is real.
    body_only = [checks.TemplateFile(f.path, f.environment, f.stack, f.region) for f in files if not f.uploaded]
    body_only.append(checks.TemplateFile(output / "prod" / "svc-api.json", "prod", "shop-prod-svc-api", "eu-west-1"))
    (problem,) = checks.check_limits(body_only)
    assert problem.where.endswith("prod/svc-api.json")
    assert "bytes; a template body may have 51,200" in problem.message


def test_a_template_beyond_1_mb_is_refused_even_through_the_bucket(tmp_path: Path) -> None:
    path = tmp_path / "svc-api.json"
    path.write_text(json.dumps({"Resources": {}, "Description": "x" * 1_048_600}))
    (problem,) = checks.check_limits([checks.TemplateFile(path, "prod", "shop-prod-svc-api", "eu-west-1", True)])
    assert problem.message == (
        f"{path.stat().st_size:,} bytes; a template uploaded to S3 may have 1,048,576 "
        "(1 MB, CloudFormation's largest): move resources to another stack"
    )


def test_the_dr_partners_manifest_lists_a_primary_stack_with_its_upload_bucket(tmp_path: Path) -> None:
    """dr's folder lists prod's edge stack (dr's edge reads it); prod's edge beyond 51,200 bytes (an
    override's long comment) is listed there with its upload bucket, as prod's own manifest says."""
    folder = tmp_path / "environments"
    shutil.copytree(SETTINGS, folder)
    override = [
        {
            "stack": "edge",
            "resource": "Distribution",
            "path": "/Properties/DistributionConfig/Comment",
            "value": "n" * TEMPLATE_BODY_BYTES,
            "reason": "a long comment, for the test (CloudFront would refuse it: it is never deployed)",
        }
    ]
    (folder / "addons" / "prod").mkdir(parents=True)
    (folder / "addons" / "prod" / "overrides.yaml").write_text(yaml.safe_dump(override))
    environments, _, _ = load_settings(folder, ["prod", "dr"])
    by_name = {e.name: e for e in environments}
    prod = {s.layer: s for s in build_stacks(by_name["prod"], LAYERS)}
    assert prod["edge"].upload_bucket == BUCKET
    _, external = paired_stacks(by_name["dr"], environments)
    listed = {s.layer: s for s in external}
    assert listed["edge"].home == "prod"
    assert listed["edge"].upload_bucket == BUCKET
    assert "templates" not in listed  # dr deploys none of prod's stacks: it only lists what it reads
