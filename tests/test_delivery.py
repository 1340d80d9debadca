"""Delivery: the release pipelines (project stacks), blue/green services, the release roles in the
environments' accounts, and the files the application repositories need."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    BUILT,
    SERVICES,
    SETTINGS,
    WEB_SERVICES,
    build_all,
    build_environment,
    edit_yaml,
    resources,
    stack_of,
)

from infra_templates import checks
from infra_templates.checks import TemplateFile, check_cfn_lint, shellcheck_command
from infra_templates.config import SettingsError, load_environment, project_of
from templates.delivery import RELEASE_BUILDSPEC
from templates.release_files import IMAGE_PLACEHOLDER, delivery_files
from templates.service import PRE_RELEASE_CODE

# the example services besides web and api, each with its repository under a connection
OTHER_REPOSITORIES = {"mailer": "acme/shop-mailer", "nightly": "acme/shop-nightly", "payments": "acme/shop-payments"}

CONNECTION = "arn:aws:codeconnections:eu-west-1:444444444444:connection/11111111-2222-3333-4444-555555555555"


def pipeline_of(body: dict[str, Any]) -> dict[str, Any]:
    (pipeline,) = resources(body, "AWS::CodePipeline::Pipeline").values()
    return pipeline["Properties"]


def actions(stage: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(a["RunOrder"], a["ActionTypeId"]["Category"], a["ActionTypeId"]["Provider"]) for a in stage["Actions"]]


def role_policies(body: dict[str, Any], name: str) -> str:
    return json.dumps(body["Resources"][name]["Properties"]["Policies"])


# --- the pipeline ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", WEB_SERVICES)  # CodeDeploy releases blue/green services only (web)
def test_the_pipeline_releases_through_the_stages_in_the_settings_order(service, codedeploy_built) -> None:
    pipeline = pipeline_of(codedeploy_built.project_stacks[f"delivery-{service}"].body)
    assert pipeline["PipelineType"] == "V2"
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "Build", "Dev", "Staging", "Prod", "Dr"]
    stages = {s["Name"]: s for s in pipeline["Stages"]}
    assert actions(stages["Dev"]) == [(1, "Build", "CodeBuild")]  # dev is rolling: through its stack
    assert actions(stages["Staging"]) == [(1, "Deploy", "CodeDeployToECS")]
    assert actions(stages["Prod"]) == [(1, "Approval", "Manual"), (2, "Deploy", "CodeDeployToECS")]
    assert stages["Prod"]["Actions"][0]["Configuration"]["NotificationArn"] == {
        "Fn::ImportValue": "shop-delivery-NotificationTopicArn"
    }
    assert stages["Dr"]["Actions"][0]["Region"] == "eu-central-1"


def test_stage_order_and_approvals_follow_the_settings(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["staging", "dev"], delivery__approval_before=["dev"])
    built = build_all(settings_dir)
    pipeline = pipeline_of(built.project_stacks["delivery-web"].body)
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "Build", "Staging", "Dev"]
    assert actions(pipeline["Stages"][3]) == [(1, "Approval", "Manual"), (2, "Build", "CodeBuild")]


@pytest.mark.parametrize("service", SERVICES)
def test_each_stage_releases_the_built_tag_through_the_service_stack(service) -> None:
    body = stack_of("project", f"delivery-{service}").body
    pipeline = pipeline_of(body)
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "Build", "Dev", "Staging", "Prod", "Dr"]
    (build,) = pipeline["Stages"][1]["Actions"]
    assert build["Namespace"] == "BuildVariables"  # the buildspec exports IMAGE_TAG
    accounts = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333", "dr": "333333333333"}
    for stage in pipeline["Stages"][2:]:
        env = stage["Name"].lower()
        approval = env in ("prod", "dr") and env == "prod"
        assert actions(stage) == [(1, "Approval", "Manual")] * approval + [(1 + approval, "Build", "CodeBuild")]
        release = stage["Actions"][-1]
        assert release["Configuration"]["ProjectName"] == {"Ref": "Release"}
        given = release["Configuration"]["EnvironmentVariables"]["Fn::Sub"]
        variables = {v["name"]: v["value"] for v in json.loads(given)}
        assert variables == {
            "IMAGE_TAG": "#{BuildVariables.IMAGE_TAG}",
            "RELEASE_ROLE": f"arn:${{AWS::Partition}}:iam::{accounts[env]}:role/shop-{env}-{service}-deploy",
            "RELEASE_REGION": "eu-central-1" if env == "dr" else "eu-west-1",
            "STACK_NAME": f"shop-{env}-svc-{service}",
            "PARAMETER_NAME": f"/shop/{env}/{service}/image-tag",  # each service its own tag
            "CFN_ROLE": f"arn:${{AWS::Partition}}:iam::{accounts[env]}:role/shop-{env}-deployer-cfn",
        }
    project = body["Resources"]["Release"]["Properties"]
    assert project["Source"]["BuildSpec"] == RELEASE_BUILDSPEC
    role = body["Resources"]["ReleaseBuildRole"]["Properties"]
    assert role["RoleName"] == f"shop-{service}-release"
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    assumed = statements["ReleaseThroughThisServicesRoleInEachEnvironment"]["Resource"]
    assert [r["Fn::Sub"].rsplit("/", 1)[1] for r in assumed] == [
        f"shop-{env}-{service}-deploy" for env in ("dev", "staging", "prod", "dr")
    ]


def test_the_release_script_is_shellcheck_clean(tmp_path: Path) -> None:
    script = yaml.safe_load(RELEASE_BUILDSPEC)["phases"]["build"]["commands"][0]
    path = tmp_path / "release.sh"
    path.write_text("#!/bin/bash\n" + script, encoding="utf-8")
    result = subprocess.run(
        [*shellcheck_command(), "-s", "bash", str(path)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    # the parameter is put back when the update fails: it always names what runs
    assert script.count("aws ssm put-parameter") == 2 and "--use-previous-template" in script


def test_each_region_a_release_reaches_has_an_artifact_store() -> None:
    stores = pipeline_of(stack_of("project", "delivery-web").body)["ArtifactStores"]
    assert [s["Region"] for s in stores] == ["eu-west-1", "eu-central-1"]
    assert stores[1]["ArtifactStore"]["Location"] == "shop-delivery-444444444444-eu-central-1"
    region_stack = BUILT.project_stacks["delivery-artifacts-eu-central-1"]
    assert region_stack.region == "eu-central-1"
    bucket = region_stack.body["Resources"]["ArtifactBucket"]
    assert bucket["Properties"]["BucketName"] == "shop-delivery-444444444444-eu-central-1"


def test_failed_releases_are_reported_to_the_topic() -> None:
    body = stack_of("project", "delivery-web").body
    (rule,) = [r for r in resources(body, "AWS::Events::Rule").values() if "aws.codepipeline" in json.dumps(r)]
    assert rule["Properties"]["EventPattern"]["detail"]["state"] == ["FAILED"]
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::ImportValue": "shop-delivery-NotificationTopicArn"}


def test_the_artifact_bucket_is_encrypted_tls_only_with_a_lifecycle() -> None:
    body = stack_of("project", "delivery").body
    bucket = body["Resources"]["ArtifactBucket"]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["ArtifactKey", "Arn"]}}
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 30
    statements = body["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statements[0]["Sid"] == "DenyInsecureTransport"


@pytest.mark.parametrize("layer", ["delivery", "delivery-artifacts-eu-central-1", "delivery-artifacts-us-east-1"])
def test_every_artifact_bucket_logs_its_access_to_its_own_log_bucket(layer) -> None:
    body = stack_of("project", layer).body
    bucket = body["Resources"]["ArtifactBucket"]["Properties"]
    name = bucket["BucketName"]
    assert bucket["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "ArtifactAccessLogBucket"},
        "LogFilePrefix": f"s3/{name}/",
    }
    logs = body["Resources"]["ArtifactAccessLogBucket"]
    # S3 server access logging delivers only to a bucket encrypted with SSE-S3.
    encryption = logs["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert logs["DeletionPolicy"] == "Retain"
    statements = body["Resources"]["ArtifactAccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (writer,) = [s for s in statements if s["Sid"] == "S3WritesServerAccessLogsOfTheNamedBuckets"]
    assert writer["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert writer["Action"] == ["s3:PutObject"]
    assert writer["Resource"] == [{"Fn::Sub": "${ArtifactAccessLogBucket.Arn}/s3/*"}]
    assert writer["Condition"]["ArnLike"]["aws:SourceArn"] == [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{name}"}]
    assert writer["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_only_the_environments_release_roles_may_read_artifacts() -> None:
    key = stack_of("project", "delivery").body["Resources"]["ArtifactKey"]["Properties"]["KeyPolicy"]
    (reader,) = [s for s in key["Statement"] if s["Sid"] == "ReleaseRolesOfTheEnvironmentsReadArtifacts"]
    accounts = json.dumps(reader["Principal"])
    assert all(a in accounts for a in ("111111111111", "222222222222", "333333333333"))
    roles = json.dumps(reader["Condition"]["ArnLike"]["aws:PrincipalArn"])
    assert "role/shop-prod-*-deploy" in roles
    assert "shop-dr-" not in roles  # dr reads from its own region's bucket


# --- roles: each scoped to its own service ----------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_pipeline_and_build_roles_name_only_their_own_service(service) -> None:
    body = stack_of("project", f"delivery-{service}").body
    others = [s for s in SERVICES if s != service]
    for role in ("PipelineRole", "BuildRole"):
        text = role_policies(body, role)
        for other in others:
            assert f"-{other}-" not in text and f"/{other}" not in text, f"{role} names {other}"
    assumed = json.loads(role_policies(body, "PipelineRole"))[0]["PolicyDocument"]["Statement"]
    # the pipeline assumes no role: the release build does, with its own role
    assert not [s for s in assumed if s["Action"] == ["sts:AssumeRole"]]
    assumed = json.loads(role_policies(body, "ReleaseBuildRole"))[0]["PolicyDocument"]["Statement"]
    (assume,) = [s for s in assumed if s["Action"] == ["sts:AssumeRole"]]
    names = [r["Fn::Sub"].rsplit("/", 1)[1] for r in assume["Resource"]]
    assert names == [f"shop-{env}-{service}-deploy" for env in ("dev", "staging", "prod", "dr")]
    push = json.loads(role_policies(body, "BuildRole"))[0]["PolicyDocument"]["Statement"]
    (ecr,) = [s for s in push if s["Sid"] == "PushThisServicesImage"]
    assert ecr["Resource"] == [
        {"Fn::Sub": f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/shop/{service}"}
    ]


@pytest.mark.parametrize(("env", "service"), [(e, s) for e in ("dev", "prod") for s in WEB_SERVICES])
def test_release_and_codedeploy_roles_are_scoped_to_their_service(env, service, codedeploy_built) -> None:
    body = codedeploy_built.stacks[env][f"svc-{service}"].body
    role = body["Resources"]["ReleaseRole"]["Properties"]
    assert role["RoleName"] == f"shop-{env}-{service}-deploy"
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    if env == "dev":  # rolling: released through its stack
        assert trust["Condition"]["ArnEquals"]["aws:PrincipalArn"] == {
            "Fn::Sub": f"arn:${{AWS::Partition}}:iam::444444444444:role/shop-{service}-release"
        }
        assert statements["WriteThisServicesImageTag"]["Resource"] == [
            {
                "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
                f"/shop/dev/{service}/image-tag"
            }
        ]
        assert statements["UpdateThisStack"]["Action"] == [
            "cloudformation:DescribeStacks",
            "cloudformation:UpdateStack",
        ]
        assert statements["UpdateItAsTheDeployersCloudFormationRole"]["Condition"] == {
            "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
        }
        assert "CodeDeployRole" not in body["Resources"]
    else:
        assert trust["Condition"]["ArnEquals"]["aws:PrincipalArn"] == {
            "Fn::Sub": f"arn:${{AWS::Partition}}:iam::444444444444:role/shop-{service}-pipeline"
        }
        assert statements["PassThisServicesTaskRoles"]["Resource"] == [
            {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
            {"Fn::GetAtt": ["TaskRole", "Arn"]},
        ]
        release = statements["ReleaseThroughThisServicesDeploymentGroup"]["Resource"]
        assert f"deploymentgroup:shop-{env}-{service}/shop-{env}-{service}" in json.dumps(release)
        codedeploy = {
            s["Sid"]: s for s in json.loads(role_policies(body, "CodeDeployRole"))[0]["PolicyDocument"]["Statement"]
        }
        assert codedeploy["ShiftThisServicesRules"]["Resource"] == [
            {"Ref": "ListenerRule"},
            {"Ref": "TestListenerRule"},
        ]
        assert {"Ref": "Service"} in codedeploy["ManageThisServicesTaskSets"]["Resource"]


# --- blue/green --------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["staging", "prod", "dr"])
def test_a_codedeploy_service_has_two_target_groups_a_test_listener_and_alarm_rollback(env, codedeploy_built) -> None:
    body = codedeploy_built.stacks[env]["svc-web"].body
    assert sorted(resources(body, "AWS::ElasticLoadBalancingV2::TargetGroup")) == ["GreenTargetGroup", "TargetGroup"]
    test_rule = body["Resources"]["TestListenerRule"]["Properties"]
    assert test_rule["ListenerArn"] == {"Fn::ImportValue": f"shop-{env}-platform-TestListenerArn"}
    group = body["Resources"]["DeploymentGroup"]["Properties"]
    assert group["DeploymentStyle"] == {"DeploymentOption": "WITH_TRAFFIC_CONTROL", "DeploymentType": "BLUE_GREEN"}
    assert group["DeploymentConfigName"] == "CodeDeployDefault.ECSCanary10Percent5Minutes"
    assert group["AutoRollbackConfiguration"] == {
        "Enabled": True,
        "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
    }
    assert group["AlarmConfiguration"]["Enabled"] is True
    alarms = [a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]]
    assert alarms and all(body["Resources"][a]["Type"] == "AWS::CloudWatch::Alarm" for a in alarms)
    termination = group["BlueGreenDeploymentConfiguration"]["TerminateBlueInstancesOnDeploymentSuccess"]
    assert termination == {"Action": "TERMINATE", "TerminationWaitTimeInMinutes": 5}
    pair = group["LoadBalancerInfo"]["TargetGroupPairInfoList"][0]
    assert pair["TestTrafficRoute"]["ListenerArns"] == [{"Fn::ImportValue": f"shop-{env}-platform-TestListenerArn"}]


def test_a_codedeploy_service_is_handed_to_codedeploy_without_cloudformation_fighting_it(codedeploy_built) -> None:
    service = codedeploy_built.stacks["prod"]["svc-web"].body["Resources"]["Service"]
    properties = service["Properties"]
    assert properties["DeploymentController"] == {"Type": "CODE_DEPLOY"}
    # By family: a later stack update never changes the property CloudFormation cannot update.
    assert properties["TaskDefinition"] == "shop-prod-svc-web"
    assert "TaskDefinition" in service["DependsOn"]
    assert "DeploymentCircuitBreaker" not in properties["DeploymentConfiguration"]


@pytest.mark.parametrize("env", ["staging", "prod", "dr"])
def test_a_blue_green_service_is_shifted_by_ecs_and_owned_by_its_stack(env) -> None:
    body = stack_of(env, "svc-web").body
    properties = body["Resources"]["Service"]["Properties"]
    assert properties["DeploymentController"] == {"Type": "ECS"}
    # the stack's own task definition: a new image or variable is a stack update
    assert properties["TaskDefinition"] == {"Ref": "TaskDefinition"}
    (balancer,) = properties["LoadBalancers"]
    assert balancer["TargetGroupArn"] == {"Ref": "TargetGroup"}
    assert balancer["AdvancedConfiguration"] == {
        "AlternateTargetGroupArn": {"Ref": "GreenTargetGroup"},
        "ProductionListenerRule": {"Ref": "ListenerRule"},
        "TestListenerRule": {"Ref": "TestListenerRule"},
        "RoleArn": {"Fn::GetAtt": ["LoadBalancerRole", "Arn"]},
    }
    configuration = properties["DeploymentConfiguration"]
    # CodeDeployDefault.ECSCanary10Percent5Minutes: 10 % for 5 minutes, then the rest
    assert configuration["Strategy"] == "CANARY"
    assert configuration["CanaryConfiguration"] == {"CanaryPercent": 10.0, "CanaryBakeTimeInMinutes": 5}
    assert configuration["BakeTimeInMinutes"] == 5  # deployment.termination_wait_minutes
    assert "DeploymentCircuitBreaker" not in configuration
    alarms = configuration["Alarms"]
    assert (alarms["Enable"], alarms["Rollback"]) == (True, True)
    assert alarms["AlarmNames"] and all(
        body["Resources"][a["Ref"]]["Type"] == "AWS::CloudWatch::Alarm" for a in alarms["AlarmNames"]
    )
    assert not resources(body, "AWS::CodeDeploy::DeploymentGroup")
    assert not resources(body, "AWS::CodeDeploy::Application")
    assert "CodeDeployRole" not in body["Resources"]


def test_ecs_may_shift_only_this_services_rules_and_target_groups() -> None:
    role = stack_of("prod", "svc-api").body["Resources"]["LoadBalancerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs.amazonaws.com"}
    statements = {s["Sid"]: s for s in role["Policies"][0]["PolicyDocument"]["Statement"]}
    assert statements["ShiftThisServicesRules"]["Resource"] == [{"Ref": "ListenerRule"}, {"Ref": "TestListenerRule"}]
    assert statements["ShiftThisServicesRules"]["Action"] == ["elasticloadbalancing:ModifyRule"]
    assert statements["RegisterInThisServicesTargetGroups"]["Resource"] == [
        {"Ref": "TargetGroup"},
        {"Ref": "GreenTargetGroup"},
    ]
    assert statements["ReadLoadBalancing"]["Resource"] == ["*"]  # Describe* has no resource-level permissions
    assert set(statements) == {"ReadLoadBalancing", "RegisterInThisServicesTargetGroups", "ShiftThisServicesRules"}


@pytest.mark.parametrize(
    ("shift", "strategy", "extra"),
    [
        ("CodeDeployDefault.ECSAllAtOnce", "BLUE_GREEN", {}),
        (
            "CodeDeployDefault.ECSCanary10Percent15Minutes",
            "CANARY",
            {"CanaryConfiguration": {"CanaryPercent": 10.0, "CanaryBakeTimeInMinutes": 15}},
        ),
        (
            "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
            "LINEAR",
            {"LinearConfiguration": {"StepPercent": 10.0, "StepBakeTimeInMinutes": 3}},
        ),
    ],
)
def test_the_traffic_shift_becomes_the_ecs_strategy(settings_dir: Path, shift: str, strategy: str, extra: dict) -> None:
    edit_yaml(settings_dir / "defaults.yaml", deployment__traffic_shift=shift)
    configuration = build_environment(settings_dir, "prod")["svc-web"].body["Resources"]["Service"]["Properties"][
        "DeploymentConfiguration"
    ]
    assert configuration["Strategy"] == strategy
    assert {k: configuration[k] for k in ("CanaryConfiguration", "LinearConfiguration") if k in configuration} == extra
    # the circuit breaker with BLUE_GREEN only (ECS Developer Guide, "deployment failure detection")
    breaker = configuration.get("DeploymentCircuitBreaker")
    assert breaker == ({"Enable": True, "Rollback": True} if strategy == "BLUE_GREEN" else None)


def test_a_bake_time_ecs_refuses_is_refused_with_the_ecs_controller(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", deployment__termination_wait_minutes=1441)
    message = refusal(settings_dir, "prod")
    assert "deployment.termination_wait_minutes" in message and "1440" in message
    edit_yaml(settings_dir / "defaults.yaml", deployment__controller="codedeploy", services__api__calls=[])
    assert load_environment("prod", settings_dir).deployment.termination_wait_minutes == 1441


def test_a_rolling_service_keeps_the_circuit_breaker_and_one_target_group() -> None:
    body = stack_of("dev", "svc-web").body
    properties = body["Resources"]["Service"]["Properties"]
    assert properties["DeploymentController"] == {"Type": "ECS"}
    assert properties["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert list(resources(body, "AWS::ElasticLoadBalancingV2::TargetGroup")) == ["TargetGroup"]
    assert not resources(body, "AWS::CodeDeploy::DeploymentGroup")


def test_the_test_listener_exists_only_with_blue_green_and_answers_the_vpc_only(environments) -> None:
    assert "TestListener" not in stack_of("dev", "platform").body["Resources"]
    assert "AlbTestListenerIngress" not in stack_of("dev", "security").body["Resources"]
    listener = stack_of("prod", "platform").body["Resources"]["TestListener"]["Properties"]
    assert (listener["Port"], listener["Protocol"]) == (8443, "HTTPS")
    ingress = stack_of("prod", "security").body["Resources"]["AlbTestListenerIngress"]["Properties"]
    assert (ingress["FromPort"], ingress["CidrIp"]) == (8443, str(environments["prod"].network.cidr))


def test_a_service_may_override_its_environments_strategy(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "prod.yaml", services__api__deployment_strategy="rolling")
    env = load_environment("prod", settings_dir)
    assert (env.strategy_of("api"), env.strategy_of("web")) == ("rolling", "blue-green")


# --- files of the application repositories ------------------------------------------------------


@pytest.mark.parametrize(("env", "service"), [(e, s) for e in ("staging", "prod", "dr") for s in WEB_SERVICES])
def test_taskdef_names_the_container_port_roles_and_logs_of_the_service_stack(env, service, codedeploy_built) -> None:
    built = codedeploy_built
    files = delivery_files(built.project, {e: list(s.values()) for e, s in built.stacks.items()})
    taskdef = json.loads(files[f"{service}/taskdef-{env}.json"])
    body = built.stacks[env][f"svc-{service}"].body
    settings = built.environments[env]
    account, region = settings.account_id, settings.region
    role = body["Resources"]["ExecutionRole"]["Properties"]["RoleName"]
    assert taskdef["executionRoleArn"] == f"arn:aws:iam::{account}:role/{role}"
    role = body["Resources"]["TaskRole"]["Properties"]["RoleName"]
    assert taskdef["taskRoleArn"] == f"arn:aws:iam::{account}:role/{role}"
    assert taskdef["family"] == body["Resources"]["Service"]["Properties"]["TaskDefinition"]
    (container,) = taskdef["containerDefinitions"]
    (load_balancer,) = body["Resources"]["Service"]["Properties"]["LoadBalancers"]
    assert container["name"] == load_balancer["ContainerName"] == service
    assert container["portMappings"] == [{"containerPort": load_balancer["ContainerPort"], "protocol": "tcp"}]
    # dr pulls from the replica in its own region: its image is the stack's own (tests/test_dr.py)
    assert container["image"] == IMAGE_PLACEHOLDER or env == "dr"
    options = container["logConfiguration"]["options"]
    assert options["awslogs-group"] == body["Resources"]["LogGroup"]["Properties"]["LogGroupName"]
    assert options["awslogs-region"] == region
    stack_secrets = body["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0].get("Secrets", [])
    assert [s["name"] for s in container.get("secrets", [])] == [s["Name"] for s in stack_secrets]
    assert "${" not in json.dumps(taskdef)  # every reference resolved
    appspec = files[f"{service}/appspec-{env}.yaml"]
    assert f"ContainerName: {service}" in appspec and f"ContainerPort: {load_balancer['ContainerPort']}" in appspec


def test_database_values_known_only_at_deploy_time_name_their_export(codedeploy_built) -> None:
    built = codedeploy_built
    files = delivery_files(built.project, {e: list(s.values()) for e, s in built.stacks.items()})
    taskdef = files["api/taskdef-prod.json"]
    imports = set(built.stacks["prod"]["svc-api"].imports)
    placeholders = {p.split("@@")[0] for p in taskdef.split("@@")[1::2]}
    assert placeholders and placeholders <= imports
    # the settings decide the name and port: only what AWS names at creation stays a placeholder
    assert placeholders == {"shop-prod-data-ClusterEndpoint"}
    variables = {v["name"]: v["value"] for v in json.loads(taskdef)["containerDefinitions"][0]["environment"]}
    assert variables["DB_NAME"] == built.environments["prod"].database.name
    assert variables["DB_PORT"] == "5432"
    assert variables["DB_USERNAME"] == "svc_api" and variables["DB_REGION"] == "eu-west-1"


def test_the_buildspec_pushes_the_commit_and_ships_what_the_deploy_actions_read(codedeploy_built) -> None:
    built = codedeploy_built
    files = delivery_files(built.project, {e: list(s.values()) for e, s in built.stacks.items()})
    buildspec = files["web/buildspec.yml"]
    assert 'docker push "$REPOSITORY_URI:$COMMIT_ID"' in buildspec
    for name in ("imageDetail.json", "taskdef-prod.json", "appspec-prod.yaml"):
        assert f"- {name}" in buildspec
    assert "taskdef-dev.json" not in buildspec  # dev is rolling: released through its stack
    assert "make test" in buildspec
    assert yaml.safe_load(buildspec)["env"]["exported-variables"] == ["IMAGE_TAG"]


def test_services_released_through_their_stacks_need_no_file_filled_in_by_hand() -> None:
    files = delivery_files(BUILT.project, {e: list(s.values()) for e, s in BUILT.stacks.items()})
    assert sorted(files) == [f"{s}/{f}" for s in SERVICES for f in ("README.md", "buildspec.yml")]
    assert not any("@@" in text for text in files.values())
    for env, stacks in BUILT.stacks.items():
        for layer, stack in stacks.items():
            assert "@@" not in stack.json, f"{env}/{layer}"
        for service in SERVICES:
            parameter = stacks[f"svc-{service}"].body["Parameters"]["ImageTag"]
            assert parameter == {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": f"/shop/{env}/{service}/image-tag",
                "Description": parameter["Description"],
            }


# --- sources -------------------------------------------------------------------------------------


def test_a_connection_replaces_the_codecommit_repositories(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml",
        delivery__connection={
            "provider": "GitHub",
            "arn": CONNECTION,
            "repositories": {"web": "acme/shop-web", "api": "acme/shop-api", **OTHER_REPOSITORIES},
            "infrastructure": "acme/shop-infrastructure",
        },
    )
    body = build_all(settings_dir).project_stacks["delivery-web"].body
    assert not resources(body, "AWS::CodeCommit::Repository")
    source = pipeline_of(body)["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["FullRepositoryId"] == "acme/shop-web"
    assert CONNECTION in role_policies(body, "PipelineRole")


def test_without_a_connection_each_service_has_a_codecommit_repository() -> None:
    body = stack_of("project", "delivery-api").body
    (repository,) = resources(body, "AWS::CodeCommit::Repository").values()
    assert repository["Properties"]["RepositoryName"] == "shop-api"
    assert repository["DeletionPolicy"] == "Retain"


# --- refusals --------------------------------------------------------------------------------------


def refusal(settings_dir: Path, env: str = "staging") -> str:
    with pytest.raises(SettingsError) as caught:
        load_environment(env, settings_dir)
    return str(caught.value)


def test_a_connection_without_a_services_repository_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml",
        delivery__connection={"provider": "GitHub", "arn": CONNECTION, "repositories": {"web": "acme/shop-web"}},
    )
    message = refusal(settings_dir)
    assert (
        f"staging.yaml: delivery.connection.repositories.api (inherited from {settings_dir / 'defaults.yaml'})"
        in message
    )
    assert "every service needs its repository id" in message


def test_a_provider_without_its_connection_arn_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", delivery__connection={"provider": "GitHub"})
    message = refusal(settings_dir)
    assert "delivery.connection.arn" in message and "delivery.connection.repositories" in message
    assert "defaults.yaml" in message


def test_an_approval_for_a_stage_not_released_to_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", delivery__approval_before=["qa"])
    message = refusal(settings_dir)
    assert (
        f"staging.yaml: delivery.approval_before[0] = 'qa' (inherited from {settings_dir / 'defaults.yaml'})" in message
    )


def test_a_stage_that_is_no_environment_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "qa"], delivery__approval_before=[])
    environments = [load_environment(name, settings_dir) for name in ("dev", "staging")]
    with pytest.raises(SettingsError) as caught:
        project_of(environments, settings_dir)
    assert "defaults.yaml: delivery.stages[1] = 'qa': is not an environment" in str(caught.value)


def test_an_unknown_traffic_shift_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", deployment__traffic_shift="CodeDeployDefault.AllAtOnce")
    assert "staging.yaml: deployment.traffic_shift" in refusal(settings_dir)


def test_codedeploy_services_still_pass_cfn_lint_and_the_rule_pack(codedeploy_built, tmp_path: Path) -> None:
    files = []
    for env in ("staging", "prod", "dr"):
        for service in WEB_SERVICES:  # the other kinds release rolling, through their stacks
            stack = codedeploy_built.stacks[env][f"svc-{service}"]
            assert stack.body["Resources"]["Service"]["Properties"]["DeploymentController"] == {"Type": "CODE_DEPLOY"}
            path = tmp_path / f"{env}-{service}.json"
            path.write_text(json.dumps(stack.body), encoding="utf-8")
            files.append(TemplateFile(path, env, stack.name, stack.region))
    assert check_cfn_lint(files) == []


# --- the pre-release task ------------------------------------------------------------------------

MIGRATE = ["python", "manage.py", "migrate"]


def test_a_pre_release_command_needs_an_ecs_blue_green_service(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", services__api__pre_release=MIGRATE)
    message = refusal(settings_dir, "dev")  # dev is rolling
    assert "services.api.pre_release" in message and "blue-green" in message
    edit_yaml(settings_dir / "dev.yaml", services__api__pre_release=None)
    assert load_environment("prod", settings_dir).services["api"].pre_release == MIGRATE
    edit_yaml(settings_dir / "defaults.yaml", deployment__controller="codedeploy", services__api__calls=[])
    assert "services.api.pre_release" in refusal(settings_dir, "prod")


@pytest.fixture(scope="module")
def with_pre_release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pre-release") / "environments"
    shutil.copytree(SETTINGS, folder)
    edit_yaml(folder / "prod.yaml", services__api__pre_release=MIGRATE)
    return build_environment(folder, "prod")["svc-api"].body


def test_the_pre_release_command_runs_from_a_lifecycle_hook_before_traffic_shifts(with_pre_release) -> None:
    body = with_pre_release
    (hook,) = body["Resources"]["Service"]["Properties"]["DeploymentConfiguration"]["LifecycleHooks"]
    assert hook == {
        "HookTargetArn": {"Fn::GetAtt": ["PreReleaseHook", "Arn"]},
        "RoleArn": {"Fn::GetAtt": ["PreReleaseInvokeRole", "Arn"]},
        "LifecycleStages": ["POST_SCALE_UP"],  # the new tasks run; neither test nor production traffic yet
    }
    function = body["Resources"]["PreReleaseHook"]["Properties"]
    assert function["Environment"]["Variables"] == {"CONTAINER": "api", "COMMAND": json.dumps(MIGRATE)}
    invoke = json.loads(role_policies(body, "PreReleaseInvokeRole"))[0]["PolicyDocument"]["Statement"]
    assert invoke[0]["Resource"] == [{"Fn::GetAtt": ["PreReleaseHook", "Arn"]}]
    run = {s["Sid"]: s for s in json.loads(role_policies(body, "PreReleaseRole"))[0]["PolicyDocument"]["Statement"]}
    assert run["RunATaskOfThisService"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/shop-prod-svc-api:*"}
    ]
    assert run["RunATaskOfThisService"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": {"Fn::ImportValue": "shop-prod-platform-ClusterArn"}}
    }


@pytest.mark.xdist_group("checkov")  # on the worker whose checkov fork server the checkov tests started
def test_the_pre_release_template_passes_cfn_lint_and_checkov(with_pre_release, tmp_path: Path) -> None:
    path = tmp_path / "svc-api.json"
    path.write_text(json.dumps(with_pre_release), encoding="utf-8")
    assert check_cfn_lint([TemplateFile(path, "prod", "shop-prod-svc-api", "eu-west-1")]) == []
    bare = copy.deepcopy(with_pre_release)
    declared = set()
    for logical, resource in bare["Resources"].items():
        for skip in resource.pop("Metadata", {}).get("checkov", {}).get("skip", []):
            declared.add((logical, skip["id"]))
    scratch = tmp_path / "scan"
    scratch.mkdir()
    (scratch / "svc-api.json").write_text(json.dumps(bare), encoding="utf-8")
    findings, scanned = checks._run_checkov(scratch)
    assert scanned > 0
    assert {(logical, check) for _, logical, check in findings} == declared  # each finding skipped, with a reason


class FakeEcs:
    """The ECS calls the hook makes, answered from a script of task states."""

    def __init__(self, exit_code: int | None, running: bool = False) -> None:
        self.exit_code, self.running, self.started = exit_code, running, []

    def list_tasks(self, cluster: str, startedBy: str, desiredStatus: str) -> dict:  # noqa: N803 (boto3's names)
        if not self.started:
            return {"taskArns": []}
        return {"taskArns": ["arn:task/1"] if (desiredStatus == "RUNNING") == self.running else []}

    def describe_service_revisions(self, serviceRevisionArns: list[str]) -> dict:  # noqa: N803
        return {"serviceRevisions": [{"taskDefinition": "td:7", "networkConfiguration": {"awsvpcConfiguration": {}}}]}

    def run_task(self, **kwargs: Any) -> dict:
        self.started.append(kwargs)
        return {"tasks": [{"taskArn": "arn:task/1"}], "failures": []}

    def describe_tasks(self, cluster: str, tasks: list[str]) -> dict:
        status = "RUNNING" if self.running else "STOPPED"
        return {
            "tasks": [
                {"taskArn": tasks[0], "lastStatus": status, "containers": [{"name": "api", "exitCode": self.exit_code}]}
            ]
        }


def hook(fake: FakeEcs, monkeypatch: pytest.MonkeyPatch) -> Any:
    boto3 = types.ModuleType("boto3")
    boto3.client = lambda name: fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boto3", boto3)
    monkeypatch.setenv("CONTAINER", "api")
    monkeypatch.setenv("COMMAND", json.dumps(MIGRATE))
    namespace: dict[str, Any] = {}
    exec(compile(PRE_RELEASE_CODE, "index.py", "exec"), namespace)
    return namespace["handler"]


EVENT = {
    "serviceArn": "arn:aws:ecs:eu-west-1:333333333333:service/shop-prod/api",
    "targetServiceRevisionArn": "arn:aws:ecs:eu-west-1:333333333333:service-revision/shop-prod/api/4242",
}


@pytest.mark.parametrize(("exit_code", "status"), [(0, "SUCCEEDED"), (1, "FAILED"), (None, "FAILED")])
def test_the_hook_runs_the_command_once_and_a_non_zero_exit_stops_the_release(
    monkeypatch: pytest.MonkeyPatch, exit_code: int | None, status: str
) -> None:
    fake = FakeEcs(exit_code, running=True)
    handler = hook(fake, monkeypatch)
    assert handler(EVENT, None) == {"hookStatus": "IN_PROGRESS", "callBackDelay": 30}
    (started,) = fake.started
    assert started["taskDefinition"] == "td:7" and started["cluster"] == "shop-prod"
    assert started["startedBy"] == "pre-release-4242"
    assert started["overrides"] == {"containerOverrides": [{"name": "api", "command": MIGRATE}]}
    assert handler(EVENT, None)["hookStatus"] == "IN_PROGRESS"  # still running: not started twice
    fake.running = False
    assert handler(EVENT, None) == {"hookStatus": status}
    assert len(fake.started) == 1
