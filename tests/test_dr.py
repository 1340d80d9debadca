"""The DR environment: a standby of prod in another region whose database is already there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BUILT, ENVIRONMENTS, build_all, edit_yaml, resources

from infra_templates import checks
from infra_templates.config import SettingsError, load_environment, project_of
from templates.release_files import delivery_files


def test_dr_protects_prod_from_another_region(environments) -> None:
    dr, prod = environments["dr"], environments["prod"]
    assert dr.dr is not None and dr.dr.protects == "prod"
    assert dr.region != prod.region
    assert prod.standby is not None and (prod.standby.environment, prod.standby.region) == ("dr", dr.region)
    assert all(environments[e].standby is None for e in ENVIRONMENTS if e != "prod")


def test_prod_becomes_the_primary_of_a_global_database(stacks) -> None:
    glob = stacks["prod"]["data"].body["Resources"]["GlobalCluster"]["Properties"]
    assert glob["GlobalClusterIdentifier"] == "shop-prod-global"
    assert glob["SourceDBClusterIdentifier"] == {"Fn::GetAtt": ["Cluster", "DBClusterArn"]}
    assert "GlobalCluster" not in stacks["staging"]["data"].body["Resources"]  # nothing stands by for it


def test_the_dr_cluster_joins_with_no_credentials_of_its_own(stacks) -> None:
    props = stacks["dr"]["data"].body["Resources"]["Cluster"]["Properties"]
    assert props["GlobalClusterIdentifier"] == "shop-prod-global"
    for credential in ("MasterUsername", "MasterUserPassword", "ManageMasterUserPassword", "MasterUserSecret"):
        assert credential not in props  # AWS refuses credentials on a secondary
    assert "DatabaseName" not in props  # replicated from the primary
    assert props["StorageEncrypted"] is True
    assert props["KmsKeyId"] == {"Fn::ImportValue": "shop-dr-keys-DataKeyArn"}  # its own region's key
    assert props["EngineVersion"] == stacks["prod"]["data"].body["Resources"]["Cluster"]["Properties"]["EngineVersion"]


def test_pilot_light_is_headless_until_failover(stacks) -> None:
    assert resources(stacks["dr"]["data"].body, "AWS::RDS::DBInstance") == {}


def test_dr_services_read_the_replicated_secret_in_their_region(stacks) -> None:
    outputs = stacks["dr"]["data"].body["Outputs"]
    secret = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:shop/prod/database"
    assert outputs["SecretArn"]["Value"] == {"Fn::Sub": secret}
    assert outputs["SecretResource"]["Value"] == {"Fn::Sub": secret + "-??????"}


def test_the_dr_manifest_orders_both_regions(stacks) -> None:
    manifest = json.loads(BUILT.files["dr"]["manifest.json"])
    order = [(s["name"], s["region"]) for s in manifest["stacks"]]
    names = [name for name, _ in order]
    assert ("shop-prod-data", "eu-west-1") in order
    assert names.index("shop-prod-data") < names.index("shop-dr-data")  # the global cluster first
    prod_data = next(s for s in manifest["stacks"] if s["name"] == "shop-prod-data")
    assert prod_data["templates"]["yaml"] == "../prod/data.yaml"  # deployed by prod's folder
    dr_data = next(s for s in manifest["stacks"] if s["name"] == "shop-dr-data")
    assert "shop-prod-data" in dr_data["depends_on"]
    assert {region for _, region in order} == {"eu-west-1", "eu-central-1", "us-east-1"}


def test_the_wiring_check_passes_across_regions_and_catches_a_wrong_order(tmp_path: Path) -> None:
    manifest = json.loads(BUILT.files["dr"]["manifest.json"])
    assert checks.check_wiring([(tmp_path / "manifest.json", manifest)]) == []
    stacks = manifest["stacks"]
    prod = next(i for i, s in enumerate(stacks) if s["name"] == "shop-prod-data")
    stacks.append(stacks.pop(prod))  # the primary's data stack after the DR one
    problems = [p.message for p in checks.check_wiring([(tmp_path / "manifest.json", manifest)])]
    assert "shop-dr-data depends on shop-prod-data, which is not deployed before it" in problems


def test_the_runbook_names_this_projects_stacks_clusters_and_commands() -> None:
    runbook = BUILT.files["dr"]["RUNBOOK.md"]
    for expected in (
        "| recovery time (RTO) | 60 minutes |",
        "| recovery point (RPO) | 5 minutes |",
        "aws rds failover-global-cluster --region eu-central-1 --global-cluster-identifier shop-prod-global",
        "--target-db-cluster-identifier arn:aws:rds:eu-central-1:333333333333:cluster:shop-dr --allow-data-loss",
        "aws rds create-db-instance --region eu-central-1 --db-cluster-identifier shop-dr",
        "aws rds switchover-global-cluster --region eu-west-1 --global-cluster-identifier shop-prod-global",
        "--service shop-dr-svc-api --desired-count 3",
        "--stack-name shop-dr-platform",
        "## Fail back",
        "## Rehearse",
    ):
        assert expected in runbook, expected
    assert "RUNBOOK.md" not in BUILT.files["prod"]


def project_refusal(settings_dir: Path) -> str:
    environments = [load_environment(name, settings_dir) for name in ENVIRONMENTS]
    with pytest.raises(SettingsError) as caught:
        project_of(environments, settings_dir)
    return str(caught.value)


def test_a_dr_copy_in_the_primarys_region_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dr.yaml",
        region="eu-west-1",
        platform__certificate_arn="arn:aws:acm:eu-west-1:333333333333:certificate/44444444-4444-4444-4444-444444444444",
    )
    assert "dr.yaml: region: is eu-west-1, the same as prod's; a DR copy runs in another region" in project_refusal(
        settings_dir
    )


def test_a_managed_password_on_the_primary_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "prod.yaml", database__password="managed")
    message = project_refusal(settings_dir)
    assert "prod.yaml: database.password = 'managed': AWS does not allow an RDS-managed password" in message
    assert "set database.password: generated" in message


def test_a_dr_copy_in_another_account_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dr.yaml",
        account_id="555555555555",
        platform__certificate_arn="arn:aws:acm:eu-central-1:555555555555:certificate/44444444-4444-4444-4444-444444444444",
        edge__certificate_arn="arn:aws:acm:us-east-1:555555555555:certificate/33333333-3333-3333-3333-333333333335",
    )
    assert "dr.yaml: account_id: differs from prod's; an Aurora global database spans one account" in project_refusal(
        settings_dir
    )


def test_another_engine_version_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", database__engine_version="17.4")
    assert "dr.yaml: database.engine_version: must equal prod's (aurora-postgresql 17.5)" in project_refusal(
        settings_dir
    )


def test_protecting_an_unknown_environment_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", dr__protects="production")
    assert "dr.yaml: dr.protects = 'production': is not an environment it can protect; use one of" in project_refusal(
        settings_dir
    )


def test_pilot_light_keeps_services_at_one_task(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", services__web={"desired_count": 2, "autoscaling": {"min": 2, "max": 12}})
    with pytest.raises(SettingsError) as caught:
        load_environment("dr", settings_dir)
    assert "dr.yaml: services.web.desired_count = 2: must be 0 or 1 in a pilot-light DR environment" in str(
        caught.value
    )


def test_warm_standby_keeps_a_database_instance(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", dr__posture="warm-standby")
    stacks = build_all(settings_dir).stacks["dr"]
    assert set(resources(stacks["data"].body, "AWS::RDS::DBInstance")) == {"WriterInstance", "ReaderInstance1"}


# --- images: pulled from ECR's replica in the DR region -------------------------------------------


@pytest.mark.parametrize(("env", "region"), [("dr", "eu-central-1"), ("prod", "eu-west-1"), ("staging", "eu-west-1")])
def test_services_pull_from_their_own_region_in_dr_and_from_the_registrys_elsewhere(stacks, env, region) -> None:
    for service in ("api", "web"):
        resources_ = stacks[env][f"svc-{service}"].body["Resources"]
        (container,) = resources_["TaskDefinition"]["Properties"]["ContainerDefinitions"]
        assert container["Image"] == {
            "Fn::Sub": f"444444444444.dkr.ecr.{region}.${{AWS::URLSuffix}}/shop/{service}:${{ImageTag}}"
        }
        statements = resources_["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        (pull,) = [s for s in statements if s["Sid"] == "PullThisServicesImage"]
        assert pull["Resource"] == [
            {"Fn::Sub": f"arn:${{AWS::Partition}}:ecr:{region}:444444444444:repository/shop/{service}"}
        ]


def test_the_dr_release_files_name_the_same_replica_as_the_service_stack(stacks) -> None:
    files = delivery_files(BUILT.project, {e: list(s.values()) for e, s in BUILT.stacks.items()})
    for service in ("api", "web"):
        (container,) = json.loads(files[f"{service}/taskdef-dr.json"])["containerDefinitions"]
        (in_stack,) = stacks["dr"][f"svc-{service}"].body["Resources"]["TaskDefinition"]["Properties"][
            "ContainerDefinitions"
        ]
        host = in_stack["Image"]["Fn::Sub"].split("/")[0].replace("${AWS::URLSuffix}", "amazonaws.com")
        assert container["image"] == f"{host}/shop/{service}:<COMMIT_ID>"
        assert ".eu-central-1." in host
        # the build fills in the tag, since imageDetail.json names the registry's region
        assert 'sed -i "s#<COMMIT_ID>#$COMMIT_ID#g" taskdef-dr.json' in files[f"{service}/buildspec.yml"]
        (prod,) = json.loads(files[f"{service}/taskdef-prod.json"])["containerDefinitions"]
        assert prod["image"] == "<IMAGE1_NAME>"  # prod: CodeDeploy's image, in the registry's region


def test_the_dr_release_action_takes_its_image_from_the_task_definition(project_stacks) -> None:
    pipeline = project_stacks["delivery-api"].body["Resources"]["Pipeline"]["Properties"]
    actions = {a["Name"]: a for stage in pipeline["Stages"] for a in stage["Actions"]}
    assert "Image1ArtifactName" not in actions["ReleaseDr"]["Configuration"]
    assert actions["ReleaseDr"]["Region"] == "eu-central-1"
    assert actions["ReleaseProd"]["Configuration"]["Image1ArtifactName"] == "BuildOutput"


def test_the_runbook_says_the_images_are_already_there_and_how_to_check() -> None:
    runbook = BUILT.files["dr"]["RUNBOOK.md"]
    assert "- **Images**: ECR replicates every image pushed to `shop/*` in `eu-west-1`" in runbook
    assert "aws ecr describe-images --region eu-central-1 --registry-id 444444444444 \\\n" in runbook
    assert "  --repository-name shop/api --image-ids imageTag=<tag>" in runbook


def test_a_rolling_dr_service_reads_image_definitions_that_name_the_replica(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", services__web__deployment_strategy="rolling")
    built = build_all(settings_dir)
    files = delivery_files(built.project, {e: list(s.values()) for e, s in built.stacks.items()})
    assert "web/taskdef-dr.json" not in files
    buildspec = files["web/buildspec.yml"]
    replica = "444444444444.dkr.ecr.eu-central-1.amazonaws.com/shop/web:$COMMIT_ID"
    assert f'"$CONTAINER_NAME" "{replica}" > imagedefinitions-dr.json' in buildspec
    assert "- imagedefinitions-dr.json" in buildspec
    pipeline = built.project_stacks["delivery-web"].body["Resources"]["Pipeline"]["Properties"]
    actions = {a["Name"]: a for stage in pipeline["Stages"] for a in stage["Actions"]}
    assert actions["ReleaseDr"]["Configuration"]["FileName"] == "imagedefinitions-dr.json"
    assert actions["ReleaseDev"]["Configuration"]["FileName"] == "imagedefinitions.json"  # registry's region
