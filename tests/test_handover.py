"""The deploy guide and script of each environment: derived from manifest and templates, shellcheck
clean, and behaving as DEPLOY.md says when run (against a stand-in `aws` that records its calls)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BUILT, ENVIRONMENTS, ROOT, SETTINGS, generate_main

from infra_templates import checks
from infra_templates.handover import (
    capabilities,
    handover_files,
    plan,
    termination_protection_reasons,
    variable_name,
)
from infra_templates.pipeline import PROJECT_FOLDER
from infra_templates.render import replace_folders

ROLE = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
FAKE_AWS = """#!/usr/bin/env bash
# Stand-in for the AWS CLI: records each call; fails for the stack named in FAIL_STACK. An SSM
# parameter named in FAKE_MISSING (space-separated) is missing; stacks in FAKE_ROLLBACK (name or
# name:STATUS) are in ROLLBACK_COMPLETE or that status; describe-* of a name in FAKE_ABSENT fails
# (an image: ECR's ImageNotFound);
# FAKE_NO_OUTPUT: outputs read empty. FAKE_DENIED: a call whose arguments hold it is refused, as the
# AWS CLI prints AccessDenied (exit 254); FAKE_NOT_DEPLOYED: describe-stacks of that stack answers
# CloudFormation's ValidationError "Stack with id X does not exist".
printf '%s\\n' "$*" >> "$FAKE_AWS_LOG"
if [[ -n "${FAKE_DENIED:-}" && "$*" == *"$FAKE_DENIED"* ]]; then
  printf '\\nAn error occurred (AccessDenied) when calling the %s operation: %s\\n' \\
    "$2" "User: arn:aws:iam::1:user/trial is not authorized to perform: $1:$2" >&2
  exit 254
fi
if [[ "$1 $2" == "cloudformation describe-stacks" && "$4" == "${FAKE_NOT_DEPLOYED:-}" ]]; then
  printf '\\nAn error occurred (ValidationError) when calling the DescribeStacks operation: Stack with id %s %s\\n' \\
    "$4" "does not exist" >&2
  exit 254
fi
if [[ "$1 $2" == "sts get-caller-identity" ]]; then echo "$FAKE_ACCOUNT"; exit 0; fi
if [[ "$1 $2" == "cloudformation describe-stacks" ]]; then
  [[ -n "${FAKE_NO_OUTPUT:-}" ]] && exit 0
  echo "arn:aws:wafv2:us-east-1:1:global/webacl/x/y"; exit 0
fi
if [[ "$1 $2" == "cloudformation list-stacks" ]]; then
  for entry in ${FAKE_ROLLBACK:-}; do  # name or name:STATUS (default ROLLBACK_COMPLETE), a row each
    name="${entry%%:*}"; state="${entry#*:}"; [[ "$state" == "$entry" ]] && state=ROLLBACK_COMPLETE
    printf '%s\\t%s\\n' "$name" "$state"
  done
  exit 0
fi
if [[ "$1 $2" == "ssm get-parameters" ]]; then
  if [[ " ${FAKE_MISSING:-} " == *" $4 "* ]]; then echo 1; else echo 0; fi; exit 0
fi
if [[ "$1 $2" == "ecr batch-get-image" ]]; then  # FAKE_ECR_ERROR: the call fails so; FAKE_ABSENT: no such image
  if [[ -n "${FAKE_ECR_ERROR:-}" ]]; then echo "$FAKE_ECR_ERROR" >&2; exit 254; fi
  if [[ -n "${FAKE_ABSENT:-}" && " $* " == *"$FAKE_ABSENT"* ]]; then echo ImageNotFound; else echo None; fi; exit 0
fi
for arg in "$@"; do  # FAKE_ERROR: the error code (ResourceNotFoundException by default)
  if [[ -n "${FAKE_ABSENT:-}" && "$arg" == *"$FAKE_ABSENT"* ]]; then
    echo "An error occurred (${FAKE_ERROR:-ResourceNotFoundException}) when calling the operation: $arg" >&2; exit 254
  fi
done
for arg in "$@"; do
  if [[ "$arg" == "${FAIL_STACK:-}" ]]; then echo "stack $arg failed" >&2; exit 255; fi
done
"""


FOLDERS = [PROJECT_FOLDER, *ENVIRONMENTS]
TAGS = {"Project": "app", "Environment": "test", "ManagedBy": "infra-templates"}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """output/ of every shipped environment and of the project, written the way generate.py writes it."""
    output = tmp_path_factory.mktemp("handover") / "output"
    replace_folders(output, BUILT.files)
    return output


def home_of(folder: Path, stack: dict) -> str:
    """The folder a manifest entry's template is in."""
    return (folder / stack["templates"]["yaml"]).resolve().parent.name


def own_stacks(folder: Path) -> list[dict]:
    """The manifest's stacks its script deploys: those whose templates are in this folder, and those of
    its DR pair's other environment (any folder but the project's)."""
    stacks = json.loads((folder / "manifest.json").read_text())["stacks"]
    return [s for s in stacks if home_of(folder, s) in (folder.name, *ENVIRONMENTS)]


def account_of(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text())["account_id"]


def run_script(script: Path, tmp_path: Path, *args: str, **env: str) -> tuple[int, list[str], str]:
    """Run a deploy.sh with a recording stand-in for `aws` first on PATH; return (status, aws calls, stderr)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "aws").write_text(FAKE_AWS)
    (bin_dir / "aws").chmod(0o755)
    log = tmp_path / "aws.log"
    log.write_text("")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS")}
    environ.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_AWS_LOG=str(log))
    environ.update({"DEPLOYED_DIR": str(tmp_path / "deployed"), **env})  # never beside the shared `written`
    result = subprocess.run([str(script), *args], capture_output=True, text=True, env=environ, check=False)
    return result.returncode, log.read_text().splitlines(), result.stderr


def deployed(calls: list[str]) -> list[str]:
    return [re.search(r"--stack-name (\S+)", c)[1] for c in calls if c.startswith("cloudformation deploy ")]


def protected(calls: list[str]) -> list[str]:
    return [re.search(r"--stack-name (\S+)", c)[1] for c in calls if c.startswith("cloudformation update-termination")]


# --- the shipped environments -------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_script_and_guide_follow_the_manifest_order(written: Path, folder: str) -> None:
    order = [s["name"] for s in own_stacks(written / folder)]
    assert order  # every folder deploys something
    script = (written / folder / "deploy.sh").read_text()
    assert re.findall(r"^  --stack-name (\S+) \\$", script, re.MULTILINE) == order
    guide = (written / folder / "DEPLOY.md").read_text()
    assert re.findall(r"^### \d+\. (\S+)$", guide, re.MULTILINE) == order


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_an_environment_leaves_the_shared_stacks_to_the_project_folder(written: Path, env: str) -> None:
    listed = [s["name"] for s in json.loads((written / env / "manifest.json").read_text())["stacks"]]
    assert listed[0] == "shop-registry"  # the manifest lists it first...
    assert "shop-registry" not in [s["name"] for s in own_stacks(written / env)]  # ...the project deploys it
    script = (written / env / "deploy.sh").read_text()
    assert "--stack-name shop-registry" not in script
    assert 'echo "Assumes the shared stacks are up: shop-registry (../project/deploy.sh), ' in script
    if env == "dr":  # the primary's data stack, whose global cluster the DR database joins, it deploys itself
        assert "--stack-name shop-prod-data" in script and "shop-prod-data (../prod/deploy.sh)" not in script
    guide = (written / env / "DEPLOY.md").read_text()
    assert (
        "- `shop-registry` (region `eu-west-1`) is up: it is shared by every environment and deployed once, " in guide
    )
    assert "from `../project/` (see `../project/DEPLOY.md`)" in guide


@pytest.mark.parametrize("folder", FOLDERS)
def test_script_deploys_in_order_and_protects_the_stateful_stacks(written: Path, tmp_path: Path, folder: str) -> None:
    stacks = own_stacks(written / folder)
    status, calls, err = run_script(
        written / folder / "deploy.sh", tmp_path, FAKE_ACCOUNT=account_of(written / folder), IMAGE_TAG="0123abc"
    )
    assert status == 0, err
    assert calls[0] == "sts get-caller-identity --query Account --output text"
    assert deployed(calls) == [s["name"] for s in stacks]
    # Protection right after the deploy of each stack that holds data, and only those.
    built = [*BUILT.project_stacks.values(), *(s for e in BUILT.stacks.values() for s in e.values())]
    holding = {s.name for s in built if termination_protection_reasons(s.body)}
    expected: list[str] = []
    steps = ("deploy", "describe-stacks", "update-termination-protection")
    calls = [c for c in calls if c.split()[1] in steps]  # the pre-flight reads are tested below
    for stack in stacks:
        # A parameter from another region's stack is read from that stack first.
        expected += ["describe-stacks"] * sum("stack" in p for p in stack["parameters"].values())
        expected += ["deploy", *(["update-termination-protection"] if stack["name"] in holding else [])]
    # Last, the load balancer's DNS name for the origin record no stack holds: every environment's but
    # one whose own dns stack holds it (prod, with dr.dns); the project's has no distribution.
    if folder != PROJECT_FOLDER and not any(
        s["layer"] == "dns" and home_of(written / folder, s) == folder for s in stacks
    ):
        expected.append("describe-stacks")
    assert [c.split()[1] for c in calls] == expected
    for stack, call in zip(stacks, [c for c in calls if c.startswith("cloudformation deploy ")], strict=True):
        assert f"--region {stack['region']} " in call
        template = Path(re.search(r"--template-file (\S+) ", call)[1]).resolve()
        assert template == (written / folder / stack["templates"]["yaml"]).resolve()
        environment = "shared" if folder == PROJECT_FOLDER else home_of(written / folder, stack)
        assert f"--tags Project=shop Environment={environment} ManagedBy=infra-templates " in call
        assert call.endswith("--no-fail-on-empty-changeset")


def test_capabilities_and_parameters_reach_the_commands(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", IMAGE_TAG="v9"
    )
    assert status == 0, err
    by_stack = {re.search(r"--stack-name (\S+)", c)[1]: c for c in calls if c.startswith("cloudformation deploy ")}
    assert "--capabilities" not in by_stack["shop-prod-keys"]
    assert "--capabilities CAPABILITY_IAM " in by_stack["shop-prod-network"]  # the flow-log role
    # the service stacks resolve their released tag from SSM: nothing to give
    assert "--parameter-overrides" not in by_stack["shop-prod-svc-api"]
    assert "--parameter-overrides" not in by_stack["shop-prod-platform"]


def test_review_creates_change_sets_only(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, "--review", FAKE_ACCOUNT="333333333333", IMAGE_TAG="v1"
    )
    assert status == 0, err
    assert deployed(calls) == [s["name"] for s in own_stacks(written / "prod")]
    assert all("--no-execute-changeset" in c for c in calls if c.startswith("cloudformation deploy"))
    assert protected(calls) == []  # nothing changed, nothing to protect yet


def test_script_stops_at_the_first_failure(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "dev" / "deploy.sh", tmp_path, FAKE_ACCOUNT="111111111111", FAIL_STACK="shop-dev-keys", IMAGE_TAG="v1"
    )
    assert status != 0
    assert deployed(calls) == ["shop-dev-deployer", "shop-dev-keys"]
    assert protected(calls) == []  # the deployer holds no data; keys failed before protection
    assert "stack shop-dev-keys failed" in err


def test_script_refuses_the_wrong_account_before_touching_anything(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="111111111111", IMAGE_TAG="v1"
    )
    assert status == 1
    assert deployed(calls) == []
    assert "signed in to account 111111111111, but shop prod lives in account 333333333333" in err


def test_script_refuses_unknown_arguments(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(written / "dev" / "deploy.sh", tmp_path, "--reveiw", FAKE_ACCOUNT="111111111111")
    assert (status, calls) == (2, [])
    assert "usage:" in err


@pytest.mark.parametrize("folder", FOLDERS)
def test_script_is_executable(written: Path, folder: str) -> None:
    assert (written / folder / "deploy.sh").stat().st_mode & stat.S_IXUSR


def test_a_missing_image_tag_stops_the_script_before_anything(codedeploy_built, tmp_path: Path) -> None:
    # a CODE_DEPLOY service's stack takes its first tag from the person deploying it
    output = tmp_path / "output"
    replace_folders(output, codedeploy_built.files)
    status, calls, err = run_script(output / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333")
    assert status != 0 and calls == []
    assert "IMAGE_TAG: set IMAGE_TAG: ImageTag of shop-prod-svc-api, shop-prod-svc-web" in err


def test_guide_marks_termination_protection_and_capabilities(written: Path) -> None:
    guide = (written / "prod" / "DEPLOY.md").read_text()
    assert "| 1 | `shop-prod-deployer` | `eu-west-1` | `deployer.yaml` | CAPABILITY_NAMED_IAM | off |" in guide
    assert "| 2 | `shop-prod-keys` | `eu-west-1` | `keys.yaml` | none | **on** |" in guide
    assert "| 3 | `shop-prod-network` | `eu-west-1` | `network.yaml` | CAPABILITY_IAM | **on** |" in guide
    assert "- Termination protection: **on**, it holds LogsKey (AWS::KMS::Key)" in guide
    roles = "FlowLogRole, DefaultSecurityGroupCloserRole"
    assert f"- Capabilities: `CAPABILITY_IAM`: it creates IAM resources ({roles})" in guide
    assert "| `LogsKeyArn` | `shop-prod-keys-LogsKeyArn` |" in guide
    assert "aws cloudformation deploy \\\n  --stack-name shop-prod-keys \\\n  --region eu-west-1 \\\n" in guide
    assert "In the console: CloudFormation console, region `eu-west-1` > **Create stack**" in guide


def test_keys_stack_is_protected_in_every_environment(stacks) -> None:
    for env in ENVIRONMENTS:
        reasons = termination_protection_reasons(stacks[env]["keys"].body)
        assert "LogsKey (AWS::KMS::Key)" in reasons
        assert all(reason.endswith(("(AWS::KMS::Key)", "(AWS::Backup::BackupVault)")) for reason in reasons)


# --- synthetic templates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "transform", "expected"),
    [
        ({"Topic": {"Type": "AWS::SNS::Topic"}}, False, ()),
        ({"Role": ROLE}, False, ("CAPABILITY_IAM",)),
        ({"Policy": {"Type": "AWS::IAM::Policy", "Properties": {"PolicyName": "inline"}}}, False, ("CAPABILITY_IAM",)),
        ({"Role": ROLE, "Named": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "x"}}}, False,
         ("CAPABILITY_NAMED_IAM",)),
        ({"User": {"Type": "AWS::IAM::User", "Properties": {"UserName": "x"}}}, False, ("CAPABILITY_NAMED_IAM",)),
        ({"G": {"Type": "AWS::IAM::Group", "Properties": {"GroupName": "x"}}}, False, ("CAPABILITY_NAMED_IAM",)),
        ({"P": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"ManagedPolicyName": "x"}}}, False,
         ("CAPABILITY_NAMED_IAM",)),
        ({"I": {"Type": "AWS::IAM::InstanceProfile", "Properties": {"InstanceProfileName": "x", "Roles": []}}}, False,
         ("CAPABILITY_NAMED_IAM",)),
        ({"Topic": {"Type": "AWS::SNS::Topic"}}, True, ("CAPABILITY_AUTO_EXPAND",)),
        ({"Role": ROLE}, True, ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")),
    ],
)  # fmt: skip
def test_capabilities(resources: dict, transform: bool, expected: tuple[str, ...]) -> None:
    body: dict = {"Resources": resources}
    if transform:
        body["Transform"] = "AWS::Serverless-2016-10-31"
    assert capabilities(body) == expected


def test_termination_protection_for_stateful_types_and_keeping_policies() -> None:
    assert termination_protection_reasons({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}) == ()
    assert termination_protection_reasons(
        {
            "Resources": {
                "Table": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Delete"},
                "Volume": {"Type": "AWS::EC2::Volume", "DeletionPolicy": "Snapshot"},
                "Topic": {"Type": "AWS::SNS::Topic", "DeletionPolicy": "Retain"},
                "Queue": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Delete"},
            }
        }
    ) == ("Table (AWS::DynamoDB::Table)", "Volume (DeletionPolicy Snapshot)", "Topic (DeletionPolicy Retain)")


@pytest.mark.parametrize(
    ("parameter", "variable"),
    [("ImageTag", "IMAGE_TAG"), ("DBPassword", "DB_PASSWORD"), ("Vpc2Cidr", "VPC2_CIDR"), ("Port", "PORT")],
)
def test_parameter_variables(parameter: str, variable: str) -> None:
    assert variable_name(parameter) == variable


def synthetic(parameters: dict, extra_stack: dict | None = None) -> tuple[dict, dict]:
    """A manifest of one (or two) stacks whose templates take the given parameters."""
    stacks = [{"name": "app-test-svc", "parameters": parameters}]
    if extra_stack:
        stacks.append(extra_stack)
    manifest_ = {
        "project": "app",
        "environment": "test",
        "account_id": "123456789012",
        "region": "eu-west-1",
        "stacks": [
            {
                "name": s["name"],
                "region": "eu-west-1",
                "templates": {"yaml": f"{s['name']}.yaml", "json": f"{s['name']}.json"},
                "depends_on": [],
            }
            for s in stacks
        ],
    }
    templates = {
        s["name"]: {"Parameters": s["parameters"], "Resources": {"T": {"Type": "AWS::SNS::Topic"}}} for s in stacks
    }
    return manifest_, templates


def test_two_parameters_sharing_a_variable_are_refused() -> None:
    manifest_, templates = synthetic(
        {"DbName": {"Type": "String"}}, {"name": "app-test-db", "parameters": {"DBName": {"Type": "String"}}}
    )
    with pytest.raises(ValueError, match=r"parameters DbName and DBName would both be read from \$DB_NAME"):
        plan(manifest_, templates, "test")


def test_a_parameter_may_not_be_read_from_a_variable_the_shell_or_the_cli_reads() -> None:
    for name in ("Path", "AwsProfile"):
        with pytest.raises(ValueError, match=f"parameter {name} would be read from"):
            plan(*synthetic({name: {"Type": "String"}}), "test")


def test_parameters_without_default_come_from_the_environment(tmp_path: Path) -> None:
    parameters = {
        "ImageTag": {"Type": "String", "Description": "Image tag from the CI build"},
        "DesiredCount": {"Type": "Number", "Default": 2, "Description": "Tasks to run"},
        "ApiKey": {"Type": "String", "NoEcho": True, "Default": "secret-default", "Description": "Key"},
    }
    manifest_, templates = synthetic(parameters)
    files = handover_files(manifest_, templates, "test", TAGS)
    guide = files["DEPLOY.md"]
    assert "| `ImageTag` | String | none | Image tag from the CI build; the script reads `$IMAGE_TAG` |" in guide
    assert "| `DesiredCount` | Number | `2` | Tasks to run |" in guide
    assert "| `ApiKey` | String | (hidden) | Key |" in guide and "secret-default" not in guide
    assert "--parameter-overrides ImageTag=<value>" in guide
    assert "`IMAGE_TAG` for ImageTag of app-test-svc: Image tag from the CI build" in guide

    output = tmp_path / "out"
    bodies = {f"{name}.json": json.dumps(body) for name, body in templates.items()}  # deploy.sh records them
    replace_folders(output, {"test": {**files, **bodies, "manifest.json": json.dumps(manifest_)}})
    script = output / "test" / "deploy.sh"
    assert checks.check_shellcheck(checks.load_manifests(output)) == []

    status, calls, err = run_script(script, tmp_path, FAKE_ACCOUNT="123456789012")
    assert status != 0 and calls == []  # the missing value is caught before anything, even the account check
    assert "IMAGE_TAG: set IMAGE_TAG: ImageTag of app-test-svc" in err

    status, calls, err = run_script(script, tmp_path, FAKE_ACCOUNT="123456789012", IMAGE_TAG="v1.2.3")
    assert status == 0, err
    assert "--parameter-overrides ImageTag=v1.2.3 --tags" in calls[2]
    assert "DesiredCount" not in calls[2]


# --- the gate's shellcheck step -------------------------------------------------------------------


def gate_folder(tmp_path: Path, script: str | None) -> Path:
    output = tmp_path / "gated"
    folder = output / "test"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"environment": "test", "stacks": []}))
    if script is not None:
        (folder / "deploy.sh").write_text(script)
        for day2 in checks.SHELL_SCRIPTS[1:]:  # status.sh, logs.sh, destroy.sh: present and clean
            (folder / day2).write_text('#!/usr/bin/env bash\necho "${1:-}"\n')
    return output


def test_shellcheck_step_catches_a_bad_script(tmp_path: Path) -> None:
    output = gate_folder(tmp_path, "#!/usr/bin/env bash\nrm -rf $TARGET/*\n")
    problems = checks.check_shellcheck(checks.load_manifests(output))
    assert any("SC2086" in p.message for p in problems), problems  # unquoted: word splitting
    assert all(p.where.endswith("deploy.sh:2") for p in problems)


def test_shellcheck_step_accepts_a_clean_script(tmp_path: Path) -> None:
    output = gate_folder(tmp_path, '#!/usr/bin/env bash\nset -euo pipefail\necho "${1:-}"\n')
    assert checks.check_shellcheck(checks.load_manifests(output)) == []


def test_shellcheck_step_requires_a_script_per_environment(tmp_path: Path) -> None:
    output = gate_folder(tmp_path, None)
    problems = checks.check_shellcheck(checks.load_manifests(output))
    assert [Path(p.where).name for p in problems] == list(checks.SHELL_SCRIPTS)  # deploy.sh and the day-2 scripts
    assert all(p.message == "is missing: run `make templates`" for p in problems)


def test_gate_fails_when_shellcheck_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> list[str]:
        raise RuntimeError("shellcheck is not installed")

    monkeypatch.setattr(checks, "shellcheck_command", missing)
    # keep this test fast: not what it is about (the gate's own call, with its arguments)
    monkeypatch.setattr(checks, "check_checkov", lambda output, environments=None, only=None: [])
    # A folder the other checks pass (no templates, a clean script): only the missing shellcheck can fail it.
    output = gate_folder(tmp_path, '#!/usr/bin/env bash\nset -euo pipefail\necho "${1:-}"\n')
    lines: list[str] = []
    assert checks.run_gate(output, lines.append) == 1
    assert "  [shellcheck] gate: could not run: shellcheck is not installed" in lines
    assert [line for line in lines if "could not run" in line] == [
        "  [shellcheck] gate: could not run: shellcheck is not installed"
    ]  # the stand-in took the gate's call: no other step failed


def make_dry_run(*args: str) -> str:
    """What ``make --dry-run ARGS`` in the project would run, without the caller's make variables
    (also when run by `make test`) and DEPLOYED_DIR; fails the test if make does."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "DEPLOYED_DIR"}
    ran = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_make_deploy_runs_the_environments_script() -> None:
    dry = make_dry_run("deploy", "ENV=dev", "REVIEW=1")
    assert dry.splitlines()[-1] == "output/dev/deploy.sh --review"
    assert "generate.py check" in dry  # the gate runs first


def test_a_parameter_from_another_region_is_read_from_its_stack(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", IMAGE_TAG="v9"
    )
    assert status == 0, err
    read = calls.index(
        "cloudformation describe-stacks --stack-name shop-prod-edge-waf --region us-east-1 "
        "--query Stacks[0].Outputs[?OutputKey=='WebAclArn'].OutputValue --output text"
    )
    edge = next(i for i, c in enumerate(calls) if c.startswith("cloudformation deploy --stack-name shop-prod-edge "))
    waf = next(i for i, c in enumerate(calls) if c.startswith("cloudformation deploy --stack-name shop-prod-edge-waf "))
    assert waf < read < edge
    assert "WebAclArn=arn:aws:wafv2:us-east-1:1:global/webacl/x/y " in calls[edge]
    guide = (written / "prod" / "DEPLOY.md").read_text()
    assert "the script reads it from the stack (`describe-stacks`, region `us-east-1`)" in guide


def test_make_deploy_without_env_fails_at_once_with_the_environments() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    for args in ([], ["ENV=nope"]):
        started = time.monotonic()
        result = subprocess.run(
            ["make", "--no-print-directory", "deploy", *args],
            capture_output=True, text=True, cwd=ROOT, env=environ, check=False,
        )  # fmt: skip
        assert time.monotonic() - started < 5  # before the gate, which takes minutes
        assert result.returncode == 2
        assert "usage: make deploy ENV=name [REVIEW=1]; environments: " in result.stderr
        assert "project" in result.stderr and "generate.py" not in result.stdout
        named = "make deploy: ENV=nope is not an environment (no environments/nope.yaml); usage: " in result.stderr
        assert named == bool(args)  # an unknown name is said to be one, not only the usage


# --- the record of what was deployed, and the updates it blocks ----------------------------------


def test_each_stack_deployed_is_recorded_as_make_diffs_baseline(written: Path, tmp_path: Path) -> None:
    status, _, err = run_script(written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333")
    assert status == 0, err
    recorded = sorted(p.relative_to(tmp_path / "deployed").as_posix() for p in (tmp_path / "deployed").rglob("*.json"))
    expected = []
    for stack in own_stacks(written / "prod"):
        template = (written / "prod" / stack["templates"]["json"]).resolve()
        expected.append(f"{template.parent.name}/{stack['region']}/{stack['name']}.json")
        path = tmp_path / "deployed" / expected[-1]
        assert path.read_bytes() == template.read_bytes()  # the JSON twin of the template deployed
    assert recorded == sorted(expected)
    assert any(e.startswith("dr/") for e in expected)  # the DR partner's stacks under dr/, as make diff reads them
    (tmp_path / "review").mkdir()
    status, _, err = run_script(
        written / "prod" / "deploy.sh", tmp_path / "review", "--review", FAKE_ACCOUNT="333333333333"
    )
    assert status == 0, err
    assert not (tmp_path / "review" / "deployed").exists()  # a change set changes nothing: nothing recorded


def test_an_update_that_loses_stateful_data_is_refused_until_allowed(written: Path, tmp_path: Path) -> None:
    # dev's network stack as deployed named its flow-log group FlowLogGroupOld: the build deletes it.
    network = json.loads((written / "dev" / "manifest.json").read_text())["stacks"]
    stack = next(s for s in network if s["templates"]["json"] == "network.json")
    record = tmp_path / "deployed" / "dev" / stack["region"] / f"{stack['name']}.json"
    record.parent.mkdir(parents=True)
    record.write_text((written / "dev" / "network.json").read_text().replace('"FlowLogGroup"', '"FlowLogGroupOld"'))
    code, _, err = generate_main(
        "build", "--env", "dev", "--output", str(tmp_path / "output"), "--diagrams", "none", "--quiet"
    )
    assert code == 0, err
    script = tmp_path / "output" / "dev" / "deploy.sh"
    guide = (tmp_path / "output" / "dev" / "DEPLOY.md").read_text()
    assert f"**Blocked when this guide was generated:** `{stack['name']}`: DELETES STATEFUL" in guide

    status, calls, err = run_script(script, tmp_path, FAKE_ACCOUNT="111111111111")
    assert status == 1 and deployed(calls) == []
    assert f"deploy.sh: refusing {stack['name']}: DELETES STATEFUL {stack['name']} FlowLogGroupOld" in err
    assert f"To deploy it deliberately: ALLOW_REPLACE={stack['name']} (comma-separated" in err
    assert "no stack was changed" in err

    # --review makes its change set (that changes nothing), saying it would be refused.
    status, calls, err = run_script(script, tmp_path, "--review", FAKE_ACCOUNT="111111111111")
    assert status == 0, err
    assert stack["name"] in deployed(calls) and record.read_text().count("FlowLogGroupOld")

    status, calls, err = run_script(script, tmp_path, FAKE_ACCOUNT="111111111111", ALLOW_REPLACE=f"x,{stack['name']}")
    assert status == 0, err
    assert stack["name"] in deployed(calls)
    assert record.read_bytes() == (tmp_path / "output" / "dev" / "network.json").read_bytes()
    # Deployed: the record now matches, so the same script (its verdict baked in) no longer refuses it.
    status, _, err = run_script(script, tmp_path, FAKE_ACCOUNT="111111111111")
    assert status == 0, err
    # And the next build judges against the new record: nothing blocked.
    generate_main("build", "--env", "dev", "--output", str(tmp_path / "output"), "--diagrams", "none", "--quiet")
    assert "refusing" not in (tmp_path / "output" / "dev" / "deploy.sh").read_text()


def test_a_record_kept_elsewhere_is_the_one_the_build_and_make_diff_read(tmp_path: Path) -> None:
    """deploy.sh records under $DEPLOYED_DIR when it is set: the build must judge against that folder
    (else no stack is ever refused) and make diff compare with it (else every stack shows as new)."""
    record = tmp_path / "elsewhere" / "dev" / "eu-west-1" / "shop-dev-network.json"
    record.parent.mkdir(parents=True)
    body = BUILT.files["dev"]["network.json"].replace('"FlowLogGroup"', '"FlowLogGroupOld"')
    record.write_text(body)
    output = tmp_path / "output"
    build = ("build", "--env", "dev", "--output", str(output), "--diagrams", "none", "--quiet")
    code, _, err = generate_main(*build, "--deployed", str(tmp_path / "elsewhere"))
    assert code == 0, err
    assert "**Blocked when this guide was generated:** `shop-dev-network`" in (output / "dev" / "DEPLOY.md").read_text()
    code, _, err = generate_main(*build)  # deployed/ beside output/: nothing recorded there
    assert code == 0, err
    assert "Blocked when this guide" not in (output / "dev" / "DEPLOY.md").read_text()

    assert "--deployed /x/rec" in make_dry_run("templates", "DEPLOYED_DIR=/x/rec")
    assert "--deployed" not in make_dry_run("templates")
    # diff compares with the record (a folder that may not exist yet: nothing deployed) through --deployed;
    # AGAINST, when given, wins, and must exist (generate.main refuses a missing one)
    assert "generate.py --deployed /x/rec diff --env dev" in make_dry_run("diff", "ENV=dev", "DEPLOYED_DIR=/x/rec")
    with_both = make_dry_run("diff", "DEPLOYED_DIR=/x/rec", "AGAINST=/a")  # DEPLOYED_DIR may be exported
    assert "--against /a" in with_both and "--deployed" not in with_both  # diff refuses the two together
    assert "--against" not in make_dry_run("diff")
    assert "--deployed" not in make_dry_run("diff")


def test_an_update_aws_would_refuse_says_allow_replace_cannot_make_it_pass(written: Path, tmp_path: Path) -> None:
    # dev's database as deployed had another DatabaseName (create-only): the build replaces the cluster,
    # which keeps its custom name, so CloudFormation refuses the update whatever ALLOW_REPLACE says.
    stacks = json.loads((written / "dev" / "manifest.json").read_text())["stacks"]
    stack = next(s for s in stacks if s["templates"]["json"] == "data.json")
    record = tmp_path / "deployed" / "dev" / stack["region"] / f"{stack['name']}.json"
    record.parent.mkdir(parents=True)
    body = json.loads((written / "dev" / "data.json").read_text())
    body["Resources"]["Cluster"]["Properties"]["DatabaseName"] = "before"
    record.write_text(json.dumps(body))
    code, _, err = generate_main(
        "build", "--env", "dev", "--output", str(tmp_path / "output"), "--diagrams", "none", "--quiet"
    )
    assert code == 0, err
    status, calls, err = run_script(tmp_path / "output" / "dev" / "deploy.sh", tmp_path, FAKE_ACCOUNT="111111111111")
    assert status == 1 and deployed(calls) == []
    assert f"deploy.sh: refusing {stack['name']}: cannot deploy: " in err
    assert "CloudFormation would refuse this update and roll the stack back" in err
    assert f"ALLOW_REPLACE={stack['name']} (comma-separated for several) only lets this script try it." in err
    assert "To deploy it deliberately" not in err


# --- first deployments and pre-flight checks --------------------------------------------------------

API_TAG = "/shop/prod/api/image-tag"


@pytest.mark.parametrize(("denied", "said"), [
    ("ssm get-parameters --names /shop/prod/api/image-tag",
     "deploy.sh: could not read the SSM parameter /shop/prod/api/image-tag (eu-west-1), the image tag "
     "shop-prod-svc-api runs"),
    ("cloudformation list-stacks",
     "deploy.sh: could not list the stacks CloudFormation cannot update now in eu-west-1"),
])  # fmt: skip
def test_a_preflight_call_aws_refuses_is_a_failed_check_not_the_clis_exit(
    written: Path, tmp_path: Path, denied: str, said: str
) -> None:
    """The trial's fault: under set -e an AccessDenied ended the script with the CLI's line and 254."""
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", IMAGE_TAG="v1", FAKE_DENIED=denied
    )
    assert status == 1 and deployed(calls) == []
    assert said in err and "(AccessDenied)" in err  # what failed, and the CLI's own words
    assert "does not exist" not in err  # an unreadable parameter is not a missing one
    assert "deploy.sh: the pre-flight checks above failed; no stack was changed" in err


def test_an_output_aws_refuses_to_read_between_stacks_stops_with_a_deploy_sh_line(
    written: Path, tmp_path: Path
) -> None:
    read = "describe-stacks --stack-name shop-prod-edge-waf"
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", IMAGE_TAG="v1", FAKE_DENIED=read
    )
    assert status == 1
    assert "deploy.sh: could not read the output WebAclArn of shop-prod-edge-waf (us-east-1)" in err
    assert "(AccessDenied)" in err and "has no output" not in err
    assert "shop-prod-edge" not in deployed(calls) and "shop-prod-edge-waf" in deployed(calls)
    # CloudFormation's "does not exist" is the one answer that means the stack is not there yet
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", IMAGE_TAG="v1",
        FAKE_NOT_DEPLOYED="shop-prod-edge-waf",
    )  # fmt: skip
    assert status == 1 and "shop-prod-edge-waf (us-east-1) has no output WebAclArn" in err
    assert "deploy shop-prod-edge-waf first" in err


@pytest.mark.parametrize("args", [["--review", "--help"], ["--help", "--review"], ["-h", "nope"]])
def test_help_wherever_it_is_prints_the_help(written: Path, tmp_path: Path, args: list[str]) -> None:
    status, calls, err = run_script(written / "prod" / "deploy.sh", tmp_path, *args, FAKE_ACCOUNT="333333333333")
    assert (status, calls, err) == (0, [], "")


def test_every_exit_status_the_script_can_end_with_is_in_its_help(written: Path, tmp_path: Path) -> None:
    text = (written / "prod" / "deploy.sh").read_text()
    help_text = text.split("cat <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    statuses = re.findall(r"^  (\d+|other) ", help_text.split("Exit status:")[1], re.MULTILINE)
    ends = set(re.findall(r"\bexit (\d+)", text))
    assert ends <= set(statuses), (ends, statuses)
    assert "could not be read or is missing" in help_text  # an output between two stacks: status 1


def test_a_first_deployment_needs_the_services_tag_and_names_the_parameter(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_MISSING=API_TAG
    )
    assert status == 1 and deployed(calls) == []
    assert f"deploy.sh: {API_TAG} (SSM, eu-west-1) does not exist: the first deployment of shop-prod-svc-api" in err
    assert f"  aws ssm put-parameter --name {API_TAG} --type String --value <tag> --region eu-west-1" in err
    assert "no stack was changed" in err


def test_a_first_deployment_creates_the_tag_once_the_image_is_in_ecr(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_MISSING=API_TAG, IMAGE_TAG_API="v3"
    )
    assert status == 0, err
    # the pull's own action, which the repository policy grants this account (ecr:BatchGetImage)
    assert (
        "ecr batch-get-image --registry-id 444444444444 --repository-name shop/api --image-ids imageTag=v3 "
        "--region eu-west-1 --query failures[0].failureCode --output text" in calls
    )
    assert not [c for c in calls if "describe-images" in c]  # not granted across accounts
    put = f"ssm put-parameter --name {API_TAG} --type String --value v3 --region eu-west-1"
    assert [c for c in calls if "put-parameter" in c] == [put]  # never --overwrite; web's tag exists already
    svc = next(i for i, c in enumerate(calls) if c.startswith("cloudformation deploy --stack-name shop-prod-svc-api "))
    assert calls.index(put) == svc - 1  # right before its stack, once the stacks before it are up


def test_a_tag_not_in_ecr_stops_before_any_stack(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_MISSING=API_TAG,
        IMAGE_TAG="nope1", FAKE_ABSENT="imageTag=nope1",
    )  # fmt: skip
    assert status == 1 and deployed(calls) == [] and not [c for c in calls if "put-parameter" in c]
    assert "the image shop/api:nope1 is not in ECR (account 444444444444, eu-west-1; ECR: ImageNotFound)" in err
    assert "push it first" in err and "no stack was changed" in err


@pytest.mark.parametrize(
    ("error", "says", "not_says"),
    [
        ("An error occurred (AccessDeniedException) when calling the BatchGetImage operation: User: "
         "arn:aws:iam::333333333333:user/x is not authorized to perform: ecr:BatchGetImage because no "
         "resource-based policy allows the ecr:BatchGetImage action",
         ["account 333333333333 may not read the repository shop/api (ECR, account 444444444444, eu-west-1)",
          "the repository policy of shop-registry-api (../project/deploy.sh) must allow account 333333333333 "
          "ecr:BatchGetImage, and your IAM identity needs that action on it too", "AccessDeniedException"],
         "push it first"),
        ("An error occurred (RepositoryNotFoundException) when calling the BatchGetImage operation: The "
         "repository with name 'shop/api' does not exist in the registry with id '444444444444'",
         ["the repository shop/api does not exist in ECR (account 444444444444, eu-west-1): deploy the shared "
          "stacks first: ../project/deploy.sh, in account 444444444444"], "push it first"),
        ("Unable to locate credentials. You can configure credentials by running \"aws configure\".",
         ["AWS refused the CLI's credentials while checking shop/api:v5 in ECR: sign in again"], "push it first"),
        ("Could not connect to the endpoint URL", ["could not check the image shop/api:v5 in ECR"], "push it first"),
    ],
)  # fmt: skip
def test_an_image_check_ecr_refuses_is_not_called_missing(
    written: Path, tmp_path: Path, error: str, says: list[str], not_says: str
) -> None:
    """A refused call (access, no repository, credentials, other) says what it is and what to do, never
    "not in ECR": that verdict is ECR's failure code for an image it was allowed to look for."""
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_MISSING=API_TAG,
        IMAGE_TAG="v5", FAKE_ECR_ERROR=error,
    )  # fmt: skip
    assert status == 1 and deployed(calls) == [], err
    for text in says:
        assert text in err, err
    assert not_says not in err and "is not in ECR" not in err


def test_the_replicas_image_check_names_the_creation_template_and_what_creates_the_repository(
    written: Path, tmp_path: Path
) -> None:
    """dr pulls from ECR's replica in its own region: its repository comes from the registry's
    replication, its policy from the repository creation template."""
    status, _, err = run_script(
        written / "dr" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_MISSING="/shop/dr/api/image-tag",
        IMAGE_TAG="v6", FAKE_ECR_ERROR="An error occurred (RepositoryNotFoundException) when calling BatchGetImage",
    )  # fmt: skip
    assert status == 1
    assert "the repository shop/api does not exist in ECR (account 444444444444, eu-central-1): ECR creates it" in err
    status, _, err = run_script(
        written / "dr" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_MISSING="/shop/dr/api/image-tag",
        IMAGE_TAG="v6", FAKE_ECR_ERROR="An error occurred (AccessDeniedException) when calling BatchGetImage",
    )  # fmt: skip
    assert "the repository creation template of shop-registry-replica-eu-central-1" in err


def test_review_without_tags_skips_the_services_never_deployed(written: Path, tmp_path: Path) -> None:
    script = written / "prod" / "deploy.sh"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS")}
    status, calls, _ = run_script(script, tmp_path, "--review", FAKE_ACCOUNT="333333333333", FAKE_MISSING=API_TAG)
    assert status == 0
    stacks = [s["name"] for s in own_stacks(written / "prod")]
    assert deployed(calls) == [s for s in stacks if s != "shop-prod-svc-api"]
    assert not [c for c in calls if "put-parameter" in c or "ecr " in c]  # a review changes nothing
    out = subprocess.run(
        [str(script), "--review"], capture_output=True, text=True, check=False,
        env={**environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
             "FAKE_AWS_LOG": str(tmp_path / "again.log"), "FAKE_ACCOUNT": "333333333333", "FAKE_MISSING": API_TAG},
    ).stdout  # fmt: skip
    assert f"    skipped: {API_TAG} does not exist yet, so there is no change set to review" in out


def test_a_stack_in_rollback_complete_stops_everything_with_the_command_that_clears_it(
    written: Path, tmp_path: Path
) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_ROLLBACK="other shop-prod-data"
    )
    assert status == 1 and deployed(calls) == []
    assert "deploy.sh: shop-prod-data (eu-west-1) is in ROLLBACK_COMPLETE or ROLLBACK_FAILED" in err
    assert "  aws cloudformation delete-stack --stack-name shop-prod-data --region eu-west-1" in err
    assert "shop-prod-data-" not in err  # the match is by whole name


@pytest.mark.parametrize(
    ("state", "said", "command"),
    [
        ("UPDATE_ROLLBACK_FAILED", "is in UPDATE_ROLLBACK_FAILED", "aws cloudformation continue-update-rollback"),
        ("DELETE_FAILED", "is in DELETE_FAILED: a delete of it stopped half-way", "aws cloudformation delete-stack"),
        ("UPDATE_IN_PROGRESS", "has an operation in progress: wait for it to end", ""),
    ],
)
def test_a_stack_cloudformation_cannot_update_now_stops_everything_before_any_stack(
    written: Path, tmp_path: Path, state: str, said: str, command: str
) -> None:
    """From a review: the pre-flight looked for ROLLBACK_COMPLETE only, so a stack whose rollback or
    delete failed, or one still in an operation, stopped `cloudformation deploy` half-way with the
    CLI's status instead."""
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_ROLLBACK=f"shop-prod-data:{state}"
    )
    assert status == 1 and deployed(calls) == []
    assert f"deploy.sh: shop-prod-data (eu-west-1) {said}" in err
    assert f"{command} --stack-name shop-prod-data --region eu-west-1" in err if command else True


@pytest.mark.parametrize(
    ("absent", "message"),
    [
        ("payment-Pr3x8N", "the secret shop/api/payment-Pr3x8N (eu-west-1), which shop-prod-svc-api reads as "
         "PAYMENT_API_KEY, does not exist in account 333333333333. No one chooses a secret's suffix"),
        ("payment-Pr3x8N", "  aws secretsmanager create-secret --name shop/api/payment --region eu-west-1 "
         "--secret-string file://value.txt\n  rm -f value.txt\n"),
        ("payment-Pr3x8N", """type {"api_key":"<value>"} and then Ctrl-D twice"""),
        ("payment-Pr3x8N", "  aws secretsmanager describe-secret --secret-id shop/api/payment --region eu-west-1 "
         "--query ARN --output text"),
        ("payment-Pr3x8N", "in environments/prod.yaml, services.api.secrets.PAYMENT_API_KEY: "
         "secretsmanager:<complete name>#api_key"),
        ("certificate/33333333-3333-3333-3333-333333333334",
         "which shop-prod-edge uses, does not exist in account 333333333333: request or import it there"),
    ],
)  # fmt: skip
def test_a_missing_secret_or_certificate_stops_before_any_stack(
    written: Path, tmp_path: Path, absent: str, message: str
) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_ABSENT=absent
    )
    assert status == 1 and deployed(calls) == []
    assert message in err


def test_an_empty_cross_region_output_is_not_passed_on(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_NO_OUTPUT="1"
    )
    assert status == 1
    assert not [c for c in calls if "=None" in c or re.search(r"\w=( |$)", c)]
    assert re.search(r"deploy.sh: \S+ \(\S+\) has no output \w+, which shop-prod-\S+ needs as \w+", err), err


# --- the origin names CloudFront reaches the load balancer by ---------------------------------------


@pytest.mark.parametrize("folder", ENVIRONMENTS)
def test_every_origin_name_has_its_step_right_after_the_load_balancers_stack(written: Path, folder: str) -> None:
    guide = (written / folder / "DEPLOY.md").read_text()
    names = set()
    for stack in json.loads((written / folder / "manifest.json").read_text())["stacks"]:
        if stack["templates"]["json"].startswith("../"):
            continue  # another folder's stack: its own guide
        body = json.loads((written / folder / stack["templates"]["json"]).read_text())
        for resource in body["Resources"].values():
            if resource["Type"] == "AWS::CloudFront::Distribution":
                origins = resource["Properties"]["DistributionConfig"]["Origins"]
                names |= {o["DomainName"] for o in origins if "CustomOriginConfig" in o}
    env = BUILT.environments[folder]
    assert names == {env.edge.origin_domain}
    sections = re.findall(r"^### (\d+\. \S+|The origin name `[^`]+`)$", guide, flags=re.MULTILINE)
    for name in names:
        at = sections.index(f"The origin name `{name}`")
        assert sections[at - 1].endswith(f"shop-{folder}-platform")  # the stack whose outputs name the ALB
        section = guide.split(f"### The origin name `{name}`")[1].split("\n### ")[0]
        certificate = env.platform.certificate_arn.split(":certificate/")[1]
        assert re.search(
            rf"`platform\.certificate_arn`: `arn:aws:acm:[a-z0-9-]+:\d+:certificate/{certificate}`", section
        )
        assert f"must cover `{name}`" in section


def test_the_origin_record_is_created_where_the_settings_name_a_hosted_zone_else_at_the_dns_provider(
    written: Path,
) -> None:
    def section(folder: str) -> str:
        guide = (written / folder / "DEPLOY.md").read_text()
        return guide.split("### The origin name `")[1].split("\n### ")[0]

    # prod: its DR environment's dr.dns makes shop-prod-dns hold the failover records of prod's origin name.
    assert "managed by the stack `shop-prod-dns`" in section("prod") and "route53" not in section("prod")
    # dr: dr.dns names a hosted zone: the alias record, with the load balancer's outputs read first.
    zone = BUILT.environments["dr"].dr.dns.hosted_zone_id
    assert f"aws route53 change-resource-record-sets --hosted-zone-id {zone} " in section("dr")
    assert "OutputKey=='LoadBalancerDnsName'" in section("dr") and "OutputKey=='LoadBalancerHostedZoneId'" in section(
        "dr"
    )
    # dev: no hosted zone in the settings: the DNS provider, with the name to point at.
    assert "route53" not in section("dev") and "create the record at your DNS provider, a CNAME" in section("dev")
    assert "--stack-name shop-dev-platform --region eu-west-1" in section("dev")


@pytest.mark.parametrize(("folder", "reminded"), [("dev", True), ("dr", True), ("prod", False)])
def test_the_script_ends_with_the_origin_record_no_stack_creates(
    written: Path, tmp_path: Path, folder: str, reminded: bool
) -> None:
    """`make deploy` alone must not leave a site answering 502 unexplained: the origin name's record is the
    one step the script cannot take, so it says so last, with the load balancer's DNS name read from the
    stack. prod's record is its dns stack's (dr.dns): nothing to say there."""
    run_script(written / folder / "deploy.sh", tmp_path)  # only to put the recording stand-in for aws in place
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS")}
    environ.update(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        FAKE_AWS_LOG=str(tmp_path / "aws.log"),
        FAKE_ACCOUNT=account_of(written / folder),
        DEPLOYED_DIR=str(tmp_path / "deployed"),
        IMAGE_TAG="0123abc",
    )
    (tmp_path / "aws.log").write_text("")
    result = subprocess.run(
        [str(written / folder / "deploy.sh")], capture_output=True, text=True, env=environ, check=False
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    name = BUILT.environments[folder].edge.origin_domain
    if reminded:
        read = f"cloudformation describe-stacks --stack-name shop-{folder}-platform"
        assert read in (tmp_path / "aws.log").read_text().splitlines()[-1]
        assert last.startswith(f"One step is yours, once: {name} must resolve to the load balancer, arn:")
        assert "DEPLOY.md, 'The origin name', gives the commands." in last
    else:
        assert "One step is yours" not in result.stdout
        assert last == f"shop {folder}: {len(own_stacks(written / folder))} CloudFormation stacks deployed."


def test_a_secret_this_account_may_not_read_is_not_called_missing(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_ABSENT="payment-Pr3x8N",
        FAKE_ERROR="AccessDeniedException",
    )  # fmt: skip
    assert status == 1 and deployed(calls) == []
    assert "could not read the secret shop/api/payment-Pr3x8N (eu-west-1), which shop-prod-svc-api reads as " in err
    assert "AccessDeniedException" in err and "does not exist" not in err


def test_a_missing_ssm_parameter_says_how_to_create_it(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333", FAKE_MISSING="/shop/api/signing-key"
    )
    assert status == 1 and deployed(calls) == []
    assert "the SSM parameter /shop/api/signing-key (eu-west-1), which shop-prod-svc-api reads as SIGNING_KEY, " in err
    assert "  aws ssm put-parameter --name /shop/api/signing-key --type SecureString --value file://value.txt " in err


@pytest.mark.parametrize("folder", FOLDERS)
def test_help_names_every_variable_the_script_reads_and_exits_0(written: Path, tmp_path: Path, folder: str) -> None:
    """--help (and -h) prints what the script does, each variable it reads and its exit statuses, on
    stdout, asks AWS nothing and exits 0; each ${VAR...} the script reads from the environment is in it."""
    script = written / folder / "deploy.sh"
    text = script.read_text()
    for option in ("--help", "-h"):
        result = subprocess.run(
            [str(script), option], capture_output=True, text=True, check=False, env={"PATH": "/bin"}
        )
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        out = result.stdout
        assert out.startswith("Usage: ./deploy.sh [--review]") and "Exit status:" in out
        # every variable read from the environment: ${NAME:-...}, ${NAME:?...}, ${NAME} of an upper-case name
        read = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}]", text)) | {"ALLOW_REPLACE", "DEPLOYED_DIR"}
        assert read >= {"DEPLOYED_DIR", "ALLOW_REPLACE"}
        if folder != PROJECT_FOLDER:
            assert {"IMAGE_TAG", "IMAGE_TAG_API"} <= read
        for variable in read:
            assert re.search(rf"^  {variable} ", out, re.MULTILINE), f"{variable} missing from --help"
        for status in ("0", "1", "2"):
            assert re.search(rf"^  {status} ", out, re.MULTILINE)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_guide_lists_each_secret_and_parameter_with_the_commands_that_create_it(written: Path, env: str) -> None:
    """DEPLOY.md names every secret and SSM parameter the environment's containers read (as the
    task definitions name them), with the command that creates it and where its name goes."""
    guide = (written / env / "DEPLOY.md").read_text()
    section = guide.split("## Secrets and parameters", 1)[1].split("\n## ", 1)[0]
    settings = BUILT.environments[env]
    expected = 0
    for name, service in settings.services.items():
        for variable, reference in service.secrets.items():
            expected += 1
            kind, _, rest = reference.partition(":")
            assert f"`shop-{env}-svc-{name}` as `{variable}`" in section
            assert f"`environments/{env}.yaml`, `services.{name}.secrets.{variable}`" in section or (
                f"`services.{name}.secrets.{variable}`: `ssm:" in section
            )
            if kind == "secretsmanager":
                complete, _, key = rest.partition("#")
                base = complete.rsplit("-", 1)[0]
                assert f"aws secretsmanager create-secret --name {base} --region {settings.region} " in section
                assert f"aws secretsmanager describe-secret --secret-id {base} --region {settings.region} " in section
                assert f"(now `secretsmanager:{complete}#{key}`)" in section
            else:
                assert f"aws ssm put-parameter --name {rest} --type SecureString --value file://value.txt " in section
    assert expected and section.count("\n- ") == expected


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_secret_value_is_ever_on_a_command_line(written: Path, env: str) -> None:
    """A value typed on a command line lands in the shell's history (Secrets Manager User Guide,
    "Mitigate the risks of using the AWS CLI to store your AWS Secrets Manager secrets"): every command
    that writes a secret or a SecureString reads its value from a file (file://) the deployer types into."""
    found = 0
    for name in ("DEPLOY.md", "deploy.sh", "RUNBOOK.md"):
        path = written / env / name
        text = path.read_text() if path.exists() else ""
        writes = re.findall(r"aws (?:secretsmanager (?:create-secret|put-secret-value|update-secret)|ssm put-parameter"
                            r" [^\n]*SecureString)[^\n]*", text)  # fmt: skip
        found += len(writes)
        for command in writes:
            value = re.search(r"--(?:secret-string|value) (\S+)", command)
            assert value and value[1] == "file://value.txt", (name, command)
        if "file://value.txt" in text:
            assert "(umask 077 && cat > value.txt)" in text and "rm -f value.txt" in text
    assert found or not any(s.secrets for s in BUILT.environments[env].services.values())


def test_each_environment_has_its_own_secret_suffix() -> None:
    """A secret's suffix is chosen by Secrets Manager in each account and region: one reference cannot
    be right for two environments, so defaults.yaml gives none."""
    complete = {env: s.services["api"].secrets["PAYMENT_API_KEY"] for env, s in BUILT.environments.items()}
    assert len(set(complete.values())) == len(complete) == len(ENVIRONMENTS)
    assert "secretsmanager:" not in (SETTINGS / "defaults.yaml").read_text()


def test_a_certificate_this_account_may_not_read_is_not_called_missing(written: Path, tmp_path: Path) -> None:
    status, calls, err = run_script(
        written / "prod" / "deploy.sh", tmp_path, FAKE_ACCOUNT="333333333333",
        FAKE_ABSENT="certificate/33333333-3333-3333-3333-333333333334", FAKE_ERROR="AccessDeniedException",
    )  # fmt: skip
    assert status == 1 and deployed(calls) == []
    assert "could not read the certificate arn:aws:acm:us-east-1:333333333333:certificate/33333333-" in err
    assert "AccessDeniedException" in err and "does not exist" not in err
