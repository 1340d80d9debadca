"""The day-2 scripts (status.sh, logs.sh, destroy.sh) run against a stand-in ``aws`` on PATH that
answers as CloudFormation, RDS and the CLI would and records every call: what each script asks,
in which order, and that destroy.sh deletes nothing before it has said what is kept and lost, and
nothing at all while a protection is on or the name was not typed back. (That each printed command
is one the real AWS CLI accepts, naming what exists, is tests/test_aws_commands.py.) The Makefile
targets fail at once without ENV."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BUILT, ROOT

from infra_templates import day2

PROD = "prod"
ACCOUNT = "333333333333"
PROTECTED_DEFAULT = "none"

# The stand-in: answers by the operation and the stack named; every call appended to $AWS_CALLS.
# FAKE_MISSING: a stack (or "all") CloudFormation says does not exist; FAKE_DENIED: a stack (or "all")
# whose describe-stacks AWS refuses (AccessDenied, as the AWS CLI prints it, exit 254), only those
# whose arguments hold FAKE_DENIED_QUERY where it is set.
FAKE_AWS = r"""#!/usr/bin/env bash
echo "$*" >> "$AWS_CALLS"
args=" $* "
if [[ "$1 $2" == "cloudformation describe-stacks" ]]; then
  if [[ ("$FAKE_DENIED" == all || "$args" == *" --stack-name $FAKE_DENIED "*) &&
        "$args" == *"${FAKE_DENIED_QUERY:-}"* ]]; then
    echo "An error occurred (AccessDenied) when calling the DescribeStacks operation: User:" \
      "arn:aws:iam::$FAKE_ACCOUNT:user/trial is not authorized to perform: cloudformation:DescribeStacks" >&2
    exit 254
  fi
  stack="${args#* --stack-name }"; stack="${stack%% *}"
  if [[ "$FAKE_MISSING" == all || "$stack" == "$FAKE_MISSING" ]]; then
    echo "" >&2
    echo "An error occurred (ValidationError) when calling the DescribeStacks operation:" \
      "Stack with id $stack does not exist" >&2
    exit 254
  fi
fi
case "$*" in
  --version) echo "aws-cli/${FAKE_CLI_MAJOR:-2}.15.0 Python/3.11" ; exit 0 ;;
  "sts get-caller-identity"*)
    if [[ "$FAKE_ACCOUNT" == none ]]; then echo "Unable to locate credentials." >&2; exit 255; fi
    echo "$FAKE_ACCOUNT" ;;
  *"Stacks[0].EnableTerminationProtection"*)
    if [[ "$args" == *" --stack-name $FAKE_PROTECTED "* ]]; then echo True; else echo False; fi ;;
  *"rds describe-db-clusters"*)
    if [[ -n "${FAKE_RDS_ERROR:-}" ]]; then echo "$FAKE_RDS_ERROR" >&2; exit 254; fi
    echo "${FAKE_DB_PROTECTED:-False}" ;;
  *"rds describe-global-clusters"*) echo "${FAKE_GLOBAL_PROTECTED:-False}" ;;
  *"OutputKey=='LoadBalancerArn'"*) echo "arn:aws:elasticloadbalancing:eu-west-1:333333333333:loadbalancer/app/x/1" ;;
  *"describe-load-balancer-attributes"*) echo "${FAKE_LB_PROTECTED:-false}" ;;
  *"Stacks[0].StackStatus"*) echo UPDATE_COMPLETE ;;
  *"Stacks[0].[StackStatus,DriftInformation.StackDriftStatus]"*)
    if [[ "$args" == *" --stack-name $FAKE_FAILED "* ]]; then printf 'UPDATE_ROLLBACK_COMPLETE\tDRIFTED\n'
    else printf 'UPDATE_COMPLETE\tNOT_CHECKED\n'; fi ;;
  *"wait stack-delete-complete"*)
    if [[ "$args" == *" --stack-name ${FAKE_DELETE_FAILED:-none} "* ]]; then
      echo "Waiter StackDeleteComplete failed: Waiter encountered a terminal failure state: For expression" \
        "\"Stacks[].StackStatus\" we matched expected path: \"DELETE_FAILED\" at least once" >&2
      exit 255
    fi ;;
  *"describe-stack-events"*)
    if [[ -n "${FAKE_EVENTS_ERROR:-}" ]]; then echo "$FAKE_EVENTS_ERROR" >&2; exit 254; fi
    printf '2026-11-30T04:00:00Z\tService\tUPDATE_FAILED\tCircuit breaker\n' ;;
  *) ;;
esac
"""


def _script(tmp_path: Path, name: str, folder: str = PROD) -> Path:
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BUILT.files[folder][name], encoding="utf-8")
    path.chmod(0o755)
    return path


def _run(tmp_path: Path, script: Path, *args: str, stdin: str = "", **fake: str) -> tuple[int, str, str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "aws").write_text(FAKE_AWS, encoding="utf-8")
    (bin_dir / "aws").chmod(0o755)
    calls = tmp_path / "calls.log"
    calls.write_text("")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "AWS_CALLS": str(calls),
        "FAKE_ACCOUNT": ACCOUNT,
        "FAKE_PROTECTED": PROTECTED_DEFAULT,
        "FAKE_MISSING": "none",
        "FAKE_FAILED": "none",
        "FAKE_DENIED": "none",
        "DEPLOYED_DIR": str(tmp_path / "deployed"),
        **fake,
    }
    result = subprocess.run(
        ["bash", str(script), *args], input=stdin, capture_output=True, text=True, env=env, check=False, timeout=60
    )
    return result.returncode, result.stdout, result.stderr, calls.read_text().splitlines()


def _own_stacks(folder: str = PROD) -> list[str]:
    manifest = json.loads(BUILT.files[folder]["manifest.json"])
    return [s["name"] for s in manifest["stacks"] if not s["templates"]["json"].startswith("../")]


def _all_stacks(folder: str = PROD) -> list[str]:
    return [s["name"] for s in json.loads(BUILT.files[folder]["manifest.json"])["stacks"]]


# --- status.sh --------------------------------------------------------------------------------


def test_status_lists_every_stack_in_manifest_order_and_passes_when_all_are_complete(tmp_path: Path) -> None:
    status, out, err, calls = _run(tmp_path, _script(tmp_path, "status.sh"))
    assert status == 0, err
    rows = [line.split()[0] for line in out.splitlines()[1:] if line and not line.startswith(" ")]
    assert rows[: len(_all_stacks())] == _all_stacks()
    assert "project stack" in out and "dr's stack" in out  # the manifest's other folders, marked
    asked = [s for s in _all_stacks() if not s.startswith("shop-registry") and not s.startswith("shop-delivery")]
    assert out.count("drift never checked; to check: aws cloudformation detect-stack-drift") == len(asked)
    assert not any("describe-stack-events" in c for c in calls)


def test_status_shows_the_last_failed_event_drift_and_a_missing_stack_and_fails(tmp_path: Path) -> None:
    failed, missing = "shop-prod-svc-api", "shop-prod-svc-web"
    status, out, err, calls = _run(tmp_path, _script(tmp_path, "status.sh"), FAKE_FAILED=failed, FAKE_MISSING=missing)
    assert status == 1
    row = next(line for line in out.splitlines() if line.startswith(failed))
    assert "UPDATE_ROLLBACK_COMPLETE" in row and "DRIFTED" in row
    assert f"describe-stack-resource-drifts --stack-name {failed} --region eu-west-1" in out
    assert "UPDATE_FAILED\tCircuit breaker" in out
    assert [c for c in calls if "describe-stack-events" in c] == [
        next(c for c in calls if "describe-stack-events" in c and failed in c)
    ]
    assert "NOT_DEPLOYED" in next(line for line in out.splitlines() if line.startswith(missing))
    assert "not every stack of this folder is complete" in err


@pytest.mark.parametrize(("name", "args"), [("status.sh", []), ("destroy.sh", []), ("logs.sh", ["api"])])
def test_without_credentials_a_script_stops_at_once_and_touches_nothing(tmp_path: Path, name: str, args) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, name), *args, stdin="prod\n", FAKE_ACCOUNT="none")
    assert status == 1
    assert "could not ask AWS which account this is (STS GetCallerIdentity failed, its error above" in err
    assert err.count("Unable to locate credentials") == 1
    assert [c for c in calls if "get-caller-identity" not in c and c != "--version"] == []


def test_the_project_stacks_of_another_account_are_left_to_the_project_folders_status(tmp_path: Path) -> None:
    """The project's stacks are in the registry's account (444444444444): with prod's credentials
    CloudFormation would answer "does not exist" (it has no resource-based policy: IAM User Guide,
    "AWS services that work with IAM"), read as not deployed. Their rows say where they are instead."""
    status, out, _, calls = _run(tmp_path, _script(tmp_path, "status.sh"), FAKE_FAILED="shop-registry")
    assert status == 0
    project = [s for s in _all_stacks() if s.startswith(("shop-registry", "shop-delivery"))]
    assert project and not [c for c in calls if any(f"--stack-name {s} " in c for s in project)]
    for stack in project:
        row = next(line for line in out.splitlines() if line.startswith(f"{stack} "))
        assert "account 444444444444" in row and "project stack: ../project/status.sh" in row
    assert "NOT_DEPLOYED" not in out and "UPDATE_FAILED" not in out


def test_stacks_of_the_folders_own_account_are_asked_about() -> None:
    """Where the registry shares the environment's account, the project's stacks are described as any."""
    body: dict = {"Resources": {}}
    stacks = [
        day2.Stack("shop-registry", "eu-west-1", False, "project stack", body, "333333333333", "project"),
        day2.Stack("shop-prod-keys", "eu-west-1", True, "", body, "333333333333", "prod"),
    ]
    text = day2.status_script("shop prod", stacks, "333333333333")
    assert "describe-stacks --stack-name shop-registry " in text and "account 333333333333'" not in text
    text = day2.status_script("shop prod", stacks[:1] + stacks[1:], "111111111111")
    assert "describe-stacks --stack-name shop-registry " not in text


@pytest.mark.parametrize(
    ("name", "variables"),
    [("status.sh", []), ("logs.sh", ["SINCE"]), ("destroy.sh", ["CONFIRM", "DEPLOYED_DIR"])],
)
def test_help_says_what_the_script_does_what_it_reads_and_its_exit_statuses(
    tmp_path: Path, name: str, variables: list[str]
) -> None:
    script = _script(tmp_path, name)
    text = script.read_text()
    assert set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}]", text)) == set(variables)  # what it reads, all listed
    for option in ("--help", "-h"):
        status, out, err, calls = _run(tmp_path, script, option)
        assert (status, err, calls) == (0, "", []), err
        assert out.startswith(f"Usage: ./{name}") and "Exit status:" in out
        for variable in variables:
            assert re.search(rf"^  {variable} ", out, re.MULTILINE), variable
        for code in ("0" if name != "logs.sh" else "130", "1", "2"):
            assert re.search(rf"^  {code} ", out, re.MULTILINE), code


@pytest.mark.parametrize("name", ["status.sh", "destroy.sh"])
def test_an_unknown_argument_is_refused_before_any_aws_call(tmp_path: Path, name: str) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, name), "--yes", stdin="prod\n")
    assert (status, calls) == (2, []) and "usage:" in err and "--help" in err


# --- logs.sh ----------------------------------------------------------------------------------


def test_logs_tails_the_services_own_log_group(tmp_path: Path) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "logs.sh"), "api", SINCE="2h")
    assert status == 0, err
    assert calls[-1] == "logs tail shop-prod-svc-api --region eu-west-1 --follow --since 2h --format short"
    status, _, _, calls = _run(tmp_path, _script(tmp_path, "logs.sh"), "web")
    assert calls[-1].endswith("--since 10m --format short") and "shop-prod-svc-web" in calls[-1]


@pytest.mark.parametrize(("args", "fake", "message"), [
    (["nope"], {}, "no service nope in this environment"),
    ([], {}, "usage:"),
    (["api"], {"FAKE_CLI_MAJOR": "1"}, "needs the AWS CLI version 2"),
])  # fmt: skip
def test_logs_refuses_an_unknown_service_and_cli_v1(tmp_path, args, fake, message) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "logs.sh"), *args, **fake)
    assert status in (1, 2) and message in err
    assert not any(c.startswith("logs tail") for c in calls)


@pytest.mark.parametrize("args", [[], ["nope"]])
def test_logs_usage_lists_every_service_with_its_kind_before_any_aws_call(tmp_path: Path, args) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "logs.sh"), *args, FAKE_ACCOUNT="none")
    assert status == 2 and calls == []  # no credentials needed to be told the names
    listed = err.split("(one of: ")[1].strip().removesuffix(")")
    kinds = dict(item[:-1].split(" (") for item in listed.split(", "))
    expected = {n: s.kind for n, s in BUILT.environments[PROD].services.items()}
    assert kinds == expected and {"web", "backend", "worker", "job"} <= set(kinds.values())


# --- destroy.sh -------------------------------------------------------------------------------


def _deleted(calls: list[str]) -> list[str]:
    return [c.split("--stack-name ")[1].split()[0] for c in calls if c.startswith("cloudformation delete-stack")]


def test_destroy_states_what_is_kept_and_lost_then_deletes_in_reverse_order(tmp_path: Path) -> None:
    status, out, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD)
    assert status == 0, err
    assert _deleted(calls) == list(reversed(_own_stacks()))
    kept = out.split("Kept by their DeletionPolicy")[1].split("Lost:")[0]
    assert "shop-prod-data: Cluster (AWS::RDS::DBCluster, DeletionPolicy Snapshot): a final snapshot is kept" in kept
    assert "shop-prod-edge: AssetsBucket (AWS::S3::Bucket, DeletionPolicy Retain): kept" in kept
    assert "WriterInstance" not in out  # an Aurora instance holds no data
    # everything is stated before the first call that deletes
    assert out.index("Kept by their DeletionPolicy") < out.index("==> 1/")
    for name in _all_stacks():
        if name not in _own_stacks():
            assert name not in _deleted(calls)  # the project's and the DR partner's stacks are never touched
    assert all(f"wait stack-delete-complete --stack-name {n} " in " ".join(calls) for n in _own_stacks())


@pytest.mark.parametrize(("fake", "lift"), [
    ({"FAKE_PROTECTED": "shop-prod-data"},
     "aws cloudformation update-termination-protection --no-enable-termination-protection "
     "--stack-name shop-prod-data --region eu-west-1"),
    ({"FAKE_DB_PROTECTED": "True"},
     "aws rds modify-db-cluster --db-cluster-identifier shop-prod --no-deletion-protection --apply-immediately "
     "--region eu-west-1"),
    # the global database's own protection: the data stack's delete stopped half-way without it
    ({"FAKE_GLOBAL_PROTECTED": "True"},
     "aws rds modify-global-cluster --global-cluster-identifier shop-prod-global --no-deletion-protection "
     "--region eu-west-1"),
    ({"FAKE_LB_PROTECTED": "true"},
     "aws elbv2 modify-load-balancer-attributes --load-balancer-arn "
     '"arn:aws:elasticloadbalancing:eu-west-1:333333333333:loadbalancer/app/x/1" --region eu-west-1 '
     "--attributes Key=deletion_protection.enabled,Value=false"),
])  # fmt: skip
def test_destroy_refuses_while_a_protection_is_on_and_prints_how_to_lift_it(tmp_path, fake, lift) -> None:
    status, out, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD, **fake)
    assert status == 1
    assert lift in err
    assert "nothing was deleted" in err
    assert _deleted(calls) == []
    assert "Kept by their DeletionPolicy" in out  # stated even when it refuses


def test_destroy_asks_for_the_name_and_deletes_nothing_on_a_wrong_answer(tmp_path: Path) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), stdin="staging\n")
    assert status == 1 and "prod was not typed back" in err
    assert _deleted(calls) == []
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), stdin="prod\n")
    assert status == 0, err
    assert _deleted(calls) == list(reversed(_own_stacks()))


def test_destroy_drops_the_record_of_each_stack_it_deleted_and_only_those(tmp_path: Path) -> None:
    manifest = json.loads(BUILT.files[PROD]["manifest.json"])
    records = {}
    for stack in manifest["stacks"]:
        home = PROD if not stack["templates"]["json"].startswith("../") else stack["templates"]["json"].split("/")[1]
        records[stack["name"]] = tmp_path / "deployed" / home / stack["region"] / f"{stack['name']}.json"
        records[stack["name"]].parent.mkdir(parents=True, exist_ok=True)
        records[stack["name"]].write_text("{}")
    status, _, err, _ = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD)
    assert status == 0, err
    assert sorted(n for n, path in records.items() if not path.exists()) == sorted(_own_stacks())
    assert len(_own_stacks()) < len(records)  # the project's and the DR partner's records stay


def test_destroy_refuses_another_account(tmp_path: Path) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD, FAKE_ACCOUNT="999999999999")
    assert status == 1 and "signed in to account 999999999999" in err
    assert _deleted(calls) == []


def test_destroy_of_the_project_deletes_only_the_project_stacks(tmp_path: Path) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh", "project"), CONFIRM="project",
                                 FAKE_ACCOUNT=BUILT.project.account_id)  # fmt: skip
    assert status == 0, err
    assert _deleted(calls) == list(reversed(_all_stacks("project")))


def test_destroy_stops_at_an_error_that_is_not_does_not_exist_and_deletes_nothing(tmp_path: Path) -> None:
    """The trial's fault: AccessDenied on describe-stacks read as "not deployed", every stack "deleted"
    and every record dropped while the stacks kept running. Only CloudFormation's ValidationError
    "Stack with id X does not exist" (CloudFormation API Reference, DescribeStacks) means not deployed."""
    records = _records(tmp_path)
    status, out, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD, FAKE_DENIED="all")
    assert status == 1
    first = _own_stacks()[-1]  # the first deleted, the first asked about
    assert f"destroy.sh: could not read the stack {first} (" in err and "nothing was deleted" in err
    assert "(AccessDenied)" in err and "cloudformation:DescribeStacks" in err  # the CLI's error, quoted
    assert _deleted(calls) == [] and "not deployed" not in out and "deleted." not in out
    assert all(path.exists() for path in records.values())


def test_destroy_stopped_half_way_by_an_error_keeps_the_record_of_every_stack_not_deleted(tmp_path: Path) -> None:
    records = _records(tmp_path)
    order = list(reversed(_own_stacks()))
    denied = order[3]
    # the protection checks pass; the deletion's own read of the 4th stack is refused
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD, FAKE_DENIED=denied,
                                   FAKE_DENIED_QUERY="Stacks[0].StackStatus ")  # fmt: skip
    assert status == 1, err
    assert _deleted(calls) == order[:3]
    assert f"could not read the stack {denied} (" in err and "3 stack(s) deleted before it" in err
    assert sorted(n for n, path in records.items() if not path.exists()) == sorted(order[:3])


def test_a_deletion_that_fails_stops_the_script_with_a_line_that_names_the_stack(tmp_path: Path) -> None:
    records = _records(tmp_path)
    order = list(reversed(_own_stacks()))
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD,
                                 FAKE_DELETE_FAILED=order[2])  # fmt: skip
    assert status == 1  # as its help says: no AWS CLI status passes through
    assert _deleted(calls) == order[:3]  # asked to delete, then the wait saw DELETE_FAILED
    assert f"destroy.sh: {order[2]} (" in err and "was not deleted: its deletion did not complete" in err
    assert "2 stack(s) deleted before it, nothing after it" in err and "DELETE_FAILED" in err
    assert sorted(n for n, path in records.items() if not path.exists()) == sorted(order[:2])


def test_destroy_counts_only_what_it_deleted(tmp_path: Path) -> None:
    status, out, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD, FAKE_MISSING="all")
    assert status == 0, err
    assert _deleted(calls) == []
    assert out.count("not deployed: nothing to delete") == len(_own_stacks())
    assert f"shop prod: 0 stack(s) deleted, {len(_own_stacks())} not deployed." in out
    script = _script(tmp_path, "destroy.sh")
    status, out, err, calls = _run(tmp_path, script, CONFIRM=PROD, FAKE_MISSING="shop-prod-edge")
    assert status == 0, err
    assert f"shop prod: {len(_own_stacks()) - 1} stack(s) deleted, 1 not deployed." in out
    assert "shop-prod-edge" not in _deleted(calls)


def test_destroy_refuses_a_deletion_protection_it_cannot_read(tmp_path: Path) -> None:
    error = "An error occurred (AccessDenied) when calling the DescribeDBClusters operation: not authorized"
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD, FAKE_RDS_ERROR=error)
    assert status == 1 and _deleted(calls) == []
    assert "could not read the deletion protection of Aurora cluster shop-prod (eu-west-1)" in err and error in err
    missing = "An error occurred (DBClusterNotFoundFault) when calling the DescribeDBClusters operation: none"
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), CONFIRM=PROD, FAKE_RDS_ERROR=missing)
    assert status == 0, err  # no cluster: no protection to stop the deletion


def _records(tmp_path: Path) -> dict[str, Path]:
    """deploy.sh's record of every stack of prod's manifest, in $DEPLOYED_DIR."""
    manifest = json.loads(BUILT.files[PROD]["manifest.json"])
    records = {}
    for stack in manifest["stacks"]:
        home = PROD if not stack["templates"]["json"].startswith("../") else stack["templates"]["json"].split("/")[1]
        records[stack["name"]] = tmp_path / "deployed" / home / stack["region"] / f"{stack['name']}.json"
        records[stack["name"]].parent.mkdir(parents=True, exist_ok=True)
        records[stack["name"]].write_text("{}")
    return records


@pytest.mark.parametrize(("name", "args"), [("status.sh", []), ("destroy.sh", []), ("logs.sh", ["api"])])
def test_a_script_refuses_another_account_before_any_other_call(tmp_path: Path, name: str, args) -> None:
    """With another account's credentials every stack would read "does not exist"."""
    status, out, err, calls = _run(tmp_path, _script(tmp_path, name), *args, CONFIRM=PROD, FAKE_ACCOUNT="999999999999")
    assert status == 1
    assert f"{name}: signed in to account 999999999999, but shop prod lives in account {ACCOUNT}" in err
    assert [c for c in calls if "get-caller-identity" not in c and c != "--version"] == []
    assert "NOT_DEPLOYED" not in out


def test_status_says_a_stack_it_could_not_read_is_unknown_not_absent(tmp_path: Path) -> None:
    status, out, err, _ = _run(tmp_path, _script(tmp_path, "status.sh"), FAKE_DENIED="shop-prod-data")
    assert status == 1
    row = next(line for line in out.splitlines() if line.startswith("shop-prod-data "))
    assert "ERROR: An error occurred (AccessDenied)" in row and "NOT_DEPLOYED" not in row
    assert "1 stack(s) could not be read" in err and "unknown, not absent" in err


def test_status_says_when_it_could_not_read_the_last_failed_event(tmp_path: Path) -> None:
    error = "An error occurred (Throttling) when calling the DescribeStackEvents operation: Rate exceeded"
    status, out, _, _ = _run(tmp_path, _script(tmp_path, "status.sh"), FAKE_FAILED="shop-prod-svc-api",
                               FAKE_EVENTS_ERROR=error)  # fmt: skip
    assert status == 1  # the rolled-back stack, not the script stopped half-way
    assert f"last failed event: could not read it: {error}" in out
    assert any(line.startswith(f"{_all_stacks()[-1]} ") for line in out.splitlines())  # it went on to the last row


def test_logs_calls_an_unknown_option_one_with_its_usage(tmp_path: Path) -> None:
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "logs.sh"), "--bogus")
    assert (status, calls) == (2, [])
    assert "logs.sh: unknown option --bogus" in err and "usage:" in err and "no service" not in err
    status, out, _, calls = _run(tmp_path, _script(tmp_path, "logs.sh"), "api", "--help")
    assert (status, calls) == (0, []) and out.startswith("Usage: ./logs.sh")


# --- the Makefile targets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        ["status"],
        ["logs"],
        ["destroy"],
        ["logs", "ENV=nope"],
        ["status", "ENV=nope"],
        ["logs", "ENV=defaults", "SERVICE=api"],
    ],
)
def test_make_targets_fail_at_once_without_env(target: list[str]) -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *target],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert time.monotonic() - started < 1.0
    assert result.returncode == 2
    assert "usage: make" in result.stderr
    if "ENV=defaults" in target:  # defaults.yaml is there, yet no environment: refused before any build
        assert "ENV=defaults is not an environment (defaults.yaml holds the settings every environment shares)" in (
            result.stderr
        )


def test_make_logs_without_service_runs_the_script_for_its_usage() -> None:
    # logs.sh prints the usage with the environment's services and kinds (above) when given no SERVICE.
    dry = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "-C", str(ROOT), "logs", "ENV=prod"],
        capture_output=True, text=True, check=False, env={**os.environ, "MAKEFLAGS": ""},
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == 'SINCE="" output/prod/logs.sh '


NO_CREDENTIALS = """#!/usr/bin/env bash
echo "$*" >> "$AWS_CALLS"
echo "Unable to locate credentials. You can configure credentials by running \"aws configure\"." >&2
exit 253
"""


@pytest.mark.parametrize("target", ["deploy", "status", "destroy"])
def test_make_targets_check_credentials_before_building_or_gating(tmp_path: Path, target: str) -> None:
    (tmp_path / "aws").write_text(NO_CREDENTIALS)
    (tmp_path / "aws").chmod(0o755)
    calls = tmp_path / "calls.log"
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, "ENV=prod"],
        capture_output=True, text=True, check=False,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("MAKE")},  # also when run by `make test`
            "PATH": f"{tmp_path}:{os.environ['PATH']}",
            "AWS_CALLS": str(calls),
        },
    )  # fmt: skip
    assert time.monotonic() - started < 5  # the gate takes minutes, a build seconds: neither ran
    assert result.returncode == 2  # make's status for a recipe that failed (it adds the "***" line)
    assert result.stderr.splitlines() == [
        f"make {target}: not signed in to AWS (aws sts get-caller-identity found no valid credentials): sign in, "
        "then run again; nothing was built or changed",
        f"make: *** [Makefile:{_recipe_line(target)}: {target}] Error 1",
    ]
    assert calls.read_text().splitlines() == ["sts get-caller-identity --query Account --output text"]
    assert "generate.py" not in result.stdout


def _recipe_line(target: str) -> int:
    """The Makefile line of the target's credentials check (make names it when the recipe fails)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    return next(i for i in range(start, len(lines)) if "CHECK_AWS" in lines[i]) + 1


def test_destroy_without_an_answer_to_read_says_so(tmp_path: Path) -> None:
    """From a review: with no CONFIRM and nothing on standard input (a CI job), read failed under
    set -e and the script ended with status 1 and not a word."""
    status, _, err, calls = _run(tmp_path, _script(tmp_path, "destroy.sh"), stdin="")
    assert status == 1 and "no answer to read (no terminal?); set CONFIRM=prod" in err
    assert _deleted(calls) == []
