"""The rule pack (src/infra_templates/rules/): each rule breaks on one small template and keeps on
another, run through cfn-lint's own API (the pack's rules alone, which find there what they find
appended to cfn-lint's own rules, as the gate and users run them: the last tests hold them to that)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.core import get_rules
from cfnlint.rules import RulesCollection

from infra_templates.checks import RULES_DIR, TemplateFile, check_cfn_lint

ACCOUNT_ROLE = {"Fn::GetAtt": ["ExecutionRole", "Arn"]}
SECRET = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:shop/api/payment"


def template(resources: dict[str, Any], outputs: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
    if outputs:
        body["Outputs"] = outputs
    return json.dumps(body)


@functools.cache
def rules() -> Any:
    """cfn-lint's rules with the pack appended (``--append-rules``), loaded once."""
    return get_rules([str(RULES_DIR)], [], [])


@functools.cache
def pack() -> Any:
    """The pack's rules alone, in a collection of cfn-lint's own (what ``--append-rules`` adds to its rules).
    Each is a ``match(cfn)`` on the whole template, depending on no other rule: it finds the same
    alone as among cfn-lint's rules (test_the_pack_alone_finds_what_it_finds_among_cfn_lints_rules),
    without cfn-lint's schema validation of every resource (2.0 s of CPU for this module's templates
    instead of 0.1 s)."""
    collection = RulesCollection()
    collection.create_from_directory(str(RULES_DIR))
    return collection


def pack_findings(text: str, collection: Any = None) -> list[tuple[str, str]]:
    """(rule id, message) of the pack's rules (E9xxx) on ``text``, run alone (``pack()``) or among
    ``collection``."""
    found = lint(text, rules=pack() if collection is None else collection, regions=["eu-west-1"])
    return [(m.rule.id, m.message) for m in found if m.rule.id.startswith("E9")]


def ids(text: str) -> set[str]:
    return {rule for rule, _ in pack_findings(text)}


# --- E9001 / E9002: secrets -----------------------------------------------------------------------


def task_with_secret(value_from: Any, granted: list[Any]) -> dict[str, Any]:
    return {
        "ExecutionRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "start",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": granted}
                            ],
                        },
                    }
                ],
            },
        },
        "TaskDefinition": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": "256",
                "Memory": "512",
                "ExecutionRoleArn": ACCOUNT_ROLE,
                "ContainerDefinitions": [
                    {"Name": "app", "Image": "nginx", "Secrets": [{"Name": "KEY", "ValueFrom": value_from}]}
                ],
            },
        },
    }


def test_e9001_breaks_on_a_name_without_suffix_granted_with_wildcard() -> None:
    # the instance: ValueFrom names the secret without its suffix, the role grants -??????
    found = pack_findings(
        template(task_with_secret({"Fn::Sub": SECRET + ":api_key::"}, [{"Fn::Sub": SECRET + "-??????"}]))
    )
    messages = [m for rule, m in found if rule == "E9001"]
    assert any("partial ARN" in m for m in messages)
    assert any("matches no Resource" in m for m in messages)


def test_e9001_breaks_when_the_role_grants_another_secret() -> None:
    text = template(
        task_with_secret({"Fn::ImportValue": "data-SecretArn"}, [{"Fn::ImportValue": "data-SecretResource"}])
    )
    assert ids(text) == set()  # a bare import: cannot tell it names a secret
    text = template(
        task_with_secret(
            {"Fn::Sub": ["${Secret}:password::", {"Secret": {"Fn::ImportValue": "data-SecretArn"}}]},
            [{"Fn::ImportValue": "data-SecretResource"}],
        )
    )
    assert [m for rule, m in pack_findings(text) if rule == "E9001"] == [
        'ValueFrom secret \'${("Fn::ImportValue":"data-SecretArn")}\' matches no Resource of the execution '
        'role\'s secretsmanager:GetSecretValue statements ([\'${("Fn::ImportValue":"data-SecretResource")}\'])'
    ]


@pytest.mark.parametrize(
    ("value_from", "granted"),
    [
        ({"Fn::Sub": SECRET + "-AbC123:api_key::"}, [{"Fn::Sub": SECRET + "-AbC123"}]),  # complete, exact
        ({"Fn::Sub": SECRET + "-AbC123"}, [{"Fn::Sub": SECRET + "-??????"}]),  # complete, wildcard grant
        (
            {"Fn::Sub": ["${Secret}:password::", {"Secret": {"Fn::ImportValue": "data-SecretArn"}}]},
            [{"Fn::ImportValue": "data-SecretArn"}],
        ),  # the same import on both sides
        ({"Fn::Sub": "arn:aws:ssm:eu-west-1:111111111111:parameter/app/key"}, []),  # a parameter, not a secret
    ],
)
def test_e9001_keeps_a_complete_arn_the_role_grants(value_from: Any, granted: list[Any]) -> None:
    assert "E9001" not in ids(template(task_with_secret(value_from, granted or ["*"])))


def test_e9002_breaks_on_a_partial_secret_arn_in_an_output_or_iam_resource() -> None:
    role = task_with_secret({"Fn::Sub": SECRET + "-AbC123"}, [{"Fn::Sub": SECRET}])  # IAM: matches nothing
    outputs = {"SecretArn": {"Value": {"Fn::Sub": SECRET}}}
    found = [m for rule, m in pack_findings(template(role, outputs)) if rule == "E9002"]
    assert len(found) == 2
    assert any(m.startswith("output gives secret ARN") for m in found)
    assert any(m.startswith("IAM Resource") for m in found)


def test_e9002_keeps_complete_arns_and_iam_wildcards() -> None:
    role = task_with_secret({"Fn::Sub": SECRET + "-AbC123"}, [{"Fn::Sub": SECRET + "-??????"}])
    outputs = {
        "Complete": {"Value": {"Fn::Sub": SECRET + "-AbC123"}},
        "Computed": {
            "Value": {
                "Fn::Sub": [
                    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Name}",
                    {"Name": {"Fn::Select": [6, {"Fn::Split": [":", "arn:aws:x"]}]}},
                ]
            }
        },
        "Pattern": {"Value": {"Fn::Sub": SECRET + "-??????"}},
    }
    assert "E9002" not in ids(template(role, outputs))


def named_secret(name: str) -> dict[str, Any]:
    return {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": name, "GenerateSecretString": {}}}


def resolving(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::SSM::Parameter",
        "Properties": {"Type": "String", "Value": "{{resolve:secretsmanager:%s:SecretString:key:AWSPREVIOUS}}" % name},
    }


def test_e9013_breaks_on_a_secret_name_shaped_like_an_arn_suffix() -> None:
    """'-verify' and '-secret' are a hyphen and six characters: the shape of the ARN's random suffix."""
    found = [
        m for rule, m in pack_findings(template({"S": named_secret("shop-prod-origin-verify")})) if rule == "E9013"
    ]
    assert len(found) == 1 and "'shop-prod-origin-verify'" in found[0]
    found = [m for rule, m in pack_findings(template({"P": resolving("shop-prod-api-secret")})) if rule == "E9013"]
    assert len(found) == 1 and "dynamic reference" in found[0]


def test_e9013_keeps_other_names_and_arns() -> None:
    resources = {
        "S": named_secret("shop-prod-origin-verify-value"),
        "P": resolving("shop/prod/database"),
        "Q": resolving("arn:aws:secretsmanager:eu-west-1:111111111111:secret:shop-prod-api-AbCdEf"),
    }
    assert "E9013" not in ids(template(resources))


# --- E9003 / E9008 / E9009: resource policies ---------------------------------------------------

PULL = {
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
}


def repository(statement: dict[str, Any]) -> dict[str, Any]:
    return {
        "Repository": {
            "Type": "AWS::ECR::Repository",
            "Properties": {"RepositoryPolicyText": {"Version": "2012-10-17", "Statement": [statement]}},
        },
        "CreationTemplate": {
            "Type": "AWS::ECR::RepositoryCreationTemplate",
            "Properties": {
                "Prefix": "shop",
                "AppliedFor": ["REPLICATION"],
                "RepositoryPolicy": {"Fn::Sub": json.dumps({"Version": "2012-10-17", "Statement": [statement]})},
            },
        },
    }


def test_e9003_breaks_on_a_resource_in_a_repository_policy() -> None:
    found = [m for rule, m in pack_findings(template(repository({**PULL, "Resource": ["*"]}))) if rule == "E9003"]
    assert len(found) == 2  # the repository's policy and the creation template's


def test_e9003_keeps_a_repository_policy_without_resource() -> None:
    assert "E9003" not in ids(template(repository(PULL)))


def key(resource: Any) -> dict[str, Any]:
    admin = {"Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}}
    return {
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [{**admin, "Action": "kms:*", "Resource": resource}],
                }
            },
        }
    }


def test_e9008_breaks_on_a_key_policy_naming_a_key() -> None:
    assert "E9008" in ids(
        template(key({"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}))
    )


def test_e9008_keeps_resource_star() -> None:
    assert "E9008" not in ids(template(key("*")))


def bucket_policy(resource: Any) -> dict[str, Any]:
    statement = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resource}
    return {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "Policy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [statement]},
            },
        },
    }


def test_e9009_breaks_on_another_buckets_objects() -> None:
    assert "E9009" in ids(template(bucket_policy("arn:aws:s3:::somebody-elses-bucket/*")))


@pytest.mark.parametrize(
    "resource",
    [
        [{"Fn::GetAtt": ["Bucket", "Arn"]}, {"Fn::Sub": "${Bucket.Arn}/*"}],
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/logs/*"},
        {"Fn::Sub": ["${Arn}/*", {"Arn": {"Fn::GetAtt": ["Bucket", "Arn"]}}]},
    ],
)
def test_e9009_keeps_the_bucket_and_its_objects(resource: Any) -> None:
    assert "E9009" not in ids(template(bucket_policy(resource)))


# --- E9004 / E9006 / E9010: ECS services ----------------------------------------------------------


def service(*, controller: str = "ECS", read_only: bool = False, exec_: bool = False, breaker: bool = False) -> dict:
    configuration: dict[str, Any] = {"MaximumPercent": 200, "MinimumHealthyPercent": 100}
    if breaker:
        configuration["DeploymentCircuitBreaker"] = {"Enable": True, "Rollback": True}
    return {
        "TaskDefinition": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": "app",
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": "256",
                "Memory": "512",
                "ContainerDefinitions": [{"Name": "app", "Image": "nginx", "ReadonlyRootFilesystem": read_only}],
            },
        },
        "Service": {
            "Type": "AWS::ECS::Service",
            "DependsOn": ["TaskDefinition"],
            "Properties": {
                # a CODE_DEPLOY service names its task definition by family, as ours do
                "TaskDefinition": {"Ref": "TaskDefinition"} if controller == "ECS" else "app",
                "DeploymentController": {"Type": controller},
                "DeploymentConfiguration": configuration,
                "EnableExecuteCommand": exec_,
            },
        },
        "ScalableTarget": {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {
                "ServiceNamespace": "ecs",
                "ScalableDimension": "ecs:service:DesiredCount",
                "ResourceId": {"Fn::Join": ["/", ["service", "cluster", {"Fn::GetAtt": ["Service", "Name"]}]]},
                "MinCapacity": 1,
                "MaxCapacity": 2,
            },
        },
        "RequestScaling": {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": "requests",
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": {"Ref": "ScalableTarget"},
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": 1000.0,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ALBRequestCountPerTarget",
                        "ResourceLabel": "app/alb/1234567890abcdef/targetgroup/tg/1234567890abcdef",
                    },
                },
            },
        },
    }


def test_e9004_breaks_on_exec_with_a_read_only_root_filesystem() -> None:
    assert "E9004" in ids(template(service(exec_=True, read_only=True)))
    assert "E9004" in ids(template(service(controller="CODE_DEPLOY", exec_=True, read_only=True)))


@pytest.mark.parametrize(("exec_", "read_only"), [(True, False), (False, True)])
def test_e9004_keeps_exec_on_a_writable_root_and_read_only_without_exec(exec_: bool, read_only: bool) -> None:
    assert "E9004" not in ids(template(service(exec_=exec_, read_only=read_only)))


def test_e9006_breaks_on_request_count_scaling_of_a_blue_green_service() -> None:
    assert "E9006" in ids(template(service(controller="CODE_DEPLOY")))


def test_e9006_breaks_on_request_count_scaling_of_an_ecs_blue_green_service() -> None:
    body = service()
    body["Service"]["Properties"]["DeploymentConfiguration"]["Strategy"] = "CANARY"
    assert "E9006" in ids(template(body))


def test_e9006_keeps_request_count_scaling_of_a_rolling_service() -> None:
    assert "E9006" not in ids(template(service(controller="ECS")))


def test_e9010_breaks_on_a_circuit_breaker_with_code_deploy() -> None:
    assert "E9010" in ids(template(service(controller="CODE_DEPLOY", breaker=True)))


def test_e9010_keeps_a_circuit_breaker_on_a_rolling_service() -> None:
    assert "E9010" not in ids(template(service(controller="ECS", breaker=True)))


def shifting_service(strategy: str = "CANARY", *, advanced: bool = True, **extra: Any) -> dict[str, Any]:
    """An ECS-controller service with a traffic-shifting strategy, with or without what it shifts with."""
    body = service()
    configuration = body["Service"]["Properties"]["DeploymentConfiguration"]
    configuration.update({"Strategy": strategy, **extra})
    balancer: dict[str, Any] = {"ContainerName": "app", "ContainerPort": 80, "TargetGroupArn": "arn:tg/blue"}
    if advanced:
        balancer["AdvancedConfiguration"] = {
            "AlternateTargetGroupArn": "arn:tg/green",
            "ProductionListenerRule": "arn:listener-rule/prod",
            "RoleArn": "arn:role/ecs-lb",
        }
    body["Service"]["Properties"]["LoadBalancers"] = [balancer]
    del body["RequestScaling"]
    return body


@pytest.mark.parametrize(
    "body",
    [
        shifting_service(advanced=False),
        shifting_service("LINEAR", CanaryConfiguration={"CanaryPercent": 10.0, "CanaryBakeTimeInMinutes": 5}),
        shifting_service("CANARY", DeploymentCircuitBreaker={"Enable": True, "Rollback": True}),
        shifting_service("LINEAR", DeploymentCircuitBreaker={"Enable": True, "Rollback": True}),
    ],
)
def test_e9011_breaks_on_a_shift_without_its_resources_or_with_mismatched_settings(body: dict[str, Any]) -> None:
    assert "E9011" in ids(template(body))


def test_e9011_breaks_on_a_shifting_strategy_with_code_deploy() -> None:
    body = shifting_service()
    body["Service"]["Properties"]["DeploymentController"] = {"Type": "CODE_DEPLOY"}
    assert "E9011" in ids(template(body))


@pytest.mark.parametrize("strategy", ["BLUE_GREEN", "CANARY", "LINEAR"])
def test_e9011_keeps_a_shift_with_alternate_group_rule_and_role(strategy: str) -> None:
    assert "E9011" not in ids(template(shifting_service(strategy)))


def test_e9011_keeps_the_circuit_breaker_on_a_blue_green_shift() -> None:
    # Amazon ECS Developer Guide, "Amazon ECS deployment failure detection": rolling and blue/green.
    body = shifting_service("BLUE_GREEN", DeploymentCircuitBreaker={"Enable": True, "Rollback": True})
    assert "E9011" not in ids(template(body))


# --- E9005: event patterns ------------------------------------------------------------------------


def deployment_rule(event_name: str, detail_type: str = "ECS Deployment State Change") -> dict[str, Any]:
    return {
        "DeploymentFailedRule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventPattern": {
                    "source": ["aws.ecs"],
                    "detail-type": [detail_type],
                    "detail": {"eventName": [event_name]},
                },
                "State": "ENABLED",
            },
        }
    }


def test_e9005_breaks_on_deployment_failed_when_every_service_deploys_with_code_deploy() -> None:
    resources = {**service(controller="CODE_DEPLOY"), **deployment_rule("SERVICE_DEPLOYMENT_FAILED")}
    del resources["RequestScaling"]
    assert "E9005" in ids(template(resources))


@pytest.mark.parametrize(
    ("event_name", "detail_type"),
    [("SERVICE_DEPLOYMENT_FAILURE", "ECS Deployment State Change"), ("X", "ECS Deployment Change")],
)
def test_e9005_breaks_on_events_ecs_never_sends(event_name: str, detail_type: str) -> None:
    assert "E9005" in ids(template(deployment_rule(event_name, detail_type)))


@pytest.mark.parametrize(
    ("source", "detail_type"),
    [("aws.codedeploy", "CodeDeploy Deployment State-change Notification"), ("aws.ecs", "AWS API Call via CloudTrail")],
)
def test_e9005_keeps_what_ecs_and_codedeploy_send(source: str, detail_type: str) -> None:
    rule = deployment_rule("SERVICE_DEPLOYMENT_FAILED", detail_type)
    rule["DeploymentFailedRule"]["Properties"]["EventPattern"]["source"] = [source]
    assert "E9005" not in ids(template(rule))
    rule["DeploymentFailedRule"]["Properties"]["EventPattern"]["detail-type"] = ["CodeDeploy Deployment Failed"]
    assert "E9005" in ids(template(rule))


def test_e9005_keeps_deployment_failed_for_a_service_with_the_circuit_breaker() -> None:
    resources = {**service(controller="ECS", breaker=True), **deployment_rule("SERVICE_DEPLOYMENT_FAILED")}
    assert "E9005" not in ids(template(resources))
    assert "E9005" not in ids(template(deployment_rule("SERVICE_DEPLOYMENT_FAILED")))  # services elsewhere


# --- E9007: Aurora Serverless v2 at 0 ACUs ----------------------------------------------------------


def cluster(engine: str, version: str, minimum: float, pause: int | None = None) -> dict[str, Any]:
    scaling: dict[str, Any] = {"MinCapacity": minimum, "MaxCapacity": 4}
    if pause is not None:
        scaling["SecondsUntilAutoPause"] = pause
    return {
        "Cluster": {
            "Type": "AWS::RDS::DBCluster",
            "Properties": {
                "Engine": engine,
                "EngineVersion": version,
                "ManageMasterUserPassword": True,
                "MasterUsername": "shop_admin",
                "ServerlessV2ScalingConfiguration": scaling,
            },
        }
    }


@pytest.mark.parametrize(
    ("engine", "version", "minimum", "pause"),
    [
        ("aurora-postgresql", "16.2", 0, None),  # before auto-pause
        ("aurora-postgresql", "13.14", 0, 300),
        ("aurora-mysql", "8.0.mysql_aurora.3.07.1", 0, None),
        ("aurora-postgresql", "17.5", 0, 299),  # below AWS's range
        ("aurora-postgresql", "17.5", 0, 86401),
    ],
)
def test_e9007_breaks(engine: str, version: str, minimum: float, pause: int | None) -> None:
    assert "E9007" in ids(template(cluster(engine, version, minimum, pause)))


@pytest.mark.parametrize(
    ("engine", "version", "minimum", "pause"),
    [
        ("aurora-postgresql", "16.3", 0, 300),
        ("aurora-postgresql", "17.5", 0, 86400),
        ("aurora-postgresql", "13.15", 0, None),
        ("aurora-mysql", "8.0.mysql_aurora.3.08.0", 0, None),
        ("aurora-postgresql", "13.9", 0.5, None),  # old versions at 0.5 and above
    ],
)
def test_e9007_keeps(engine: str, version: str, minimum: float, pause: int | None) -> None:
    assert "E9007" not in ids(template(cluster(engine, version, minimum, pause)))


# --- E9012: where the RDS Data API runs --------------------------------------------------------------


def data_api_cluster(engine: str, version: str, instance_class: str) -> dict[str, Any]:
    resources = cluster(engine, version, 0.5)
    resources["Cluster"]["Properties"]["EnableHttpEndpoint"] = True
    resources["Writer"] = {
        "Type": "AWS::RDS::DBInstance",
        "Properties": {"DBClusterIdentifier": {"Ref": "Cluster"}, "DBInstanceClass": instance_class, "Engine": engine},
    }
    return resources


@pytest.mark.parametrize(
    ("engine", "version", "instance_class"),
    [
        ("aurora-postgresql", "16.0", "db.serverless"),  # before the Data API
        ("aurora-mysql", "8.0.mysql_aurora.3.06.0", "db.r7g.large"),
        ("aurora-postgresql", "17.5", "db.t4g.medium"),  # no T classes
    ],
)
def test_e9012_breaks(engine: str, version: str, instance_class: str) -> None:
    assert "E9012" in ids(template(data_api_cluster(engine, version, instance_class)))


@pytest.mark.parametrize(
    ("engine", "version", "instance_class"),
    [
        ("aurora-postgresql", "17.5", "db.serverless"),
        ("aurora-postgresql", "16.1", "db.r7g.large"),
        ("aurora-mysql", "8.0.mysql_aurora.3.08.0", "db.r7g.large"),
    ],
)
def test_e9012_keeps(engine: str, version: str, instance_class: str) -> None:
    assert "E9012" not in ids(template(data_api_cluster(engine, version, instance_class)))
    # without EnableHttpEndpoint, any version and class
    resources = data_api_cluster("aurora-postgresql", "16.0", "db.t4g.medium")
    del resources["Cluster"]["Properties"]["EnableHttpEndpoint"]
    assert "E9012" not in ids(template(resources))


# --- the pack as a whole -----------------------------------------------------------------------------


def pack_rules() -> list[Any]:
    return [rule for rule in rules() if rule.id.startswith("E9")]


def test_every_rule_is_tested_and_cites_an_aws_page() -> None:
    rules = pack_rules()
    tested = {name.split("_")[1].upper() for name in globals() if name.startswith("test_e9")}
    assert {rule.id for rule in rules} == tested
    assert len(rules) == len({rule.id for rule in rules})  # no rule loaded twice
    for rule in rules:
        assert rule.source_url.startswith("https://docs.aws.amazon.com/"), rule.id
        assert "Source" in rule.description, rule.id
        assert rule.shortdesc, rule.id


def test_the_cli_loads_the_pack_with_append_rules(tmp_path: Path) -> None:
    # What the README tells users: `cfn-lint --append-rules src/infra_templates/rules/ <template>`.
    path = tmp_path / "bad.json"
    path.write_text(template(repository({**PULL, "Resource": ["*"]})), encoding="utf-8")
    cli = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cli), "--append-rules", str(RULES_DIR), "--format", "parseable", "--", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout.count(":E9003:") == 2, result.stdout + result.stderr


def _breaking_every_rule() -> list[tuple[str, set[str]]]:
    """Templates that break every rule of the pack between them, each several at once: (text, the
    rules it breaks)."""
    parts = [
        service(controller="CODE_DEPLOY", exec_=True, read_only=True, breaker=True),
        repository({**PULL, "Resource": ["*"]}),
        key({"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}),
        bucket_policy("arn:aws:s3:::somebody-elses-bucket/*"),
        {"Secret": named_secret("shop-prod-origin-verify"), "Reference": resolving("shop-prod-api-secret")},
        cluster("aurora-postgresql", "16.2", 0),
        deployment_rule("SERVICE_DEPLOYMENT_FAILED"),
    ]
    resources = {name: resource for part in parts for name, resource in part.items()}
    assert len(resources) == sum(map(len, parts))  # no logical ID taken twice
    secrets = {
        **task_with_secret({"Fn::Sub": SECRET + ":api_key::"}, [{"Fn::Sub": SECRET}]),
        **data_api_cluster("aurora-postgresql", "16.0", "db.serverless"),
    }
    return [
        (template(resources), {"E9003", "E9004", "E9005", "E9006", "E9007", "E9008", "E9009", "E9010", "E9013"}),
        (template(secrets, {"SecretArn": {"Value": {"Fn::Sub": SECRET}}}), {"E9001", "E9002", "E9012"}),
        (template(shifting_service(advanced=False)), {"E9011"}),
    ]


def test_the_pack_alone_finds_what_it_finds_among_cfn_lints_rules() -> None:
    """The rule tests above run the pack alone (``pack()``): on templates that break every one of its
    rules between them, it finds exactly what it finds appended to cfn-lint's own rules."""
    broken: set[str] = set()
    for text, breaks in _breaking_every_rule():
        alone = pack_findings(text)
        assert sorted(alone) == sorted(pack_findings(text, rules()))
        assert {rule for rule, _ in alone} >= breaks
        broken |= breaks
    assert broken == {rule.id for rule in pack_rules()}


def test_the_gate_runs_the_pack(tmp_path: Path) -> None:
    path = tmp_path / "svc.json"
    path.write_text(template(service(exec_=True, read_only=True)), encoding="utf-8")
    problems = check_cfn_lint([TemplateFile(path, "test", "shop-test-svc", "eu-west-1")])
    assert any(" E9004 " in f" {p.message}" for p in problems), problems


def test_the_readme_lists_every_rule_with_its_source() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for rule in pack_rules():
        (row,) = [line for line in readme.splitlines() if line.startswith(f"| {rule.id} |")]
        assert "https://docs.aws.amazon.com/" in row, rule.id
