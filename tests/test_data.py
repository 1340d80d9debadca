"""Data layer: Aurora in the isolated tier, encrypted, TLS-only, password managed by RDS, kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint
from conftest import ENVIRONMENTS, build_environment, edit_yaml, refusal, resources, walk

from infra_templates.checks import RULES_DIR
from templates import data_access


def cluster(stacks, env: str) -> dict:
    return stacks[env]["data"].body["Resources"]["Cluster"]


def instances(stacks, env: str) -> dict[str, dict]:
    return resources(stacks[env]["data"].body, "AWS::RDS::DBInstance")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cluster_lives_in_the_data_subnets_behind_the_database_group(stacks, env) -> None:
    body = stacks[env]["data"].body
    (group,) = resources(body, "AWS::RDS::DBSubnetGroup").values()
    assert group["Properties"]["SubnetIds"] == {
        "Fn::Split": [",", {"Fn::ImportValue": f"shop-{env}-network-DataSubnetIds"}]
    }
    props = cluster(stacks, env)["Properties"]
    assert props["VpcSecurityGroupIds"] == [{"Fn::ImportValue": f"shop-{env}-security-DatabaseSecurityGroupId"}]
    for instance in instances(stacks, env).values():
        assert instance["Properties"]["PubliclyAccessible"] is False


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_encrypted_with_the_data_key_and_iam_auth(stacks, env) -> None:
    props = cluster(stacks, env)["Properties"]
    assert props["StorageEncrypted"] is True
    assert props["KmsKeyId"] == {"Fn::ImportValue": f"shop-{env}-keys-DataKeyArn"}
    assert props["EnableIAMDatabaseAuthentication"] is True
    for node in walk(stacks[env]["data"].body):  # no password value anywhere, only references
        if isinstance(node, dict) and "MasterUserPassword" in node:
            assert node["MasterUserPassword"] == {
                "Fn::Sub": "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:password}}"
            }


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_password_managed_by_rds_by_default(stacks, env) -> None:
    props = cluster(stacks, env)["Properties"]
    assert props["ManageMasterUserPassword"] is True
    assert props["MasterUserSecret"] == {"KmsKeyId": {"Fn::ImportValue": f"shop-{env}-keys-DataKeyArn"}}
    assert props["MasterUsername"] == "shop_admin"
    assert "MasterUserPassword" not in props


def test_a_global_primary_generates_its_secret_and_replicates_it_to_the_dr_region(stacks) -> None:
    body = stacks["prod"]["data"].body
    props = body["Resources"]["Cluster"]["Properties"]
    assert "ManageMasterUserPassword" not in props  # AWS refuses it on a global database member
    secret = body["Resources"]["DatabaseSecret"]
    assert secret["Properties"]["Name"] == "shop/prod/database"
    assert secret["Properties"]["KmsKeyId"] == {"Fn::ImportValue": "shop-prod-keys-DataKeyArn"}
    assert secret["Properties"]["ReplicaRegions"] == [{"Region": "eu-central-1", "KmsKeyId": {"Ref": "DataKeyArn"}}]
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "password" and generated["PasswordLength"] >= 32
    assert secret["DeletionPolicy"] == "Retain"
    assert props["MasterUsername"] == {"Fn::Sub": "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:username}}"}
    attachment = body["Resources"]["DatabaseSecretAttachment"]["Properties"]
    assert attachment == {
        "SecretId": {"Ref": "DatabaseSecret"},
        "TargetId": {"Ref": "Cluster"},
        "TargetType": "AWS::RDS::DBCluster",
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tls_is_required_by_the_parameter_group(stacks, env) -> None:
    (group,) = resources(stacks[env]["data"].body, "AWS::RDS::DBClusterParameterGroup").values()
    assert group["Properties"]["Family"] == "aurora-postgresql17"
    assert group["Properties"]["Parameters"] == {"rds.force_ssl": "1"}


@pytest.mark.parametrize(("env", "days", "protected", "policy"), [
    ("dev", 1, False, "Snapshot"),
    ("staging", 7, True, "Snapshot"),
    ("prod", 30, True, "Snapshot"),
    ("dr", 30, True, "Snapshot"),
])  # fmt: skip
def test_backups_and_deletion_safety_per_environment(stacks, env, days, protected, policy) -> None:
    resource = cluster(stacks, env)
    assert resource["Properties"]["BackupRetentionPeriod"] == days
    assert resource["Properties"]["DeletionProtection"] is protected
    assert resource["Properties"]["CopyTagsToSnapshot"] is True
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == policy


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_log_type_is_exported_to_a_group_with_retention_created_first(stacks, environments, env) -> None:
    resource = cluster(stacks, env)
    assert resource["Properties"]["EnableCloudwatchLogsExports"] == ["postgresql"]
    group = stacks[env]["data"].body["Resources"]["PostgresqlLogGroup"]
    assert group["Properties"]["LogGroupName"] == f"/aws/rds/cluster/shop-{env}/postgresql"
    assert group["Properties"]["RetentionInDays"] == environments[env].database.log_retention_days
    assert resource["DependsOn"] == ["PostgresqlLogGroup"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_instances_have_insights_enhanced_monitoring_and_minor_upgrades(stacks, env) -> None:
    for name, instance in instances(stacks, env).items():
        props = instance["Properties"]
        assert props["EnablePerformanceInsights"] is True, name
        assert props["PerformanceInsightsKMSKeyId"] == {"Fn::ImportValue": f"shop-{env}-keys-DataKeyArn"}
        assert props["MonitoringInterval"] == 60
        assert props["MonitoringRoleArn"] == {"Fn::GetAtt": ["MonitoringRole", "Arn"]}
        assert props["AutoMinorVersionUpgrade"] is True
    role = stacks[env]["data"].body["Resources"]["MonitoringRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            for arn in statement["Resource"]:
                assert ":log-group:RDSOSMetrics:" in arn["Fn::Sub"]


def test_dev_is_a_small_serverless_writer(stacks) -> None:
    props = cluster(stacks, "dev")["Properties"]
    # dev's file pauses the database when idle (min_acu 0), after an hour.
    assert props["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": 0,
        "MaxCapacity": 2,
        "SecondsUntilAutoPause": 3600,
    }
    (writer,) = instances(stacks, "dev").values()
    assert writer["Properties"]["DBInstanceClass"] == "db.serverless"


def test_prod_has_a_writer_and_a_reader_in_another_zone(stacks) -> None:
    found = instances(stacks, "prod")
    assert set(found) == {"WriterInstance", "ReaderInstance1"}
    zones = {n: i["Properties"]["AvailabilityZone"]["Fn::Select"][0] for n, i in found.items()}
    assert zones["WriterInstance"] != zones["ReaderInstance1"]
    assert {i["Properties"]["DBInstanceClass"] for i in found.values()} == {"db.r7g.large"}
    assert "ServerlessV2ScalingConfiguration" not in cluster(stacks, "prod")["Properties"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exports_what_services_and_monitoring_need(stacks, environments, env) -> None:
    # the administrator secret's rotation function, where this stack rotates it: monitoring alarms on its errors
    rotation = ("MasterRotationFunctionName",) if data_access.rotates_master(environments[env]) else ()
    assert stacks[env]["data"].exports == sorted(
        f"shop-{env}-data-{key}"
        for key in (
            "ClusterIdentifier",
            "ClusterEndpoint",
            "ReaderEndpoint",
            "Port",
            "SecretArn",
            "SecretResource",
            "DatabaseName",
            "ClusterResourceId",
            *rotation,
        )
    )


def test_mysql_gets_its_port_log_types_and_tls_parameter(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml",
        database__engine="aurora-mysql",
        database__engine_version="8.0.mysql_aurora.3.08.2",
    )
    staging = build_environment(settings_dir, "staging")
    body = staging["data"].body
    props = body["Resources"]["Cluster"]["Properties"]
    assert props["Port"] == 3306
    assert props["EnableCloudwatchLogsExports"] == ["audit", "error", "general", "slowquery"]
    (group,) = resources(body, "AWS::RDS::DBClusterParameterGroup").values()
    assert group["Properties"]["Family"] == "aurora-mysql8.0"
    assert group["Properties"]["Parameters"]["require_secure_transport"] == "ON"
    service = staging["svc-api"].body
    into_db = [
        r["Properties"]
        for r in resources(service, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::ImportValue": "shop-staging-security-DatabaseSecurityGroupId"}
    ]
    assert {r["FromPort"] for r in into_db} == {3306}


def test_unknown_or_deprecated_engine_version_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", database__engine_version="16.4")
    message = refusal(settings_dir)
    assert "database.engine_version = '16.4': is not a aurora-postgresql version CloudFormation accepts" in message
    assert "17.5" in message


def test_serverless_min_above_max_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", database__capacity={"mode": "serverless", "min_acu": 8, "max_acu": 2})
    assert "staging.yaml: database.capacity.min_acu = 8.0: is above max_acu (2.0)" in refusal(settings_dir)


def test_production_without_deletion_protection_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "prod.yaml", database__deletion_protection=False)
    assert "prod.yaml: database.deletion_protection = false: must be true in a production environment" in refusal(
        settings_dir, "prod"
    )


def test_production_without_a_reader_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "prod.yaml",
        database__capacity={"mode": "provisioned", "instance_class": "db.r7g.large", "readers": 0},
    )
    assert "database.capacity.readers = 0: must be at least 1 in a production environment" in refusal(
        settings_dir, "prod"
    )


@pytest.mark.parametrize("user", ["admin", "postgres", "root"])
def test_well_known_admin_names_are_refused(settings_dir: Path, user: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", database__master_username=user)
    assert f"database.master_username = '{user}': is a well-known or reserved name" in refusal(settings_dir)


def test_service_variables_cannot_shadow_the_database_ones(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__environment={"DB_HOST": "elsewhere"})
    message = refusal(settings_dir)
    assert "services.api.environment.DB_HOST = 'elsewhere': is set from the database when database_access" in message


def test_zero_acu_builds_with_auto_pause_and_passes_the_gate_lint(settings_dir: Path) -> None:
    # AWS takes 0 ACUs (auto-pause) on recent engines; troposphere's validator does not (data.py
    # works around it in one place). The template must be what cfn-lint and the rule pack accept.
    capacity = {"mode": "serverless", "min_acu": 0, "max_acu": 4, "readers": 0, "seconds_until_auto_pause": 900}
    edit_yaml(settings_dir / "staging.yaml", database__capacity=capacity)
    body = build_environment(settings_dir, "staging")["data"].body
    scaling = body["Resources"]["Cluster"]["Properties"]["ServerlessV2ScalingConfiguration"]
    assert scaling == {"MinCapacity": 0.0, "MaxCapacity": 4.0, "SecondsUntilAutoPause": 900}
    config = ManualArgs(include_checks=["I"], regions=["eu-west-1"], append_rules=[str(RULES_DIR)])
    assert [f"{m.rule.id} {m.message}" for m in lint(json.dumps(body), config=config)] == []
