"""The change preview: `generate.py diff` against written output, and diff_stacks on synthetic pairs."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BUILT, ENVIRONMENTS, ROOT, Generated, edit_yaml, generate, generate_main

from infra_templates.diff import StackTemplate, _at_pointer, diff_stacks, report


@pytest.fixture
def written(generated: Generated) -> Path:
    """Every fixture environment, built once per session; tests copy it before changing anything."""
    return generated.output


@pytest.fixture
def against(written: Path, tmp_path: Path) -> Path:
    copied = tmp_path / "against"
    shutil.copytree(written, copied)
    return copied


def diff(*args: str) -> tuple[int, str, str]:
    """``generate.py diff ARGS``, run in process (generate.main) to spare an interpreter per test; the test
    of --quiet runs the real command."""
    return generate_main("diff", *args)


# --- through generate.py ----------------------------------------------------------------------


def test_no_change_exits_0(written: Path) -> None:
    code, out, _ = diff("--against", str(written))
    assert code == 0, out
    assert out.count(": no changes") == len(ENVIRONMENTS) + 1  # and the project folder
    assert "project (against " in out
    assert "WARNING" not in out


def test_a_changed_property_is_reported_in_place_and_exits_3(against: Path, settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", network__flow_logs={"retention_days": 30})
    code, out, _ = diff("--env", "dev", "--settings", str(settings_dir), "--against", str(against))
    assert code == 3
    # The default security group closer's log group keeps the network's log retention too.
    assert "~ stack shop-dev-network (eu-west-1): resources 0 added, 0 removed, 2 changed" in out
    for group in ("FlowLogGroup", "DefaultSecurityGroupCloserLogGroup"):
        assert f"    ~ {group} (AWS::Logs::LogGroup)\n        Properties.RetentionInDays: 14 -> 30\n" in out
    assert "REPLACED" not in out and "WARNING" not in out  # retention changes in place
    assert "shop-dev-keys" not in out  # unchanged stacks are not listed
    assert "shop-registry" not in out  # listed in dev's manifest, but compared in the project folder only


def test_quiet_prints_nothing_but_keeps_the_exit_status(against: Path, settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", network__flow_logs={"retention_days": 30})
    result = generate("diff", "--quiet", "--env", "dev", "--settings", str(settings_dir), "--against", str(against))
    assert (result.returncode, result.stdout) == (3, "")


def test_renaming_a_stateful_logical_id_is_a_loud_deletion(against: Path) -> None:
    # The deployed (old) template calls the log group FlowLogGroupOld; the new build calls it FlowLogGroup.
    network = against / "dev" / "network.json"
    network.write_text(network.read_text().replace('"FlowLogGroup"', '"FlowLogGroupOld"'))
    code, out, _ = diff("--env", "dev", "--against", str(against))
    assert code == 3
    assert "    + FlowLogGroup (AWS::Logs::LogGroup)" in out
    assert "    - FlowLogGroupOld (AWS::Logs::LogGroup)" in out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING:")]
    assert warnings == [
        "WARNING: DELETES STATEFUL shop-dev-network FlowLogGroupOld (AWS::Logs::LogGroup): its logical ID is gone "
        "(renamed to FlowLogGroup?): a rename replaces it; DeletionPolicy Delete: CloudFormation deletes the old one "
        "and its data"
    ]
    # The flow log points at the log group through a create-only property, so it is replaced too.
    assert "~ VpcFlowLog (AWS::EC2::FlowLog)  REPLACED: LogGroupName is create-only" in out


def test_a_new_vpc_cidr_replaces_the_vpc_and_everything_placed_in_it(against: Path, settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dev.yaml",
        network__cidr="10.11.0.0/16",
        network__subnets={
            "public": ["10.11.0.0/24", "10.11.1.0/24"],
            "private": ["10.11.16.0/20", "10.11.32.0/20"],
            "data": ["10.11.64.0/24", "10.11.65.0/24"],
        },
    )
    code, out, _ = diff("--env", "dev", "--settings", str(settings_dir), "--against", str(against))
    assert code == 1  # the network stack's exports, imported by the other stacks, change: a cannot-deploy verdict
    assert "shop-dev-network: cannot deploy: export shop-dev-network-VpcId is imported by" in out
    assert "    ~ Vpc (AWS::EC2::VPC)  REPLACED: CidrBlock is create-only" in out
    assert "        Properties.CidrBlock: '10.10.0.0/16' -> '10.11.0.0/16'" in out
    assert "    ~ PrivateRouteTableA (AWS::EC2::RouteTable)  REPLACED: VpcId refers to Vpc, which is replaced" in out
    assert "    ~ output VpcId\n        Value: refers to Vpc, which is replaced" in out
    assert "FlowLogGroup" not in out  # the log group does not depend on the VPC
    assert "WARNING" not in out  # nothing stateful is lost


def test_stacks_added_and_removed_are_reported(against: Path) -> None:
    manifest_path = against / "dev" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    stacks = manifest["stacks"]
    (network,) = [s for s in stacks if s["name"] == "shop-dev-network"]
    stacks.remove(network)  # as if the network stack had never been deployed
    stacks.append(dict(network, name="shop-dev-legacy", templates={"yaml": "l.yaml", "json": "l.json"}))
    legacy = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"}}}
    (against / "dev" / "l.json").write_text(json.dumps(legacy))
    manifest_path.write_text(json.dumps(manifest))
    code, out, _ = diff("--env", "dev", "--against", str(against))
    assert code == 3
    assert "1 added, 1 removed" in out
    count = BUILT.stacks["dev"]["network"].resource_count
    assert f"+ stack shop-dev-network (eu-west-1): new, {count} resources" in out
    assert "- stack shop-dev-legacy (eu-west-1): no longer generated; it holds 1 resource," in out
    assert (
        "WARNING: DELETES STATEFUL shop-dev-legacy Bucket (AWS::S3::Bucket): its stack is no longer generated; "
        "DeletionPolicy Retain keeps the old one, orphaned outside the stack"
    ) in out


def test_an_environment_only_in_the_folder_is_reported_when_diffing_all(against: Path, settings_dir: Path) -> None:
    (settings_dir / "staging.yaml").unlink()
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "prod", "dr"])  # releases skip it too
    code, out, _ = diff("--settings", str(settings_dir), "--against", str(against))
    assert code == 3
    assert "- stack shop-staging-network (eu-west-1): no longer generated" in out
    assert "WARNING: DELETES STATEFUL shop-staging-network FlowLogGroup" in out
    assert "WARNING: DELETES STATEFUL shop-staging-keys LogsKey (AWS::KMS::Key)" in out


def test_the_project_folder_is_compared_on_a_full_diff(against: Path, settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", registry__keep_release_images=50)
    code, out, _ = diff("--settings", str(settings_dir), "--against", str(against))
    assert code == 3
    assert out.startswith("project (against ")
    for service in ("api", "web"):  # the lifecycle policy of each service's repository
        assert f"~ stack shop-registry-{service} (eu-west-1): resources 0 added, 0 removed, 1 changed" in out
    assert out.count(": no changes") == len(ENVIRONMENTS)


def test_an_environment_never_written_is_all_new(tmp_path: Path) -> None:
    code, out, _ = diff("--env", "prod", "--deployed", str(tmp_path))  # a deploy record with nothing in it
    assert code == 3
    assert "nothing recorded there (deploy.sh records each stack it deploys), every stack is new" in out
    assert f"+ stack shop-prod-keys (eu-west-1): new, {BUILT.stacks['prod']['keys'].resource_count} resources" in out
    assert "shop-registry" not in out  # with --env, the project folder is not compared


def test_a_missing_against_folder_is_refused_but_a_missing_record_means_nothing_deployed(
    tmp_path: Path, settings_dir: Path
) -> None:
    """--against names a folder the user typed: a missing one is a typo, refused as ``cost --against``
    refuses it (exit 2, nothing compared). The deploy record (--deployed, make's DEPLOYED_DIR) does not
    exist before a first deploy: every stack is new (exit 3)."""
    code, out, err = diff("--env", "dev", "--settings", str(settings_dir), "--against", str(tmp_path / "typo"))
    assert (code, out) == (2, "")
    assert f"diff: --against {tmp_path / 'typo'}: no such folder" in err
    # a folder that holds no baseline of either kind (the settings), a file, and both options; an empty
    # folder is nothing before (every stack new), as for cost --against
    (tmp_path / "empty").mkdir()
    code, out, _ = diff("--env", "dev", "--settings", str(settings_dir), "--against", str(tmp_path / "empty"))
    assert code == 3 and ": nothing there, every stack is new" in out and "deploy.sh records" not in out
    (tmp_path / "one" / "dev").mkdir(parents=True)  # one environment's folder given instead of the output
    (tmp_path / "one" / "dev" / "manifest.json").write_text("{}")
    code, _, err = diff("--env", "dev", "--settings", str(settings_dir), "--against", str(tmp_path / "one" / "dev"))
    assert code == 2 and f"is one folder of an output; give the folder that holds it ({tmp_path / 'one'})" in err
    for given, problem in (
        (settings_dir, "holds no <folder>/manifest.json nor <folder>/<region>/<stack>.json"),
        (settings_dir / "dev.yaml", "is not a folder"),
    ):
        code, out, err = diff("--env", "dev", "--settings", str(settings_dir), "--against", str(given))
        assert (code, out) == (2, ""), given
        assert f"diff: --against {given}: {problem}" in err
    code, _, err = diff("--env", "dev", "--settings", str(settings_dir), "--deployed", str(settings_dir / "dev.yaml"))
    assert code == 2 and f"diff: --deployed {settings_dir / 'dev.yaml'}: is not a folder" in err
    code, _, err = generate_main(
        "--deployed", str(tmp_path), "diff", "--env", "dev", "--settings", str(settings_dir), "--against", str(tmp_path)
    )
    assert code == 2 and "name two folders to compare with; give one" in err
    # the build judges updates against --deployed too: a file there is refused before anything is built
    output = tmp_path / "out"
    code, _, err = generate_main(
        "--deployed", str(settings_dir / "dev.yaml"), "--env", "dev", "--settings", str(settings_dir),
        "--output", str(output), "--diagrams", "none",
    )  # fmt: skip
    assert code == 2 and f"generate.py: --deployed {settings_dir / 'dev.yaml'}: is not a folder" in err
    assert not output.exists()
    code, out, err = generate_main(
        "--deployed", str(tmp_path / "never"), "diff", "--env", "dev", "--settings", str(settings_dir)
    )
    assert code == 3, err
    assert f"dev (against {tmp_path / 'never' / 'dev'}/): nothing recorded there" in out
    code, out, _ = diff("--env", "dev", "--settings", str(settings_dir), "--deployed", str(tmp_path / "never"))
    assert code == 3 and "nothing recorded there" in out  # the option after the command as well


def test_a_deployed_folder_that_is_not_a_record_is_refused(
    tmp_path: Path, settings_dir: Path, generated: Generated
) -> None:
    """From a new user's trial: a DEPLOYED_DIR set to the wrong folder read as "nothing recorded",
    which judges every update as a first deploy (a replaced database goes unblocked). A folder whose
    folders hold no ``<folder>/<region>/<stack>.json`` is refused, naming what it is instead: an
    output, one folder of a record, or something else. Files alone (a README before the first deploy)
    still mean nothing recorded."""
    one = tmp_path / "record" / "dev" / "eu-west-1"
    one.mkdir(parents=True)
    (one / "shop-dev-keys.json").write_text("{}")
    (tmp_path / "other" / "src").mkdir(parents=True)
    (tmp_path / "code" / "infra" / "prices").mkdir(parents=True)  # <folder>/<folder>/<file>.json, no region
    (tmp_path / "code" / "infra" / "prices" / "aws.json").write_text("{}")
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "dev.yaml").write_text("region: eu-west-1\n")
    for given, problem in (
        (generated.output, "is an output, not what deploy.sh records (diff --against compares with an output)"),
        (generated.output / "dev", "is an output, not what deploy.sh records"),
        (
            tmp_path / "record" / "dev",
            f"is one folder of the record; give the folder that holds it ({tmp_path / 'record'})",
        ),
        (tmp_path / "other", "holds no <folder>/<region>/<stack>.json (what deploy.sh records)"),
        (tmp_path / "code", "holds no <folder>/<region>/<stack>.json (what deploy.sh records)"),
        (tmp_path / "settings", "holds no <folder>/<region>/<stack>.json (what deploy.sh records)"),
    ):
        code, out, err = diff("--env", "dev", "--settings", str(settings_dir), "--deployed", str(given))
        assert (code, out) == (2, ""), given
        assert f"diff: --deployed {given}: {problem}" in err
        output = tmp_path / "out"
        code, _, err = generate_main(
            "--deployed", str(given), "--env", "dev", "--settings", str(settings_dir),
            "--output", str(output), "--diagrams", "none",
        )  # fmt: skip
        assert code == 2 and f"generate.py: --deployed {given}: {problem}" in err and not output.exists()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("deploy.sh records what it deployed here\n")
    code, out, _ = diff("--env", "dev", "--settings", str(settings_dir), "--deployed", str(notes))
    assert code == 3 and "nothing recorded there" in out
    code, _, err = diff("--env", "dev", "--settings", str(settings_dir), "--deployed", str(tmp_path / "record"))
    assert code in (0, 3) and err == ""  # a record: compared


def test_refused_settings_exit_2_like_build(against: Path, settings_dir: Path) -> None:
    edit_yaml(settings_dir / "prod.yaml", network__nat_gateways="some")
    code, out, err = diff("--settings", str(settings_dir), "--against", str(against))
    assert code == 2
    assert out == ""
    assert "Refused: nothing was compared. Fix these settings:" in err
    assert "prod.yaml: network.nat_gateways = 'some'" in err


def test_a_folder_that_names_missing_templates_is_an_error(against: Path) -> None:
    (against / "dev" / "network.json").unlink()
    code, _, err = diff("--env", "dev", "--against", str(against))
    assert code == 1
    assert "names network.json, which is not there" in err


# --- the baseline: what deploy.sh recorded, never output/ --------------------------------------


def record(deployed: Path, written: Path, folder: str, layer: str, edit: Callable[[str], str] = str) -> Path:
    """Record ``written/<folder>/<layer>.json`` under ``deployed/`` as deploy.sh does, through ``edit``."""
    manifest = json.loads((written / folder / "manifest.json").read_text())
    stack = next(s for s in manifest["stacks"] if s["templates"]["json"] == f"{layer}.json")
    path = deployed / folder / stack["region"] / f"{stack['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(edit((written / folder / f"{layer}.json").read_text()))
    return path


def test_the_default_baseline_is_what_was_deployed_which_no_make_target_writes() -> None:
    import generate as cli  # noqa: PLC0415

    args = cli.parse_args(["diff"])
    assert cli.diff_baseline(args.against, args.deployed, args.output) == ROOT / "deployed"
    # beside another --output, as the build with that --output judges its updates against
    args = cli.parse_args(["--output", "/x/out", "diff"])
    assert cli.diff_baseline(args.against, args.deployed, args.output) == Path("/x/deployed")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    for target in ("templates", "gate", "test", "golden", "cost"):  # none of them may write the baseline
        dry = subprocess.run(
            ["make", "--dry-run", "--always-make", "--no-print-directory", target],
            capture_output=True, text=True, cwd=ROOT, env=environ, check=False,
        )  # fmt: skip
        assert "deployed" not in dry.stdout, (target, dry.stdout)
    dry = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "diff", "ENV=dev"],
        capture_output=True, text=True, cwd=ROOT, env=environ, check=False,
    )  # fmt: skip
    assert "generate.py diff --env dev" in dry.stdout and "--against" not in dry.stdout
    assert "/deployed/" in (ROOT / ".gitignore").read_text().splitlines()


def test_a_recorded_deployment_is_the_baseline_stack_by_stack(written: Path, tmp_path: Path) -> None:
    deployed = tmp_path / "deployed"
    record(deployed, written, "dev", "network", lambda text: text.replace('"FlowLogGroup"', '"FlowLogGroupOld"'))
    record(deployed, written, "dev", "keys")
    code, out, _ = diff("--env", "dev", "--against", str(deployed))
    assert code == 3
    assert out.startswith("dev (against ")
    assert "WARNING: DELETES STATEFUL shop-dev-network FlowLogGroupOld (AWS::Logs::LogGroup)" in out
    assert "  shop-dev-keys:" not in out  # recorded as built: unchanged
    assert "  shop-dev-data: creates the stack" in out  # never recorded as deployed: new
    assert "  shop-dev-network: replaces VpcFlowLog" in out


def test_an_unreadable_record_is_an_error_not_an_empty_baseline(written: Path, tmp_path: Path) -> None:
    path = record(tmp_path / "deployed", written, "dev", "network", lambda text: text[:100])
    code, _, err = diff("--env", "dev", "--against", str(tmp_path / "deployed"))
    assert code == 1
    assert f"diff: {path}: not JSON (" in err  # the file, not only its folder
    # a build judging its updates against it blocks every stack of dev, and says so naming the file
    output = tmp_path / "out"
    code, _, err = generate_main(
        "--deployed", str(tmp_path / "deployed"), "--env", "dev", "--output", str(output), "--diagrams", "none"
    )
    assert code == 0
    assert f"generate.py: {path}: not JSON (" in err and "every stack of dev is marked blocked" in err
    assert f"{path}: not JSON" in (output / "dev" / "DEPLOY.md").read_text()


def test_an_unreadable_template_of_an_output_copy_is_named(against: Path) -> None:
    broken = against / "dev" / "network.json"
    broken.write_text("{")
    code, _, err = diff("--env", "dev", "--against", str(against))
    assert code == 1 and f"diff: {broken}: not JSON (" in err


@pytest.mark.parametrize(
    ("warning", "blocks"),
    [
        ("WARNING: REPLACES STATEFUL s Db (AWS::RDS::DBCluster): Engine changes", True),
        ("WARNING: DELETES STATEFUL s Logs (AWS::Logs::LogGroup): its logical ID is gone", True),
        ("WARNING: RESETS WEIGHTS s Rule (AWS::ElasticLoadBalancingV2::ListenerRule): ...", False),
    ],
)
def test_what_blocks_a_deployment(warning: str, blocks: bool) -> None:
    from infra_templates.diff import StackDiff  # noqa: PLC0415

    stack = StackDiff("s", "eu-west-1", "modify", warnings=(warning,))
    assert bool(stack.blocking) is blocks
    assert not StackDiff("s", "eu-west-1", "add", warnings=(warning,)).blocking  # deploy.sh only creates it
    refused = StackDiff("s", "eu-west-1", "modify", refusals=("REFUSED: s Svc: LoadBalancers changes; ...",))
    assert refused.blocking == ("cannot deploy: s Svc: LoadBalancers changes",)


# --- diff_stacks on synthetic templates ---------------------------------------------------------

CLUSTER = {
    "Type": "AWS::RDS::DBCluster",
    "Properties": {"Engine": "aurora-postgresql", "StorageEncrypted": True, "DatabaseName": "shop"},
    "DeletionPolicy": "Snapshot",
    "UpdateReplacePolicy": "Snapshot",
}


def one(resources: dict, outputs: dict | None = None, name: str = "t-data") -> StackTemplate:
    body: dict = {"Resources": resources}
    if outputs:
        body["Outputs"] = outputs
    return StackTemplate(name, "eu-west-1", body)


def test_a_create_only_property_of_a_database_replaces_it_loudly() -> None:
    changed = copy.deepcopy(CLUSTER)
    changed["Properties"]["DatabaseName"] = "shop2"
    (stack,) = diff_stacks([one({"Db": CLUSTER})], [one({"Db": changed})])
    (change,) = stack.changes
    assert change.replacement == ("DatabaseName is create-only",)
    lines = report("test", [stack])
    assert "    ~ Db (AWS::RDS::DBCluster)  REPLACED: DatabaseName is create-only" in lines
    assert lines[-1] == "  t-data: replaces Db (stateful)"  # the verdict
    assert lines[-3] == (
        "WARNING: REPLACES STATEFUL t-data Db (AWS::RDS::DBCluster): DatabaseName is create-only; "
        "UpdateReplacePolicy Snapshot keeps the old one, orphaned outside the stack"
    )


def test_an_updatable_property_of_a_database_is_changed_in_place() -> None:
    changed = copy.deepcopy(CLUSTER)
    changed["Properties"]["BackupRetentionPeriod"] = 14
    (stack,) = diff_stacks([one({"Db": CLUSTER})], [one({"Db": changed})])
    assert [(c.key, c.action, c.replacement) for c in stack.changes] == [("Db", "modify", ())]
    assert stack.changes[0].details == ("Properties.BackupRetentionPeriod: (absent) -> 14",)
    assert stack.warnings == ()


def test_a_changed_deletion_policy_is_a_change() -> None:
    changed = dict(CLUSTER, DeletionPolicy="Delete")
    (stack,) = diff_stacks([one({"Db": CLUSTER})], [one({"Db": changed})])
    assert stack.changes[0].details == ("DeletionPolicy: 'Snapshot' -> 'Delete'",)
    assert stack.changed


def test_a_new_type_under_the_same_logical_id_replaces() -> None:
    bucket = {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Delete"}
    table = {"Type": "AWS::DynamoDB::Table", "Properties": {}}
    (stack,) = diff_stacks([one({"Store": bucket})], [one({"Store": table})])
    assert stack.changes[0].replacement == ("Type changes from AWS::S3::Bucket to AWS::DynamoDB::Table",)
    assert stack.warnings[0].startswith("WARNING: REPLACES STATEFUL t-data Store (AWS::S3::Bucket)")
    assert stack.warnings[0].endswith("UpdateReplacePolicy Delete: CloudFormation deletes the old one and its data")


def test_a_removed_stateful_resource_without_a_successor_is_a_deletion() -> None:
    (stack,) = diff_stacks([one({"Db": CLUSTER, "Topic": {"Type": "AWS::SNS::Topic"}})], [one({})])
    assert [(c.key, c.action) for c in stack.changes] == [("Db", "remove"), ("Topic", "remove")]
    assert stack.warnings == (
        "WARNING: DELETES STATEFUL t-data Db (AWS::RDS::DBCluster): its logical ID is gone; "
        "DeletionPolicy Snapshot keeps the old one, orphaned outside the stack",
    )


def test_an_export_other_stacks_import_is_flagged_when_it_changes() -> None:
    old_net = one({}, {"VpcId": {"Value": "a", "Export": {"Name": "t-net-VpcId"}}}, "t-net")
    new_net = one({}, {"VpcId": {"Value": "b", "Export": {"Name": "t-net-VpcId"}}}, "t-net")
    user = one({"T": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::ImportValue": "t-net-VpcId"}}}})
    net, _ = diff_stacks([old_net, user], [new_net, user])
    (change,) = net.changes
    assert change.details == (
        "Value: 'a' -> 'b'",
        "export t-net-VpcId is imported by t-data: CloudFormation refuses to change it until they stop importing it",
    )


def test_parameters_and_other_sections_are_compared() -> None:
    old = StackTemplate("s", "eu-west-1", {"Description": "a", "Parameters": {"Tag": {"Type": "String"}}})
    new = StackTemplate("s", "eu-west-1", {"Description": "b", "Parameters": {"Tag": {"Type": "Number"}}})
    (stack,) = diff_stacks([old], [new])
    assert [(c.section, c.key, c.details) for c in stack.changes] == [
        ("Parameters", "Tag", ("Type: 'String' -> 'Number'",)),
        ("Description", "Description", ("Description: 'a' -> 'b'",)),
    ]


def test_create_only_pointers_reach_into_lists_and_stop_at_intrinsics() -> None:
    properties = {"List": [{"Name": "a"}, {"Name": {"Ref": "P"}}], "Whole": {"Fn::If": ["C", 1, 2]}}
    assert _at_pointer(properties, "/properties/List/*/Name") == {".List[0].Name": "a", ".List[1].Name": {"Ref": "P"}}
    assert _at_pointer(properties, "/properties/Whole/Deep") == {".Whole": {"Fn::If": ["C", 1, 2]}}
    assert _at_pointer(properties, "/properties/Missing") == {}


# --- CODE_DEPLOY services: what UpdateService refuses -------------------------------------------


def code_deploy_service(capacity: list, group_description: str = "port 8080 from the ALB") -> dict:
    return {
        "Group": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": group_description}},
        "Service": {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "DeploymentController": {"Type": "CODE_DEPLOY"},
                "TaskDefinition": "t-svc",
                "DesiredCount": 2,
                "CapacityProviderStrategy": capacity,
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {"SecurityGroups": [{"Fn::GetAtt": ["Group", "GroupId"]}]}
                },
            },
        },
    }


SPOT = [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
MIXED = [{"CapacityProvider": "FARGATE", "Base": 1, "Weight": 1}, {"CapacityProvider": "FARGATE_SPOT", "Weight": 3}]


def test_a_capacity_mix_change_of_a_code_deploy_service_is_refused() -> None:
    (stack,) = diff_stacks(
        [one(code_deploy_service(SPOT), name="t-svc")], [one(code_deploy_service(MIXED), name="t-svc")]
    )
    (refusal,) = stack.refusals
    assert refusal.startswith("REFUSED: t-svc Service (AWS::ECS::Service, CODE_DEPLOY controller): ")
    assert "CapacityProviderStrategy changes" in refusal and "UpdateService" in refusal
    lines = report("test", [stack])
    assert lines[-3:] == [
        refusal,
        "Verdict, per stack:",
        f"  t-svc: cannot deploy: {refusal.removeprefix('REFUSED: ').split(';')[0]}",
    ]


def test_a_replaced_security_group_of_a_code_deploy_service_is_refused() -> None:
    # a new GroupDescription replaces the group: the service's network configuration gets its new ID
    old, new = code_deploy_service(SPOT), code_deploy_service(SPOT, "another description")
    (stack,) = diff_stacks([one(old, name="t-svc")], [one(new, name="t-svc")])
    (refusal,) = stack.refusals
    assert "NetworkConfiguration refers to Group, which is replaced" in refusal


def test_what_update_service_accepts_on_a_code_deploy_service_is_not_refused() -> None:
    new = code_deploy_service(SPOT)
    new["Service"]["Properties"]["DesiredCount"] = 3
    (stack,) = diff_stacks([one(code_deploy_service(SPOT), name="t-svc")], [one(new, name="t-svc")])
    assert stack.changed and stack.refusals == ()


def test_the_same_change_on_an_ecs_controller_service_is_a_plain_update() -> None:
    old, new = code_deploy_service(SPOT), code_deploy_service(MIXED)
    for body in (old, new):
        body["Service"]["Properties"]["DeploymentController"] = {"Type": "ECS"}
    (stack,) = diff_stacks([one(old, name="t-svc")], [one(new, name="t-svc")])
    assert stack.changed and stack.refusals == ()


def test_diff_exits_1_on_a_change_update_service_refuses(tmp_path: Path, settings_dir: Path) -> None:
    # deployed with CodeDeploy; the settings then change prod's capacity mix
    edit_yaml(settings_dir / "defaults.yaml", deployment__controller="codedeploy", services__api__calls=[])
    deployed = tmp_path / "deployed"
    built, _, err = generate_main(
        "--quiet", "--env", "prod", "--settings", str(settings_dir), "--output", str(deployed)
    )
    assert built == 0, err  # the build in process, as diff() runs: the command itself is not what is tested here
    edit_yaml(settings_dir / "prod.yaml", platform__capacity={"fargate_base": 2, "fargate_weight": 1, "spot_weight": 1})
    code, out, _ = diff("--env", "prod", "--settings", str(settings_dir), "--against", str(deployed))
    assert code == 1, out
    refused = [line for line in out.splitlines() if line.startswith("REFUSED:")]
    assert {line.split()[1] for line in refused} == {"shop-prod-svc-api", "shop-prod-svc-web"}
    assert all("CapacityProviderStrategy changes" in line for line in refused)


def test_diff_exits_1_on_a_cannot_deploy_verdict_not_only_on_a_refused_line(tmp_path: Path, settings_dir: Path) -> None:
    """From a new user's trial: an export another stack imports, changed, is a ``cannot deploy``
    verdict (CloudFormation refuses the update) but exited 3 like any change, so a CI job gating on
    the status let it through; only CodeDeploy's ``REFUSED:`` lines exited 1."""
    deployed = tmp_path / "deployed"
    built, _, err = generate_main(
        "--quiet", "--env", "dev", "--settings", str(settings_dir), "--output", str(deployed), "--diagrams", "none"
    )
    assert built == 0, err
    edit_yaml(settings_dir / "defaults.yaml", database__name="shop2")  # the data stack exports the name
    code, out, _ = diff("--env", "dev", "--settings", str(settings_dir), "--against", str(deployed))
    assert code == 1, out
    assert "shop-dev-data: cannot deploy: export shop-dev-data-DatabaseName is imported by" in out
    assert not any(line.startswith("REFUSED:") for line in out.splitlines())
    # a build judged against a deploy record of the same stacks names the stack it blocks
    record = tmp_path / "record"
    for stack in json.loads((deployed / "dev" / "manifest.json").read_text())["stacks"]:
        if stack["scope"] == "project":  # not built with --env
            continue
        (record / "dev" / stack["region"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(
            deployed / "dev" / stack["templates"]["json"], record / "dev" / stack["region"] / f"{stack['name']}.json"
        )
    argv = ["--env", "dev", "--settings", str(settings_dir), "--output", str(tmp_path / "out"), "--diagrams", "none"]
    code, out, err = generate_main(*argv, "--deployed", str(record))
    assert code == 0, err
    assert (
        f"blocked  shop-dev-data: cannot deploy, AWS would refuse the update, against {record}/ (`make diff` says "
        "why); change the settings until it no longer says so\n"  # ALLOW_REPLACE cannot make AWS accept it
    ) in out
    assert sum(line.startswith("blocked ") for line in out.splitlines()) == 1


def weighted_rule(paths: list[str]) -> dict:
    forward = {
        "TargetGroups": [
            {"TargetGroupArn": {"Ref": "Blue"}, "Weight": 1},
            {"TargetGroupArn": {"Ref": "Green"}, "Weight": 0},
        ]
    }
    return {
        "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
        "Properties": {
            "ListenerArn": "arn:listener",
            "Priority": 10,
            "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": paths}}],
            "Actions": [{"Type": "forward", "ForwardConfig": forward}],
        },
    }


def test_a_changed_blue_green_listener_rule_warns_that_its_weights_are_reset() -> None:
    (stack,) = diff_stacks(
        [one({"Rule": weighted_rule(["/api/*"])}, name="t-svc")],
        [one({"Rule": weighted_rule(["/v2/*"])}, name="t-svc")],
    )
    (warning,) = stack.warnings
    assert warning.startswith("WARNING: RESETS WEIGHTS t-svc Rule (AWS::ElasticLoadBalancingV2::ListenerRule)")
    single = weighted_rule(["/v2/*"])
    single["Properties"]["Actions"] = [{"Type": "forward", "TargetGroupArn": {"Ref": "Blue"}}]
    old = copy.deepcopy(single)
    old["Properties"]["Priority"] = 11
    (stack,) = diff_stacks([one({"Rule": old}, name="t-svc")], [one({"Rule": single}, name="t-svc")])
    assert stack.warnings == ()  # one target group: nothing a deployment moved


# --- the verdict ----------------------------------------------------------------------------------


def test_an_engine_change_of_a_cluster_is_a_replacement_decided_from_the_values() -> None:
    # conditionalCreateOnlyProperties in the schema; the Template Reference: Engine "Update requires: Replacement"
    changed = copy.deepcopy(CLUSTER)
    changed["Properties"]["Engine"] = "aurora-mysql"
    (stack,) = diff_stacks([one({"Db": CLUSTER})], [one({"Db": changed})])
    (change,) = stack.changes
    assert change.replacement == ("Engine changes, which replaces it",)
    assert stack.verdict == "replaces Db (stateful)"


def test_a_conditional_property_not_decided_from_the_value_may_replace() -> None:
    changed = copy.deepcopy(CLUSTER)
    changed["Properties"]["AvailabilityZones"] = ["eu-west-1a"]
    (stack,) = diff_stacks([one({"Db": CLUSTER})], [one({"Db": changed})])
    assert stack.verdict == "in place; may replace Db (AvailabilityZones): the change set decides"


def test_a_custom_named_resource_that_would_be_replaced_cannot_deploy() -> None:
    old = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs", "FifoQueue": False}}
    new = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs", "FifoQueue": True}}
    (stack,) = diff_stacks([one({"Q": old})], [one({"Q": new})])
    assert stack.verdict.startswith(
        "cannot deploy: Q (AWS::SQS::Queue) would be replaced but keeps its custom name jobs"
    )


def test_a_change_in_place_and_full_policy_values() -> None:
    statement = {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::123456789012:role/r{i}" for i in range(3)]}}
    old = {"Type": "AWS::SNS::TopicPolicy", "Properties": {"PolicyDocument": {"Statement": [statement]}, "Topics": []}}
    fewer = copy.deepcopy(old)
    fewer["Properties"]["PolicyDocument"]["Statement"][0]["Principal"]["AWS"].pop()
    (stack,) = diff_stacks([one({"P": old})], [one({"P": fewer})])
    assert stack.verdict == "in place"
    lines = report("test", [stack])
    assert any("role/r2" in line and line.count("role/r1") == 2 for line in lines), lines  # nothing cut


def test_an_export_in_use_cannot_change() -> None:
    exporting = {
        "Resources": {"T": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"Arn": {"Value": {"Ref": "T"}, "Export": {"Name": "x-Arn"}}},
    }
    importer = {
        "Resources": {"S": {"Type": "AWS::SNS::Subscription", "Properties": {"TopicArn": {"Fn::ImportValue": "x-Arn"}}}}
    }
    gone = {"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}
    old = [StackTemplate("x", "eu-west-1", exporting), StackTemplate("y", "eu-west-1", importer)]
    new = [StackTemplate("x", "eu-west-1", gone), StackTemplate("y", "eu-west-1", importer)]
    stack = diff_stacks(old, new)[0]
    assert stack.verdict.startswith("cannot deploy: export x-Arn is imported by y")


@pytest.mark.parametrize(("status", "make_status"), [(0, 0), (3, 0), (1, 2), (2, 2)])  # make exits 2 on an error
def test_make_diff_presents_exit_3_as_an_answer_not_an_error(tmp_path: Path, status: int, make_status: int) -> None:
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from conftest import ROOT  # noqa: PLC0415

    fake = tmp_path / "python"  # stands in for generate.py diff's interpreter: only its exit status matters
    fake.write_text(f"#!/bin/sh\nexit {status}\n")
    fake.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    result = subprocess.run(
        ["make", "--no-print-directory", "diff", f"PY={fake}"],
        capture_output=True, text=True, cwd=ROOT, env=environ, check=False,
    )  # fmt: skip
    assert result.returncode == make_status
    assert "Error 3" not in result.stderr
    assert ("changes found" in result.stdout) == (status == 3)
