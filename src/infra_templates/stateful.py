"""Which resources hold state: what a deletion or a replacement would lose.

Shared by the change preview (``diff``), which warns before such a resource goes, and the deploy
guide (``handover``), which turns on termination protection for the stacks that hold one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Resource types whose deletion or replacement loses data (or, for a key, everything encrypted with it).
STATEFUL_TYPES = frozenset(
    {
        "AWS::Backup::BackupVault",
        "AWS::CodeCommit::Repository",
        "AWS::DynamoDB::Table",
        "AWS::ECR::Repository",
        "AWS::EFS::FileSystem",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
        "AWS::RDS::DBCluster",
        "AWS::RDS::DBInstance",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
    }
)
# DeletionPolicy values by which a template says "keep this when the stack lets go of it".
KEEPING_POLICIES = frozenset({"Retain", "RetainExceptOnCreate", "Snapshot"})


def stateful_resources(body: Mapping[str, Any]) -> dict[str, str]:
    """``{logical ID: type}`` of the template's resources of a stateful type, in template order."""
    return {name: r["Type"] for name, r in body.get("Resources", {}).items() if r.get("Type") in STATEFUL_TYPES}


def kept_resources(body: Mapping[str, Any]) -> dict[str, str]:
    """``{logical ID: DeletionPolicy}`` of the resources the template asks CloudFormation to keep."""
    return {
        name: r["DeletionPolicy"]
        for name, r in body.get("Resources", {}).items()
        if r.get("DeletionPolicy") in KEEPING_POLICIES
    }
