"""Resource policies with an element the service refuses or reads differently from IAM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch

# Resource type -> the property that holds its repository policy (an object, or JSON text).
ECR_POLICIES = {
    "AWS::ECR::Repository": "RepositoryPolicyText",
    "AWS::ECR::RepositoryCreationTemplate": "RepositoryPolicy",
    "AWS::ECR::PublicRepository": "RepositoryPolicyText",
}
KMS_POLICIES = {"AWS::KMS::Key": "KeyPolicy", "AWS::KMS::ReplicaKey": "KeyPolicy"}


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
    tags = ["resources", "ecr", "iam"]

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
    tags = ["resources", "kms", "iam"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for path, statement in _statements(cfn, KMS_POLICIES):
            if "NotResource" in statement:
                matches.append(RuleMatch([*path, "NotResource"], "a key policy statement has NotResource; use '*'"))
            elif _listify(statement.get("Resource")) != ["*"]:
                matches.append(
                    RuleMatch([*path, "Resource"], f"a key policy statement names {statement.get('Resource')!r}; "
                              "in a key policy Resource is '*' (this key)")
                )
        return matches
