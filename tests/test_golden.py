"""Golden files: every environment x layer, compared as data. Re-record with `make golden` and
review the diff like code: a changed logical ID of a stateful resource replaces that resource."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ENVIRONMENTS, LAYER_NAMES, ROOT

from infra_templates.handover import FILES as HANDOVER_FILES
from infra_templates.pipeline import environment_files, manifest

GOLDEN = ROOT / "tests" / "golden"
HINT = "output changed: if that is intended, run `make golden` and review the diff"

# Logical IDs of stateful resources are an API: renaming one makes CloudFormation replace it.
PINNED_STATEFUL_IDS = {
    "keys": {"LogsKey"},
    "network": {"FlowLogGroup"},
}


def golden(env: str, name: str) -> dict:
    path = GOLDEN / env / name
    assert path.is_file(), f"{path} is missing: run `make golden`"
    return json.loads(path.read_text())


@pytest.mark.parametrize(("env", "layer"), [(e, la) for e in ENVIRONMENTS for la in LAYER_NAMES])
def test_template_matches_golden(stacks, env, layer) -> None:
    assert stacks[env][layer].body == golden(env, f"{layer}.json"), HINT


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_manifest_matches_golden(stacks, environments, env) -> None:
    assert manifest(environments[env], list(stacks[env].values())) == golden(env, "manifest.json"), HINT


@pytest.mark.parametrize(("env", "name"), [(e, n) for e in ENVIRONMENTS for n in HANDOVER_FILES])
def test_deploy_guide_and_script_match_golden(stacks, environments, env, name) -> None:
    path = GOLDEN / env / name
    assert path.is_file(), f"{path} is missing: run `make golden`"
    assert environment_files(environments[env], list(stacks[env].values()))[name] == path.read_text(), HINT


def test_golden_has_no_environment_that_is_gone() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == ENVIRONMENTS


@pytest.mark.parametrize("layer", sorted(PINNED_STATEFUL_IDS))
def test_stateful_logical_ids_are_pinned(stacks, layer) -> None:
    for env in ENVIRONMENTS:
        stateful = {
            name
            for name, r in stacks[env][layer].body["Resources"].items()
            if "DeletionPolicy" in r and r["Type"] != "AWS::IAM::Role"
        }
        assert stateful == PINNED_STATEFUL_IDS[layer], f"{env}/{layer}: a stateful logical ID changed"


def test_golden_files_are_what_make_golden_writes(tmp_path: Path) -> None:
    # The golden folder is a full output folder: YAML too, so reviewers read diffs in YAML.
    for env in ENVIRONMENTS:
        names = sorted(p.name for p in (GOLDEN / env).iterdir())
        expected = [f"{la}.{ext}" for la in LAYER_NAMES for ext in ("json", "yaml")] + ["manifest.json"]
        assert names == sorted(expected + list(HANDOVER_FILES))
