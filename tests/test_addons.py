"""Add-ons and overrides (``<settings>/addons/<env>/``): they reach the output, the deploy files, the
gate and the diff; bad input is refused naming the file and field, exit 2, output/ untouched.

The sample add-ons are in ``tests/fixtures/addons/`` (dev: an extra stack, a service add-on, an
override) and ``tests/fixtures/addons-broken/`` (staging: what the gate must stop).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FIXTURES, SETTINGS, generate_main

from infra_templates import addons, checks
from infra_templates.config import SettingsError, load_settings
from infra_templates.naming import permissions_boundary_name
from infra_templates.pipeline import Stack, build_stacks
from templates import LAYERS, RUNNING

ADDONS = FIXTURES / "addons"
BROKEN = FIXTURES / "addons-broken"


def with_addons(tmp_path: Path, *sources: Path) -> Path:
    """A copy of the fixture settings with the add-on folders of ``sources`` in its ``addons/``."""
    folder = tmp_path / "environments"
    shutil.copytree(SETTINGS, folder)
    for source in sources:
        shutil.copytree(source, folder / "addons", dirs_exist_ok=True)
    return folder


def built(folder: Path, env: str = "dev", layers: Any = LAYERS) -> dict[str, Stack]:
    environments, _, _ = load_settings(folder, [env])
    return {s.layer: s for s in build_stacks(environments[0], layers)}


@pytest.fixture
def addon_settings(tmp_path: Path) -> Path:
    return with_addons(tmp_path, ADDONS)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- an add-on stack ------------------------------------------------------------------------------


def test_an_addon_stack_is_placed_after_the_stacks_it_imports_from(addon_settings: Path) -> None:
    stacks = built(addon_settings)
    order = list(stacks)
    orders = stacks["addon-orders"]
    assert orders.name == "shop-dev-addon-orders"
    assert orders.imports == ["shop-dev-network-VpcCidr"]  # ${Project}-${Environment} resolved when built
    assert orders.exports == ["shop-dev-addon-orders-QueueArn"]  # ${AWS::StackName} resolved too
    assert orders.depends_on == ["shop-dev-network"]
    assert order.index("network") < order.index("addon-orders") < order.index("svc-api")
    # The service whose task role reads the queue's ARN depends on the add-on stack.
    assert "shop-dev-addon-orders" in stacks["svc-api"].depends_on
    assert "shop-dev-addon-orders-QueueArn" in stacks["svc-api"].imports


def test_an_addon_stack_gets_the_environment_tags_and_keeps_its_own(addon_settings: Path) -> None:
    body = built(addon_settings)["addon-orders"].body
    queue = body["Resources"]["OrdersQueue"]["Properties"]["Tags"]
    assert {"Key": "Layer", "Value": "addon-orders"} in queue
    assert {"Key": "Environment", "Value": "dev"} in queue
    assert {"Key": "CostCenter", "Value": "platform"} in queue  # dev's own tags (fixture settings)
    assert {"Key": "Team", "Value": "orders"} in queue
    # AWS::SSM::Parameter takes its tags as a map (its schema's tagging.tagProperty is an object)
    assert body["Resources"]["VpcCidrParameter"]["Properties"]["Tags"]["Project"] == "shop"
    assert body["AWSTemplateFormatVersion"] == "2010-09-09"
    assert body["Description"] == "Orders queue and its dead-letter queue"


def test_an_addon_role_gets_the_permissions_boundary(tmp_path: Path) -> None:
    folder = with_addons(tmp_path)
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        },
    }
    write(folder / "addons" / "dev" / "stacks" / "worker.yaml", yaml.safe_dump({"Resources": {"WorkerRole": role}}))
    properties = built(folder)["addon-worker"].body["Resources"]["WorkerRole"]["Properties"]
    boundary = permissions_boundary_name("shop", "dev")
    assert properties["PermissionsBoundary"] == {
        "Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/{boundary}"
    }


def test_the_deployer_may_manage_what_the_addons_add(addon_settings: Path) -> None:
    """The deployer's roles derive from the resource types of every stack after it, add-ons included."""
    without = json.dumps(built(SETTINGS)["deployer"].body)
    with_ = json.dumps(built(addon_settings)["deployer"].body)
    # an SSM parameter is a type of the add-ons' alone (the shipped settings have queues of their own:
    # a worker's, a job's dead letters)
    assert "ssm:PutParameter" not in without
    assert "ssm:PutParameter" in with_


def test_an_addon_stack_reaches_the_manifest_and_the_deploy_files(addon_settings: Path, tmp_path: Path) -> None:
    output = tmp_path / "output"
    status, _, err = generate_main("--settings", str(addon_settings), "--output", str(output), "--diagrams", "none")
    assert status == 0, err
    manifest = json.loads((output / "dev" / "manifest.json").read_text())
    entry = next(s for s in manifest["stacks"] if s["name"] == "shop-dev-addon-orders")
    assert entry["templates"] == {"yaml": "addon-orders.yaml", "json": "addon-orders.json"}
    assert entry["depends_on"] == ["shop-dev-network"]
    names = [s["name"] for s in manifest["stacks"]]
    assert names.index("shop-dev-network") < names.index("shop-dev-addon-orders") < names.index("shop-dev-svc-api")
    assert (output / "dev" / "addon-orders.yaml").is_file()
    assert "--stack-name shop-dev-addon-orders" in (output / "dev" / "deploy.sh").read_text()
    assert "shop-dev-addon-orders" in (output / "dev" / "DEPLOY.md").read_text()
    # The infrastructure pipeline deploys it too (dev is one of its stages).
    pipeline = (output / "project" / "delivery-infrastructure.json").read_text()
    assert "shop-dev-addon-orders" in pipeline
    # Other environments have no add-ons: nothing of dev's reaches them.
    assert "addon" not in (output / "staging" / "manifest.json").read_text()


# --- a service add-on -----------------------------------------------------------------------------


def test_a_service_addon_merges_resources_and_task_role_statements(addon_settings: Path) -> None:
    stacks = built(addon_settings)
    api = stacks["svc-api"].body
    parameter = api["Resources"]["OrdersQueueUrlParameter"]
    assert parameter["Type"] == "AWS::SSM::Parameter"
    assert parameter["Properties"]["Tags"]["Layer"] == "svc-api"
    policy = api["Resources"][addons.TASK_ROLE_POLICY]
    assert policy["Type"] == "AWS::IAM::Policy"
    assert policy["Properties"]["Roles"] == [{"Ref": "TaskRole"}]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Sid"] == "SendOrders"
    assert statement["Resource"] == {"Fn::ImportValue": "shop-dev-addon-orders-QueueArn"}
    assert "OrdersQueueUrlParameterName" in api["Outputs"]
    # Everything generated is still there, unchanged; the web service has no add-on.
    generated = built(SETTINGS)
    for logical_id, resource in generated["svc-api"].body["Resources"].items():
        assert api["Resources"][logical_id] == resource
    assert stacks["svc-web"].body == generated["svc-web"].body


def test_a_service_addon_cannot_replace_a_generated_resource(addon_settings: Path, tmp_path: Path) -> None:
    write(
        addon_settings / "addons" / "dev" / "services" / "web.yaml",
        "Resources:\n  TaskRole:\n    Type: AWS::IAM::Role\n    Properties: {}\n",
    )
    output = tmp_path / "output"
    write(output / "dev" / "keep.txt", "untouched")
    status, _, err = generate_main("--settings", str(addon_settings), "--output", str(output), "--diagrams", "none")
    assert status == 2
    assert "addons/dev/services/web.yaml: Resources.TaskRole: clashes with the generated AWS::IAM::Role TaskRole" in err
    assert "of stack shop-dev-svc-web" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in output.rglob("*") if p.is_file()) == ["keep.txt"]


# --- overrides ------------------------------------------------------------------------------------


def test_an_override_changes_one_property_and_says_so(addon_settings: Path) -> None:
    cluster = built(addon_settings)["data"].body["Resources"]["Cluster"]
    assert cluster["Properties"]["BackupRetentionPeriod"] == 3
    assert cluster["Metadata"][addons.OVERRIDES_METADATA] == [
        "addons/dev/overrides.yaml[0]: replace /Properties/BackupRetentionPeriod (three days of point-in-time "
        "recovery while the orders feature is tested)"
    ]
    generated = built(SETTINGS)["data"].body["Resources"]["Cluster"]
    assert generated["Properties"]["BackupRetentionPeriod"] != 3  # the shared template data is not changed
    assert {k: v for k, v in cluster["Properties"].items() if k != "BackupRetentionPeriod"} == {
        k: v for k, v in generated["Properties"].items() if k != "BackupRetentionPeriod"
    }


def test_overrides_add_and_remove_in_mappings_and_lists(tmp_path: Path) -> None:
    folder = with_addons(tmp_path)
    write(
        folder / "addons" / "dev" / "overrides.yaml",
        "- {stack: data, resource: Cluster, path: /Properties/CopyTagsToSnapshot, op: remove}\n"
        "- {stack: data, resource: Cluster, path: /Properties/EnableCloudwatchLogsExports/-, op: add, value: extra}\n"
        "- {stack: data, resource: Cluster, path: /Properties/Tags/0, op: add, value: {Key: Owner, Value: dba}}\n",
    )
    before = built(SETTINGS)["data"].body["Resources"]["Cluster"]["Properties"]
    after = built(folder)["data"].body["Resources"]["Cluster"]["Properties"]
    assert "CopyTagsToSnapshot" in before and "CopyTagsToSnapshot" not in after
    assert after["EnableCloudwatchLogsExports"] == [*before["EnableCloudwatchLogsExports"], "extra"]
    assert after["Tags"] == [{"Key": "Owner", "Value": "dba"}, *before["Tags"]]


def test_the_diff_shows_addons_and_overrides(addon_settings: Path, generated: Any) -> None:
    status, out, err = generate_main(
        "diff", "--settings", str(addon_settings), "--against", str(generated.output), "--env", "dev"
    )
    assert status == 3, err
    assert "+ stack shop-dev-addon-orders (eu-west-1): new, 3 resources" in out
    assert "+ AddonTaskRolePolicy (AWS::IAM::Policy)" in out
    assert "+ OrdersQueueUrlParameter (AWS::SSM::Parameter)" in out
    assert "Properties.BackupRetentionPeriod: 1 -> 3" in out
    assert "addons/dev/overrides.yaml[0]: replace /Properties/BackupRetentionPeriod" in out
    assert "shop-dev-addon-orders: creates the stack (3 resources)" in out


# --- bad input: refused with file and field, exit 2, output/ untouched -----------------------------


def refused(folder: Path) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(folder)
    return str(caught.value)


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("stacks/q.yaml", "Resources: [unclosed\n", "addons/dev/stacks/q.yaml (line 2, column 1): "),
        ("stacks/q.yaml", "- just\n- a list\n", "addons/dev/stacks/q.yaml: is a list, not a CloudFormation template"),
        ("stacks/q.yaml", "Description: x\n", "addons/dev/stacks/q.yaml: Resources: is required"),
        (
            "stacks/q.yaml",
            "Resource:\n  Q: {Type: AWS::SQS::Queue}\n",
            "addons/dev/stacks/q.yaml: Resource: is not a template section; did you mean 'Resources'?",
        ),
        (
            "stacks/q.yaml",
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q: {Type: AWS::SQS::Queue}\n",
            "addons/dev/stacks/q.yaml: Transform: is not a template section: macros (SAM included)",
        ),
        (
            "stacks/q.yaml",
            "Resources:\n  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Reff X}}\n",
            "could not determine a constructor for the tag '!Reff'; CloudFormation's short forms are !Ref",
        ),
        (
            "stacks/q.yaml",
            "Resources:\n  Q: {Type: AWS::SQS::Queue}\n  Q: {Type: AWS::SNS::Topic}\n",
            "addons/dev/stacks/q.yaml (line 3, column 3): key 'Q' is given twice in one mapping",
        ),
        (
            "stacks/q.yaml",
            "Resources:\n  Q: AWS::SQS::Queue\n",
            "addons/dev/stacks/q.yaml: Resources.Q: a resource is a mapping with a Type",
        ),
        (
            "stacks/q.yaml",
            "Parameters:\n  Size: {Type: Number}\nResources:\n  Q: {Type: AWS::SQS::Queue}\n",
            "addons/dev/stacks/q.yaml: Parameters.Size: has no Default",
        ),
        ("stacks/Queue.yaml", "Resources:\n  Q: {Type: AWS::SQS::Queue}\n", "'Queue' is not an add-on stack name"),
        ("stacks/q.yml", "Resources: {}\n", "addons/dev/stacks/q.yml: is not a .yaml file"),
        (
            "services/apii.yaml",
            "Resources: {}\n",
            "addons/dev/services/apii.yaml: is not a service of dev; did you mean 'api'?",
        ),
        (
            "services/api.yaml",
            "Resources: {}\nPolicies: []\n",
            "addons/dev/services/api.yaml: Policies: is not a service add-on section",
        ),
        (
            "services/api.yaml",
            "TaskRoleStatements:\n  - {Effect: Allow, Action: s3:GetObject, Resource: '*'}\n",
            "addons/dev/services/api.yaml: TaskRoleStatements[0].Sid: is required",
        ),
        (
            "services/api.yaml",
            "TaskRoleStatements:\n  - {Sid: A, Effect: Allow, NotAction: s3:GetObject, Resource: '*'}\n",
            "TaskRoleStatements[0].NotAction: is not accepted here",
        ),
        ("overrides.yaml", "stack: data\n", "addons/dev/overrides.yaml: is a mapping, not a list of overrides"),
        (
            "overrides.yaml",
            "- {stack: data, resource: Cluster, path: Properties/X, value: 1}\n",
            "addons/dev/overrides.yaml: [0].path = 'Properties/X': is a JSON pointer",
        ),
        (
            "overrides.yaml",
            "- {stack: data, resource: Cluster, path: /Type, value: AWS::RDS::DBInstance}\n",
            "[0].path = '/Type': reaches 'Type'; an override reaches Properties",
        ),
        (
            "overrides.yaml",
            "- {stack: deployer, resource: ExecutionRole, path: /Properties/MaxSessionDuration, value: 3600}\n",
            "[0].stack = 'deployer': is not overridden",
        ),
        (
            "overrides.yaml",
            "- {stack: svc-api, resource: TaskRole, path: /Properties/PermissionsBoundary, op: remove}\n",
            "permissions boundary is the environment's and is not overridden",
        ),
        (
            "overrides.yaml",
            "- {stack: data, resource: Cluster, path: /Properties/X, valeu: 1}\n",
            "[0].valeu: is not an override key; did you mean 'value'?",
        ),
        ("notes.txt", "hello\n", "addons/dev/notes.txt: is not an add-on"),
    ],
)
def test_bad_addon_files_are_refused_naming_file_and_field(
    tmp_path: Path, relative: str, text: str, expected: str
) -> None:
    folder = with_addons(tmp_path)
    write(folder / "addons" / "dev" / relative, text)
    assert expected in refused(folder)


def test_an_addon_folder_of_no_environment_is_refused(tmp_path: Path) -> None:
    folder = with_addons(tmp_path)
    write(folder / "addons" / "staginng" / "overrides.yaml", "[]\n")
    assert "addons/staginng: is not an environment; did you mean 'staging'?" in refused(folder)


def test_the_addons_key_in_a_settings_file_is_refused(tmp_path: Path) -> None:
    folder = with_addons(tmp_path)
    with (folder / "dev.yaml").open("a") as file:
        file.write("addons: {}\n")
    assert "dev.yaml: addons: is set by the generator, not in a file" in refused(folder)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "{stack: dta, resource: Cluster, path: /Properties/Port, value: 1}",
            "[0].stack = 'dta': is not a stack of this environment; did you mean 'data'?",
        ),
        (
            "{stack: data, resource: Clustr, path: /Properties/Port, value: 1}",
            "[0].resource = 'Clustr': stack shop-dev-data has no such resource; did you mean 'Cluster'?",
        ),
        (
            "{stack: data, resource: Cluster, path: /Properties/BackupRetentionPeriodd, value: 1}",
            "[0].path = '/Properties/BackupRetentionPeriodd': is not set on this resource; did you mean "
            "'BackupRetentionPeriod'?",
        ),
        (
            "{stack: data, resource: Cluster, path: /Properties/Nested/Deeper, value: 1}",
            "[0].path = '/Properties/Nested/Deeper': /Properties/Nested is not set on this resource",
        ),
        (
            "{stack: data, resource: Cluster, path: /Properties/Port, op: add, value: 1}",
            "[0].path = '/Properties/Port': is there already; use op: replace to change it",
        ),
        (
            "{stack: data, resource: Cluster, path: /DeletionPolicy, op: remove}",
            "[0].path = '/DeletionPolicy': AWS::RDS::DBCluster holds state: its DeletionPolicy stays one of",
        ),
        (
            "{stack: data, resource: Cluster, path: /UpdateReplacePolicy, value: Delete}",
            "[0].path = '/UpdateReplacePolicy': AWS::RDS::DBCluster holds state: its UpdateReplacePolicy stays one of",
        ),
        (
            "{stack: data, resource: Cluster, path: /Properties/EnableCloudwatchLogsExports/9, value: x}",
            "[0].path = '/Properties/EnableCloudwatchLogsExports/9': '9' is not an index of that list",
        ),
    ],
)
def test_an_override_of_what_is_not_there_is_refused_and_nothing_written(
    tmp_path: Path, override: str, expected: str
) -> None:
    folder = with_addons(tmp_path)
    write(folder / "addons" / "dev" / "overrides.yaml", f"- {override}\n")
    output = tmp_path / "output"
    write(output / "dev" / "manifest.json", "{}")
    status, _, err = generate_main("--settings", str(folder), "--output", str(output), "--env", "dev")
    assert status == 2, err
    assert err.startswith("Refused: nothing was written.")
    assert "addons/dev/overrides.yaml: " + expected in err
    assert "Traceback" not in err
    assert (output / "dev" / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in (output / "dev").iterdir()) == ["manifest.json"]


def test_a_stateful_resource_may_keep_its_data_another_way(tmp_path: Path) -> None:
    """A policy that keeps the data (Retain, Snapshot, RetainExceptOnCreate) is accepted."""
    folder = with_addons(tmp_path)
    write(
        folder / "addons" / "dev" / "overrides.yaml",
        "- {stack: data, resource: Cluster, path: /DeletionPolicy, value: Retain}\n",
    )
    assert built(folder)["data"].body["Resources"]["Cluster"]["DeletionPolicy"] == "Retain"


def test_short_forms_become_full_functions(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.yaml",
        'A: !Ref X\nB: !GetAtt Q.Outputs.Name\nC: !Sub ["${A}", {A: !Ref Y}]\nD: !If [C, !Ref Z, !Ref AWS::NoValue]\n'
        "E: !Equals [a, b]\nF: !Condition C\nG: !GetAZs ''\nH: !Select [0, !Split [',', !ImportValue N]]\n",
    )
    assert addons.read_yaml(path, "t.yaml") == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Q", "Outputs.Name"]},
        "C": {"Fn::Sub": ["${A}", {"A": {"Ref": "Y"}}]},
        "D": {"Fn::If": ["C", {"Ref": "Z"}, {"Ref": "AWS::NoValue"}]},
        "E": {"Fn::Equals": ["a", "b"]},
        "F": {"Condition": "C"},
        "G": {"Fn::GetAZs": ""},
        "H": {"Fn::Select": [0, {"Fn::Split": [",", {"Fn::ImportValue": "N"}]}]},
    }


def test_a_build_without_every_layer_still_takes_the_addons(addon_settings: Path) -> None:
    """The deployer and the infrastructure pipeline build the running layers alone: same add-ons."""
    running = built(addon_settings, layers=RUNNING)
    assert "addon-orders" in running
    assert running["data"].body == built(addon_settings)["data"].body


def test_addons_build_the_same_bytes_every_time(addon_settings: Path) -> None:
    first = {k: s.json for k, s in built(addon_settings).items()}
    assert first == {k: s.json for k, s in built(addon_settings).items()}


# --- the gate ---------------------------------------------------------------------------------------


@pytest.mark.slow  # cfn-lint, checkov and the IAM analysis on the add-on templates: ~1 minute
@pytest.mark.xdist_group("checkov")  # on the worker whose checkov fork server the checkov tests started
def test_the_gate_passes_a_good_addon_and_stops_a_broken_one(tmp_path: Path) -> None:
    folder = with_addons(tmp_path, ADDONS, BROKEN)
    output = tmp_path / "output"
    status, _, err = generate_main("--settings", str(folder), "--output", str(output), "--diagrams", "none")
    assert status == 0, err
    manifests = checks.load_manifests(output, ["dev", "staging"])
    files = [
        f
        for f in checks.template_files(manifests)
        if f.stack in ("shop-dev-addon-orders", "shop-dev-svc-api", "shop-staging-addon-broken", "shop-staging-svc-api")
    ]
    assert len(files) == 8  # JSON and YAML of each

    # the findings with the output folder's own path as "output" (the temporary folder's may hold "dev")
    wiring = [f"{p.where}: {p.message}".replace(str(output), "output") for p in checks.check_wiring(manifests)]
    assert any("shop-staging-network-NoSuchExport" in w for w in wiring), wiring
    assert not any("dev" in w for w in wiring), wiring

    lint = [f"{p.where}: {p.message}".replace(str(output), "output") for p in checks.check_cfn_lint(files)]
    assert any("addon-broken.json" in m and "E3002" in m for m in lint), lint
    assert any("addon-broken.json" in m and "I3011" in m for m in lint), lint
    assert not any("/dev/" in m for m in lint), lint

    scanned = [str(f.path) for f in files if f.path.suffix == ".json"]
    scan = [f"{p.where} {p.message}" for p in checks.check_checkov(output, ["dev", "staging"], only=scanned)]
    assert any(s.startswith("staging/addon-broken.json Queue CKV_AWS_27") for s in scan), scan
    assert not any(s.startswith("dev/") for s in scan), scan

    iam = [
        f"{p.where}: {p.message}".replace(str(output), "output")
        for p in checks.check_iam([(str(f.path), f.stack) for f in files if f.path.suffix == ".json"])
    ]
    assert any("staging/svc-api.json" in m and "sqs:DeleteQueue" in m for m in iam), iam
    assert not any("/dev/" in m for m in iam), iam


def test_an_addon_importing_another_comes_after_it(tmp_path: Path) -> None:
    folder = with_addons(tmp_path)
    stacks_folder = folder / "addons" / "dev" / "stacks"
    write(
        stacks_folder / "zeta.yaml",
        "Resources:\n  Topic: {Type: AWS::SNS::Topic}\nOutputs:\n  TopicArn:\n    Value: !Ref Topic\n"
        "    Export: {Name: !Sub '${AWS::StackName}-TopicArn'}\n",
    )
    write(
        stacks_folder / "alpha.yaml",
        "Resources:\n  Parameter:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n"
        "      Value: !ImportValue shop-dev-addon-zeta-TopicArn\n",
    )
    stacks = built(folder)
    order = list(stacks)
    assert order.index("deployer") < order.index("addon-zeta") < order.index("addon-alpha")
    assert stacks["addon-alpha"].depends_on == ["shop-dev-addon-zeta"]
    assert stacks["addon-zeta"].depends_on == []


def test_an_override_importing_an_addon_export_makes_the_stack_depend_on_it(addon_settings: Path) -> None:
    write(
        addon_settings / "addons" / "dev" / "overrides.yaml",
        "- stack: svc-web\n  resource: TaskRole\n  path: /Properties/Description\n"
        "  value: !ImportValue shop-dev-addon-orders-QueueArn\n",
    )
    assert "shop-dev-addon-orders" in built(addon_settings)["svc-web"].depends_on


def test_a_malformed_addon_file_stops_the_build_with_exit_2(tmp_path: Path) -> None:
    folder = with_addons(tmp_path)
    write(folder / "addons" / "dev" / "stacks" / "q.yaml", "Resources:\n  Q: {Type: AWS::SQS::Queue\n")
    output = tmp_path / "output"
    write(output / "notes.txt", "mine")
    status, out, err = generate_main("--settings", str(folder), "--output", str(output))
    assert status == 2
    assert out == ""
    assert err.startswith("Refused: nothing was written. Fix these settings:\n")
    assert "addons/dev/stacks/q.yaml (line 3, column 1): expected ',' or '}', but got '<stream end>'" in err
    assert [p.name for p in output.rglob("*")] == ["notes.txt"]
