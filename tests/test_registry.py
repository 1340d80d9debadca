"""Registry layer (project-wide): a repository per service, immutable, scanned, encrypted, pullable
by the environments' accounts."""

from __future__ import annotations

import json

from conftest import SERVICES, resources

from infra_templates.pipeline import manifest


def repositories(project_stacks) -> dict[str, dict]:
    """Each service's repository, from its own registry stack."""
    return {s: project_stacks[f"registry-{s}"].body["Resources"]["Repository"] for s in SERVICES}


def test_one_repository_per_service_named_project_slash_service(project_stacks) -> None:
    assert resources(project_stacks["registry"].body, "AWS::ECR::Repository") == {}  # the key only
    names = [repo["Properties"]["RepositoryName"] for repo in repositories(project_stacks).values()]
    assert names == [f"shop/{s}" for s in SERVICES]


def test_repositories_are_immutable_scanned_encrypted_and_kept(project_stacks) -> None:
    for name, repo in repositories(project_stacks).items():
        props = repo["Properties"]
        assert props["ImageTagMutability"] == "IMMUTABLE", name
        assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert props["EncryptionConfiguration"] == {
            "EncryptionType": "KMS",
            "KmsKey": {"Fn::ImportValue": "shop-registry-RegistryKeyArn"},
        }
        assert repo["DeletionPolicy"] == repo["UpdateReplacePolicy"] == "Retain"


def test_lifecycle_expires_untagged_and_keeps_the_newest_releases(project_stacks, environments) -> None:
    registry = environments["prod"].registry
    repo = repositories(project_stacks)["api"]
    rules = json.loads(repo["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert rules[0]["selection"]["countNumber"] == registry.untagged_expire_days
    assert rules[1]["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": registry.keep_release_images,
    }


def test_environment_accounts_may_pull_and_nothing_else(project_stacks, environments) -> None:
    repo = repositories(project_stacks)["web"]
    (statement,) = repo["Properties"]["RepositoryPolicyText"]["Statement"]
    accounts = sorted({e.account_id for e in environments.values()})
    assert statement["Principal"]["AWS"] == [{"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{a}:root"} for a in accounts]
    assert statement["Action"] == ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


def test_project_stack_is_first_in_every_manifest(stacks, environments, project_stacks) -> None:
    for env, by_layer in stacks.items():
        entries = manifest(environments[env], list(by_layer.values()), list(project_stacks.values()))["stacks"]
        assert entries[0]["name"] == "shop-registry"
        assert entries[0]["scope"] == "project"
        assert entries[0]["region"] == "eu-west-1"
        assert entries[0]["templates"]["yaml"] == "../project/registry.yaml"
        assert [e["order"] for e in entries] == list(range(1, len(entries) + 1))
