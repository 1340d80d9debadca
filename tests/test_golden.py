"""Golden files: every environment x layer, compared as data. Re-record with `make golden` and
review the diff like code: a changed logical ID of a stateful resource replaces that resource."""

from __future__ import annotations

import json

import pytest
from conftest import ALL_CASES, BUILT, ENVIRONMENTS, KINDS, ROOT, stack_of

from infra_templates.handover import FILES as HANDOVER_FILES
from templates.release_files import delivery_files

GOLDEN = ROOT / "tests" / "golden"
HINT = "output changed: if that is intended, run `make golden` and review the diff"

# Logical IDs of stateful resources are an API: renaming one makes CloudFormation replace it.
PINNED_STATEFUL_IDS = {
    "deployer": set(),
    "keys": {"LogsKey", "DataKey", "BackupVault"},
    "network": {"FlowLogGroup", "DefaultSecurityGroupCloserLogGroup"},
    "security": {"PrefixListLookupLogGroup"},  # the prefix-list lookup's logs (every environment is behind CloudFront)
    "data": {"Cluster", "PostgresqlLogGroup"},
    "platform": {"AccessLogBucket", "WafLogGroup"},
    "edge-waf": {"LogsKey", "WafLogGroup"},
    "dns": set(),
    # the header's secret and its rotation function's logs (primaries behind CloudFront)
    "origin-verify": {"OriginVerifySecret", "OriginVerifyRotationLogGroup"},
    "assets-replica": {"ReplicaBucket"},
    "edge": {"AssetsBucket"},  # not in dr's: dr serves the replica of prod's assets
    "monitoring": {"AlarmTopicKey"},  # + MailerLogGroup, MailerDeadLetterQueue where the SES path is on
    "dashboard": set(),
    "edge-alarms": {"AlarmTopicKey"},
    "connect": set(),  # security group rules only
    # a worker keeps its queue and dead-letter queue, a job its dead-letter queue (logical IDs are an API)
    **{
        f"svc-{service}": {
            "LogGroup",
            *{"worker": ("Queue", "DeadLetterQueue"), "job": ("DeadLetterQueue",)}.get(kind, ()),
        }
        for service, kind in KINDS.items()
    },
}
PINNED_PROJECT_IDS = {
    "registry": {"RegistryKey"},
    **{f"registry-{s}": {"Repository"} for s in BUILT.project.services},
    **{f"registry-replica-{r}": {"ReplicaKey"} for r in ("eu-central-1",)},  # the replicas' key
    "registry-replication": set(),
    "delivery": {"ArtifactKey", "ArtifactBucket", "ArtifactAccessLogBucket"},
    **{
        f"delivery-artifacts-{r}": {"ArtifactKey", "ArtifactBucket", "ArtifactAccessLogBucket"}
        for r in ("eu-central-1", "us-east-1")
    },
    **{f"delivery-{s}": {"SourceRepository", "BuildLogGroup"} for s in BUILT.project.services},
    "delivery-infrastructure": {"SourceRepository", "BuildLogGroup"},
}


def golden(env: str, name: str) -> dict:
    path = GOLDEN / env / name
    assert path.is_file(), f"{path} is missing: run `make golden`"
    return json.loads(path.read_text())


@pytest.mark.parametrize(("env", "layer"), ALL_CASES)
def test_template_matches_golden(env, layer) -> None:
    assert stack_of(env, layer).body == golden(env, f"{layer}.json"), HINT


FILE_CASES = [
    (folder, name)
    for folder, files in BUILT.files.items()
    for name in sorted(files)
    if not name.endswith(".json") or name == "manifest.json"
]


@pytest.mark.parametrize(("folder", "name"), FILE_CASES)
def test_every_other_file_matches_golden(folder, name) -> None:
    """Manifests compared as data; DEPLOY.md, deploy.sh, RUNBOOK.md and the YAML to the letter."""
    path = GOLDEN / folder / name
    assert path.is_file(), f"{path} is missing: {HINT}"
    built = BUILT.files[folder][name]
    if name.endswith(".json"):
        assert json.loads(built) == json.loads(path.read_text()), HINT
    else:
        assert built == path.read_text(), HINT


def test_golden_has_no_environment_that_is_gone() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == sorted([*ENVIRONMENTS, "project", "delivery"])


def test_release_files_match_golden() -> None:
    files = delivery_files(BUILT.project, {env: list(stacks.values()) for env, stacks in BUILT.stacks.items()})
    written = sorted(str(p.relative_to(GOLDEN / "delivery")) for p in (GOLDEN / "delivery").rglob("*") if p.is_file())
    assert written == sorted(files), HINT
    for name, text in files.items():
        assert (GOLDEN / "delivery" / name).read_text() == text, f"{name}: {HINT}"


def stateful_ids(body: dict) -> set[str]:
    # An Aurora instance holds no data (the cluster volume does): replacing one loses nothing.
    return {
        name for name, r in body["Resources"].items() if "DeletionPolicy" in r and r["Type"] != "AWS::RDS::DBInstance"
    }


@pytest.mark.parametrize(("env", "layer"), ALL_CASES)
def test_stateful_logical_ids_are_pinned(env, layer) -> None:
    pinned = PINNED_PROJECT_IDS if env == "project" else PINNED_STATEFUL_IDS
    expected = set(pinned[layer])
    if (env, layer) == ("prod", "data"):
        expected.add("DatabaseSecret")  # the generated secret of a global database's primary
        expected.add("MasterRotationFunctionLogGroup")  # the rotation function of that secret
    if layer == "data" and env != "dr":
        expected.add("DatabaseUsersFunctionLogGroup")  # the function that creates the services' users
    if (env, layer) == ("dr", "edge"):
        expected.discard("AssetsBucket")
    if layer == "monitoring" and BUILT.environments[env].monitoring.ses_email.enabled:
        expected |= {"MailerLogGroup", "MailerDeadLetterQueue"}
    assert stateful_ids(stack_of(env, layer).body) == expected, f"{env}/{layer}: a stateful logical ID changed"


@pytest.mark.parametrize("env", [*ENVIRONMENTS, "project"])
def test_golden_files_are_what_make_golden_writes(env) -> None:
    # The golden folder is a full output folder: YAML too, so reviewers read diffs in YAML.
    layers = BUILT.project_stacks if env == "project" else BUILT.stacks[env]
    names = sorted(p.name for p in (GOLDEN / env).iterdir())
    expected = [f"{la}.{ext}" for la in layers for ext in ("json", "yaml")] + ["manifest.json", *HANDOVER_FILES]
    if env != "project" and BUILT.environments[env].dr:
        expected.append("RUNBOOK.md")
    expected.append("architecture.dot")  # the diagram's source (tests/test_diagram.py); SVG and PNG are not kept
    assert names == sorted(expected)
