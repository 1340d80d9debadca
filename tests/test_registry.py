"""Registry layer (project-wide): a repository per service, immutable, scanned, encrypted, pullable
by the environments' accounts."""

from __future__ import annotations

import json

from conftest import BUILT, SERVICES, resources

from infra_templates.config import Project
from infra_templates.pipeline import build_project_stacks, manifest
from templates import PROJECT_LAYERS


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


# --- replication to the DR regions ----------------------------------------------------------------

REPLICA = "registry-replica-eu-central-1"


def test_replication_sends_the_projects_repositories_to_the_dr_region_of_the_same_registry(project_stacks) -> None:
    body = project_stacks["registry-replication"].body
    assert project_stacks["registry-replication"].region == "eu-west-1"  # the registry's region
    (config,) = resources(body, "AWS::ECR::ReplicationConfiguration").values()
    (rule,) = config["Properties"]["ReplicationConfiguration"]["Rules"]
    assert rule["Destinations"] == [{"Region": "eu-central-1", "RegistryId": {"Ref": "AWS::AccountId"}}]
    # "shop/", not "shop": a repository named "shopping/..." is not the project's
    assert rule["RepositoryFilters"] == [{"Filter": "shop/", "FilterType": "PREFIX_MATCH"}]
    assert "ONE replication configuration per registry and region" in body["Description"]


def test_replicas_are_created_with_the_dr_regions_own_key(project_stacks) -> None:
    stack = project_stacks[REPLICA]
    assert stack.region == "eu-central-1"
    (template,) = resources(stack.body, "AWS::ECR::RepositoryCreationTemplate").values()
    props = template["Properties"]
    assert props["Prefix"] == "shop" and props["AppliedFor"] == ["REPLICATION"]
    key = props["EncryptionConfiguration"]["KmsKey"]["Fn::GetAtt"][0]
    assert props["EncryptionConfiguration"]["EncryptionType"] == "KMS"
    assert stack.body["Resources"][key]["Type"] == "AWS::KMS::Key"  # created in this stack, in this region
    assert stack.body["Resources"][key]["DeletionPolicy"] == "Retain"
    assert props["ImageTagMutability"] == "IMMUTABLE"


def test_replicas_get_the_source_repositories_lifecycle_and_pull_policy(project_stacks) -> None:
    source = repositories(project_stacks)["api"]["Properties"]
    (template,) = resources(project_stacks[REPLICA].body, "AWS::ECR::RepositoryCreationTemplate").values()
    props = template["Properties"]
    assert props["LifecyclePolicy"] == source["LifecyclePolicy"]["LifecyclePolicyText"]

    def unwrap(node):  # the source's {"Fn::Sub": arn} principals as the text's plain ${} strings
        if isinstance(node, dict):
            return node["Fn::Sub"] if set(node) == {"Fn::Sub"} else {k: unwrap(v) for k, v in node.items()}
        return [unwrap(item) for item in node] if isinstance(node, list) else node

    assert json.loads(props["RepositoryPolicy"]["Fn::Sub"]) == unwrap(source["RepositoryPolicyText"])


def test_ecr_creates_replicas_through_a_role_limited_to_the_projects_repositories_and_the_key(project_stacks) -> None:
    body = project_stacks[REPLICA].body
    (template,) = resources(body, "AWS::ECR::RepositoryCreationTemplate").values()
    role = body["Resources"][template["Properties"]["CustomRoleArn"]["Fn::GetAtt"][0]]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecr.amazonaws.com"}
    (policy,) = role["Policies"]
    create, key = policy["PolicyDocument"]["Statement"]
    assert create["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/shop/*"}
    ]
    assert sorted(key["Action"]) == ["kms:CreateGrant", "kms:DescribeKey", "kms:RetireGrant"]
    assert key["Resource"] == [template["Properties"]["EncryptionConfiguration"]["KmsKey"]]


def test_the_creation_template_is_deployed_before_replication_starts() -> None:
    entries = json.loads(BUILT.files["project"]["manifest.json"])["stacks"]
    names = [e["name"] for e in entries]
    replication = entries[names.index("shop-registry-replication")]
    assert names.index(f"shop-{REPLICA}") < names.index("shop-registry-replication")
    assert f"shop-{REPLICA}" in replication["depends_on"]
    assert all(names.index(f"shop-registry-{s}") < names.index("shop-registry-replication") for s in SERVICES)


def test_no_dr_environment_elsewhere_means_no_replication() -> None:
    project = BUILT.project
    without_dr = Project(project.name, project.registry, tuple(e for e in project.environments if e.dr is None))
    layers = {s.layer for s in build_project_stacks(without_dr, PROJECT_LAYERS)}
    assert "registry-replication" not in layers and not any(x.startswith("registry-replica") for x in layers)
    assert "registry" in layers
