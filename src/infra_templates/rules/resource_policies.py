"""Resource policies with an element the service refuses or reads differently from IAM."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch


def _intrinsics() -> Any:
    """``_intrinsics.py`` beside this file, loaded by path (this module is loaded standalone)."""
    path = Path(__file__).with_name("_intrinsics.py")
    spec = importlib.util.spec_from_file_location("infra_templates_rules_intrinsics", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_INTRINSICS = _intrinsics()
TOKEN, canonical, _token = _INTRINSICS.TOKEN, _INTRINSICS.canonical, _INTRINSICS.opaque

# Resource type -> the property that holds its repository policy (an object, or JSON text).
ECR_POLICIES = {
    "AWS::ECR::Repository": "RepositoryPolicyText",
    "AWS::ECR::RepositoryCreationTemplate": "RepositoryPolicy",
    "AWS::ECR::PublicRepository": "RepositoryPolicyText",
}
KMS_POLICIES = {"AWS::KMS::Key": "KeyPolicy", "AWS::KMS::ReplicaKey": "KeyPolicy"}
S3_POLICIES = {"AWS::S3::BucketPolicy": "PolicyDocument"}
PSEUDO = re.compile(r"^\$\{AWS::[A-Za-z]+\}")


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(cfn: Any, types: dict[str, str]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Each statement of the policy property of each resource of ``types``, with its path. A policy
    given as JSON text (a string, or a ``Fn::Sub`` of one) is parsed; text that is not JSON is
    cfn-lint's own finding."""
    for logical, resource in cfn.get_resources(list(types)).items():
        prop = types[resource["Type"]]
        document = resource.get("Properties", {}).get(prop)
        if isinstance(document, dict) and isinstance(document.get("Fn::Sub"), str):
            document = document["Fn::Sub"]  # JSON text whose ${} sit inside JSON strings
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                continue
        if not isinstance(document, dict):
            continue
        for s, statement in enumerate(_listify(document.get("Statement", []))):
            if isinstance(statement, dict):
                yield ["Resources", logical, "Properties", prop, "Statement", s], statement


class EcrRepositoryPolicyWithoutResource(CloudFormationLintRule):
    """E9003: a repository policy names no Resource: the repository is the one it is attached to."""

    id = "E9003"
    shortdesc = "ECR repository policies carry no Resource element"
    description = (
        "ECR refuses a repository policy whose statements carry a Resource (or NotResource) element "
        "('Invalid repository policy provided'): a repository policy applies to its repository. This "
        "holds for AWS::ECR::Repository RepositoryPolicyText and for the RepositoryPolicy of a "
        "repository creation template. Source: Amazon ECR User Guide, 'Private repository policy "
        "examples' (no statement has a Resource) and 'Private repository policies'."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html"
    tags: ClassVar[list[str]] = ["resources", "ecr", "iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        return [
            RuleMatch([*path, element], f"a repository policy statement has {element}; ECR refuses it")
            for path, statement in _statements(cfn, ECR_POLICIES)
            for element in ("Resource", "NotResource")
            if element in statement
        ]


class KmsKeyPolicyResourceIsStar(CloudFormationLintRule):
    """E9008: every statement of a key policy has ``Resource: "*"`` (this key)."""

    id = "E9008"
    shortdesc = "KMS key policy statements name Resource '*'"
    description = (
        "In a key policy the Resource element is '*', which means 'this KMS key'; a key policy cannot "
        "name another key or resource. Source: AWS KMS Developer Guide, 'Key policies in AWS KMS' "
        "(Elements in a key policy: Resource)."
    )
    source_url = "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html"
    tags: ClassVar[list[str]] = ["resources", "kms", "iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for path, statement in _statements(cfn, KMS_POLICIES):
            if "NotResource" in statement:
                matches.append(RuleMatch([*path, "NotResource"], "a key policy statement has NotResource; use '*'"))
            elif _listify(statement.get("Resource")) != ["*"]:
                matches.append(
                    RuleMatch(
                        [*path, "Resource"],
                        f"a key policy statement names {statement.get('Resource')!r}; "
                        "in a key policy Resource is '*' (this key)",
                    )
                )
        return matches


class S3BucketPolicyNamesItsBucket(CloudFormationLintRule):
    """E9009: a bucket policy's statements name that bucket or objects in it, nothing else."""

    id = "E9009"
    shortdesc = "S3 bucket policy resources are the policy's bucket and its objects"
    description = (
        "A bucket policy applies to one bucket: every Resource is that bucket's ARN "
        "(arn:aws:s3:::bucket) or objects in it (arn:aws:s3:::bucket/key-pattern); S3 refuses "
        "another resource with 'MalformedPolicy: Policy has invalid resource'. Source: Amazon S3 User "
        "Guide, 'Examples of Amazon S3 bucket policies' and 'Policy resources for Amazon S3'; the "
        "error as reported in aws-samples/aws-serverless-appsync-app#4."
    )
    source_url = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html"
    tags: ClassVar[list[str]] = ["resources", "s3", "iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        resources = cfn.template.get("Resources", {})
        for path, statement in _statements(cfn, S3_POLICIES):
            bucket = resources[path[1]].get("Properties", {}).get("Bucket")
            arns = self._bucket_arns(resources, bucket)
            if not arns:
                continue
            for r, value in enumerate(_listify(statement.get("Resource", []))):
                text = canonical(value)
                if text is None or text == "*" or any(text == arn or text.startswith(arn + "/") for arn in arns):
                    continue
                if TOKEN.match(text) and not PSEUDO.match(text):
                    continue  # starts with a value this template cannot see (an import, a parameter)
                matches.append(
                    RuleMatch(
                        [*path, "Resource", r],
                        f"Resource {text!r} is not bucket {bucket!r} or an object in it; S3 refuses the policy",
                    )
                )
        return matches

    @staticmethod
    def _bucket_arns(resources: dict[str, Any], bucket: Any) -> list[str]:
        """The texts a Resource may start with to name ``bucket``."""
        name = canonical(bucket)
        if name is None:
            return []
        arns = [f"arn:${{AWS::Partition}}:s3:::{name}", f"arn:aws:s3:::{name}"]
        if isinstance(bucket, dict) and isinstance(bucket.get("Ref"), str):
            logical = bucket["Ref"]
            if resources.get(logical, {}).get("Type") == "AWS::S3::Bucket":
                arns.append(_token({"Fn::GetAtt": [logical, "Arn"]}))
        return arns
