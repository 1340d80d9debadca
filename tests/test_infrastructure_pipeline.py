"""The infrastructure's own pipeline (project stack shop-delivery-infrastructure) and the deployer
roles it deploys each environment with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILT, build_all, edit_yaml, refusal, resources, stack_of

from infra_templates import checks
from infra_templates.catalog import handler_permissions
from infra_templates.regions import acting_regions
from templates import infrastructure, infrastructure_plan

# the example services besides web and api, each with its repository under a connection
OTHER_REPOSITORIES = {"mailer": "acme/shop-mailer", "nightly": "acme/shop-nightly", "payments": "acme/shop-payments"}

LAYER = "delivery-infrastructure"
CONNECTION = "arn:aws:codeconnections:eu-west-1:444444444444:connection/11111111-2222-3333-4444-555555555555"


def pipeline(body: dict[str, Any]) -> dict[str, Any]:
    return body["Resources"]["Pipeline"]["Properties"]


def stage_names(body: dict[str, Any]) -> list[str]:
    return [stage["Name"] for stage in pipeline(body)["Stages"]]


def actions(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(stage, action) in the order the pipeline runs them."""
    return [(s["Name"], a) for s in pipeline(body)["Stages"] for a in sorted(s["Actions"], key=lambda a: a["RunOrder"])]


def change_sets(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(s, a) for s, a in actions(body) if a["Configuration"].get("ActionMode") == "CHANGE_SET_REPLACE"]


def not_deployed(body: dict[str, Any]) -> dict[str, str]:
    """Each stack the pipeline leaves alone, with the reason its Metadata gives."""
    return {
        name: group["Reason"] for group in body["Metadata"]["InfraTemplatesNotDeployed"] for name in group["Stacks"]
    }


BODY = stack_of("project", LAYER).body


def manifest(env: str) -> dict[str, Any]:
    return json.loads(BUILT.files[env]["manifest.json"])


# --- the stages --------------------------------------------------------------------------------


def test_stages_follow_the_settings_with_an_approval_before_prod() -> None:
    assert stage_names(BODY) == ["Source", "Gate", "Dev", "Staging", "ApproveProd", "Prod", "Dr"]
    (approval,) = pipeline(BODY)["Stages"][4]["Actions"]
    assert approval["ActionTypeId"] == {"Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"}
    assert approval["Configuration"]["NotificationArn"] == {"Fn::ImportValue": "shop-delivery-NotificationTopicArn"}


def test_other_settings_give_other_stages(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "prod"], delivery__approval_before=["dev"])
    body = build_all(settings_dir).project_stacks[LAYER].body
    assert stage_names(body) == ["Source", "Gate", "ApproveDev", "Dev", "Prod"]


def test_the_gate_runs_make_test_and_hands_the_output_folder_on() -> None:
    gate = BODY["Resources"]["Gate"]["Properties"]
    assert "- make test" in gate["Source"]["BuildSpec"]
    assert "base-directory: output" in gate["Source"]["BuildSpec"]
    assert "PrivilegedMode" not in gate["Environment"]
    ((_, build),) = [(s, a) for s, a in actions(BODY) if s == "Gate"]
    assert build["OutputArtifacts"] == [{"Name": "Templates"}]
    assert pipeline(BODY)["PipelineType"] == "V2"


def test_failures_notify_the_delivery_topic() -> None:
    rule = BODY["Resources"]["FailedReleaseRule"]["Properties"]
    assert rule["EventPattern"]["detail"] == {"pipeline": [{"Ref": "Pipeline"}], "state": ["FAILED"]}
    assert rule["Targets"][0]["Arn"] == {"Fn::ImportValue": "shop-delivery-NotificationTopicArn"}


def test_the_build_logs_go_to_an_encrypted_group_with_retention() -> None:
    group = BODY["Resources"]["BuildLogGroup"]["Properties"]
    assert group["KmsKeyId"] == {"Fn::ImportValue": "shop-delivery-ArtifactKeyArn"}
    assert group["RetentionInDays"] == BUILT.project.delivery.log_retention_days


# --- what each stage deploys ---------------------------------------------------------------------


def test_every_stack_of_each_manifest_is_deployed_once_in_manifest_order() -> None:
    expected: list[str] = []
    for env in BUILT.project.delivery.stages:
        for entry in manifest(env)["stacks"]:
            if entry["scope"] == "environment" and entry["name"] not in expected:
                expected.append(entry["name"])
    skipped = not_deployed(BODY)
    deployed = [a["Configuration"]["StackName"] for _, a in change_sets(BODY)]
    assert deployed == [name for name in expected if name not in skipped]
    assert len(deployed) == len(set(deployed))
    for name, reason in skipped.items():  # only the deployer's roles: the service stacks are deployed too
        assert name.endswith("-deployer"), name
        assert reason


def test_the_service_stacks_are_deployed_with_the_released_tag_they_resolve() -> None:
    # no override of ImageTag: CloudFormation resolves the SSM parameter the release wrote, so
    # deploying a service stack never rolls its release back
    services = [(stage, a) for stage, a in change_sets(BODY) if "-svc-" in a["Configuration"]["StackName"]]
    assert {a["Configuration"]["StackName"] for _, a in services} == {
        f"shop-{env}-svc-{service}" for env, settings in BUILT.environments.items() for service in settings.services
    }
    for _, action in services:
        assert "ImageTag" not in action["Configuration"].get("ParameterOverrides", "")


def test_a_stack_is_deployed_in_the_stage_of_its_environment_or_the_first_that_needs_it() -> None:
    stages = {a["Configuration"]["StackName"]: stage for stage, a in change_sets(BODY)}
    assert stages["shop-prod-data"] == "Prod"  # listed first in dr's manifest too, deployed once
    assert stages["shop-dr-data"] == "Dr"
    assert all(stages[f"shop-{env}-keys"] == env.capitalize() for env in ("dev", "staging", "prod"))
    # what prod needs of dr (the secret's replica key, the assets' replica, the failover target)
    # goes in prod's stage, before the prod stack that needs it
    for needed in ("shop-dr-keys", "shop-dr-platform", "shop-dr-assets-replica"):
        assert stages[needed] == "Prod", needed


def test_each_change_set_is_executed_right_after_it_is_created() -> None:
    for stage in pipeline(BODY)["Stages"][2:]:
        ordered = sorted(stage["Actions"], key=lambda a: a["RunOrder"])
        assert [a["RunOrder"] for a in ordered] == list(range(1, len(ordered) + 1))
        for plan, execute in zip(ordered[::2], ordered[1::2], strict=False):
            if plan["ActionTypeId"]["Category"] == "Approval":
                continue
            assert plan["Configuration"]["ActionMode"] == "CHANGE_SET_REPLACE"
            assert execute["Configuration"]["ActionMode"] == "CHANGE_SET_EXECUTE"
            assert execute["Configuration"]["StackName"] == plan["Configuration"]["StackName"]
            assert execute["Configuration"]["ChangeSetName"] == plan["Configuration"]["ChangeSetName"]


def test_actions_act_in_the_stacks_region_from_its_folder_with_its_environments_roles() -> None:
    own = {  # each stack in the manifest of the folder that holds it
        e["name"]: (env, e)
        for env in BUILT.environments
        for e in manifest(env)["stacks"]
        if e["scope"] == "environment" and not e["templates"]["yaml"].startswith("../")
    }
    for _, action in change_sets(BODY):
        env, entry = own[action["Configuration"]["StackName"]]
        account = BUILT.environments[env].account_id
        role = f"arn:${{AWS::Partition}}:iam::{account}:role/shop-{env}-deployer"
        assert action["Region"] == entry["region"]
        assert action["Configuration"]["TemplatePath"] == f"Templates::{env}/{entry['templates']['json']}"
        assert action["RoleArn"] == {"Fn::Sub": f"{role}-action"}
        assert action["Configuration"]["RoleArn"] == {"Fn::Sub": f"{role}-cfn"}


def test_every_region_an_action_runs_in_has_an_artifact_store_and_bucket() -> None:
    regions = {a["Region"] for _, a in actions(BODY) if "Region" in a}
    stores = {store["Region"] for store in pipeline(BODY)["ArtifactStores"]}
    assert regions <= stores
    assert {"us-east-1", "eu-central-1"} <= stores  # the edge stacks, and dr
    for region in stores - {BUILT.project.region}:
        assert f"delivery-artifacts-{region}" in BUILT.project_stacks


def test_cross_region_parameters_come_from_the_source_stacks_output_file() -> None:
    by_name = {a["Name"]: a for _, a in actions(BODY)}
    for consumer, parameter, source, artifact in (
        ("ProdEdge", "WebAclArn", "shop-prod-edge-waf", "ProdEdgeWafOutputs"),
        ("ProdEdgeAlarms", "DistributionId", "shop-prod-edge", "ProdEdgeOutputs"),
        ("DrEdge", "WebAclArn", "shop-dr-edge-waf", "DrEdgeWafOutputs"),
        ("ProdEdge", "ReplicaBucketArn", "shop-dr-assets-replica", "DrAssetsReplicaOutputs"),
        ("DrEdge", "DistributionId", "shop-prod-edge", "ProdEdgeOutputs"),
    ):
        plan = by_name[f"{consumer}-ChangeSet"]
        overrides = json.loads(plan["Configuration"]["ParameterOverrides"])
        assert overrides[parameter] == {"Fn::GetParam": [artifact, f"{source}.json", parameter]}
        assert {"Name": artifact} in plan["InputArtifacts"]
        label = artifact.removesuffix("Outputs")
        execute = by_name[f"{label}-Execute"]
        assert execute["Configuration"]["OutputFileName"] == f"{source}.json"
        assert execute["OutputArtifacts"] == [{"Name": artifact}]
    assert by_name["ProdEdgeWaf-Execute"]["Region"] == "us-east-1"


def test_a_stage_holds_at_most_50_actions_and_splits_between_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infrastructure, "MAX_ACTIONS", 6)
    body = infrastructure.build(BUILT.project, infrastructure_plan(BUILT.project)).to_dict()
    names = stage_names(body)
    assert names[:5] == ["Source", "Gate", "Dev", "Dev2", "Dev3"]
    for stage in pipeline(body)["Stages"]:
        assert len(stage["Actions"]) <= 6
        assert sorted(a["RunOrder"] for a in stage["Actions"]) == list(range(1, len(stage["Actions"]) + 1))
    deployed = [a["Configuration"]["StackName"] for _, a in change_sets(body)]
    assert deployed == [a["Configuration"]["StackName"] for _, a in change_sets(BODY)]


def test_the_gate_refuses_a_pipeline_beyond_codepipelines_quotas(tmp_path: Path) -> None:
    stage = {"Name": "Big", "Actions": [{"Name": f"A{i}"} for i in range(51)]}
    body = {"Resources": {"Pipeline": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"Stages": [stage] * 51}}}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(body))
    problems = checks.check_limits([checks.TemplateFile(path, "project", "p", "eu-west-1")])
    assert any("51 stages" in p.message for p in problems)
    assert any("stage Big: 51 actions" in p.message for p in problems)


def test_the_pipeline_template_is_uploaded_through_the_artifact_bucket(tmp_path: Path) -> None:
    (entry,) = [e for e in manifest("project")["stacks"] if e["layer"] == LAYER]
    assert entry["upload_bucket"] == "shop-delivery-444444444444-eu-west-1"
    assert (
        "--s3-bucket shop-delivery-444444444444-eu-west-1 --s3-prefix templates" in BUILT.files["project"]["deploy.sh"]
    )
    big = tmp_path / "big.json"
    big.write_text(" " * 60_000 + "{}")
    assert checks.check_limits([checks.TemplateFile(big, "project", "p", "eu-west-1", uploaded=True)]) == []
    assert checks.check_limits([checks.TemplateFile(big, "project", "p", "eu-west-1")])


# --- sources ----------------------------------------------------------------------------------


def test_the_source_is_a_codecommit_repository_kept_with_the_stack() -> None:
    repository = BODY["Resources"]["SourceRepository"]
    assert repository["Properties"]["RepositoryName"] == "shop-infrastructure"
    assert repository["DeletionPolicy"] == "Retain"
    assert actions(BODY)[0][1]["ActionTypeId"]["Provider"] == "CodeCommit"


def test_a_connection_names_this_repository(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml",
        delivery__connection={
            "provider": "GitHub",
            "arn": CONNECTION,
            "repositories": {"web": "acme/shop-web", "api": "acme/shop-api", **OTHER_REPOSITORIES},
            "infrastructure": "acme/shop-infrastructure",
        },
    )
    body = build_all(settings_dir).project_stacks[LAYER].body
    assert not resources(body, "AWS::CodeCommit::Repository")
    source = actions(body)[0][1]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["FullRepositoryId"] == "acme/shop-infrastructure"


def test_a_connection_without_this_repository_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml",
        delivery__connection={
            "provider": "GitHub",
            "arn": CONNECTION,
            "repositories": {"web": "a/w", "api": "a/a", **OTHER_REPOSITORIES},
        },
    )
    message = refusal(settings_dir)
    defaults = settings_dir / "defaults.yaml"
    assert f"staging.yaml: delivery.connection.infrastructure (inherited from {defaults}): is missing" in message
    assert "owner/name" in message


def test_a_malformed_repository_id_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml",
        delivery__connection={
            "provider": "GitHub",
            "arn": CONNECTION,
            "repositories": {"web": "a/w", "api": "a/a", **OTHER_REPOSITORIES},
            "infrastructure": "no-owner",
        },
    )
    assert "delivery.connection.infrastructure = 'no-owner'" in refusal(settings_dir)


# --- roles ------------------------------------------------------------------------------------


def policy(body: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for p in body["Resources"][role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def execution_statements(env: str) -> list[dict[str, Any]]:
    body = stack_of(env, "deployer").body
    return [
        s
        for name, r in resources(body, "AWS::IAM::ManagedPolicy").items()
        if name.startswith("ExecutionPolicy")  # not the environment roles' PermissionsBoundary
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]


ROLE_STATEMENTS = ("ManageOnlyThisEnvironmentsRoles", "ChangeThisEnvironmentsRolesOnlyWithTheBoundary")


@pytest.mark.parametrize("env", sorted(BUILT.environments))
def test_the_execution_role_is_trusted_by_cloudformation_only(env: str) -> None:
    role = stack_of(env, "deployer").body["Resources"]["ExecutionRole"]["Properties"]
    assert role["RoleName"] == f"shop-{env}-deployer-cfn"
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "AdministratorAccess" not in json.dumps(role)
    assert len(role["ManagedPolicyArns"]) <= 10


@pytest.mark.parametrize("env", sorted(BUILT.environments))
def test_the_execution_role_may_do_exactly_what_its_resource_types_need(env: str) -> None:
    stacks = BUILT.stacks[env].values()
    wanted = {
        a
        for s in stacks
        if s.layer != "deployer"
        for r in s.body["Resources"].values()
        for a in handler_permissions(s.region, r["Type"])
    }
    allowed = set()
    # Where the stacks are, us-east-1 (global services), and where their resources act (a replica).
    acting = {r for s in stacks for r in acting_regions(s.body)}
    regions = sorted({s.region for s in stacks if s.layer != "deployer"} | {"us-east-1"} | acting)
    fences = [s for s in execution_statements(env) if s["Sid"] == "StayInTheEnvironmentsRegions"]
    assert fences == [
        {
            "Sid": "StayInTheEnvironmentsRegions",
            "Effect": "Deny",
            "Action": ["*"],
            "Resource": ["*"],
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": regions}},
        }
    ]
    for statement in execution_statements(env):
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Deny":
            continue
        if statement["Sid"] == "ResolveTheReleasedImageTags":  # the service stacks' SSM parameter types
            assert listed == ["ssm:GetParameters"]
            assert all(f":parameter/shop/{env}/*" in r["Fn::Sub"] for r in statement["Resource"])
            continue
        if statement["Sid"] == "ResolveTheSecretsTheTemplatesName":  # the origin-verify dynamic references
            assert listed == ["secretsmanager:GetSecretValue"]
            assert all(r["Fn::Sub"].endswith("-origin-verify-value-??????") for r in statement["Resource"])
            continue
        assert all("*" not in a for a in listed), statement["Sid"]  # no service:* and never *:*
        allowed.update(listed)
    assert allowed == wanted


@pytest.mark.parametrize("env", sorted(BUILT.environments))
def test_the_execution_roles_iam_actions_reach_only_this_environments_roles(env: str) -> None:
    statements = {s["Sid"]: s for s in execution_statements(env)}
    roles = statements["ManageOnlyThisEnvironmentsRoles"]
    assert all(a.startswith("iam:") for a in roles["Action"])
    assert roles["Resource"] == [
        {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/shop-{env}-*"},
        {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*"},
    ]
    bounded = statements["ChangeThisEnvironmentsRolesOnlyWithTheBoundary"]
    assert all(a.startswith("iam:") for a in bounded["Action"])
    assert bounded["Resource"] == roles["Resource"][:1]  # never service-linked roles, never the deployer's
    assert not [
        s
        for s in statements.values()
        if s["Sid"] not in ROLE_STATEMENTS and any(a.startswith("iam:") for a in s["Action"]) and s["Effect"] == "Allow"
    ]
    deny = statements["NeverChangeTheDeployerRoles"]
    assert deny["Effect"] == "Deny" and deny["Action"] == ["iam:*"]
    assert deny["Resource"] == [
        {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/shop-{env}-deployer-*"}
    ]


@pytest.mark.parametrize("env", sorted(BUILT.environments))
def test_the_action_role_is_the_pipelines_and_changes_only_this_environments_stacks(env: str) -> None:
    body = stack_of(env, "deployer").body
    role = body["Resources"]["ActionRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {
        "ArnEquals": {
            "aws:PrincipalArn": {"Fn::Sub": "arn:${AWS::Partition}:iam::444444444444:role/shop-infrastructure-pipeline"}
        }
    }
    statements = {s["Sid"]: s for s in policy(body, "ActionRole")}
    stacks = statements["ChangeThisEnvironmentsStacksThroughChangeSets"]["Resource"]
    assert all(
        f":stack/shop-{env}-*/*" in r["Fn::Sub"] or ":changeSet/infrastructure-pipeline/*" in r["Fn::Sub"]
        for r in stacks
    )
    passed = statements["HandTheExecutionRoleToCloudFormation"]
    assert passed["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}


def test_the_pipeline_assumes_only_the_deployer_action_roles() -> None:
    statements = {s["Sid"]: s for s in policy(BODY, "PipelineRole")}
    assumed = statements["DeployThroughEachEnvironmentsDeployerRole"]["Resource"]
    assert [r["Fn::Sub"].rsplit("/", 1)[1] for r in assumed] == [
        f"shop-{e}-deployer-action" for e in ("dev", "dr", "prod", "staging")
    ]
    assert BODY["Resources"]["PipelineRole"]["Properties"]["RoleName"] == "shop-infrastructure-pipeline"


def test_artifact_buckets_let_exactly_the_action_roles_that_act_in_their_region_read_and_write() -> None:
    def writers(layer: str) -> list[str]:
        body = stack_of("project", layer).body
        statements = body["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        (statement,) = [
            s for s in statements if s["Sid"] == "InfrastructurePipelineActionRolesReadTemplatesAndWriteOutputs"
        ]
        return [r["Fn::Sub"].rsplit("/", 1)[1] for r in statement["Condition"]["ArnEquals"]["aws:PrincipalArn"]]

    assert writers("delivery-artifacts-us-east-1") == [
        f"shop-{e}-deployer-action" for e in ("dev", "dr", "prod", "staging")
    ]
    assert writers("delivery-artifacts-eu-central-1") == ["shop-dr-deployer-action"]
    assert writers("delivery") == [f"shop-{e}-deployer-action" for e in ("dev", "prod", "staging")]


def test_the_deployer_comes_first_in_every_manifest_and_the_pipeline_leaves_it_alone() -> None:
    for env in BUILT.environments:
        own = [
            e
            for e in manifest(env)["stacks"]
            if e["scope"] == "environment" and not e["templates"]["yaml"].startswith("../")
        ]
        assert own[0]["layer"] == "deployer"
        assert f"shop-{env}-deployer" in not_deployed(BODY)
