"""What a build reads from a template's JSON text instead of walking its data (render.once, made)
equals the walk: the imports of every stack, and the certificate search's shortcut; and the
handlers' actions read from the derived table equal the schemas'."""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import Any

import pytest
from conftest import all_stacks

from infra_templates import catalog, handover
from infra_templates.pipeline import _imports, find_imports
from infra_templates.render import keep_derived, made, once, to_json


@pytest.mark.parametrize(("env", "layer"), [(env, layer) for env, layer, _ in all_stacks()])
def test_imports_read_from_the_json_text_equal_the_walk(env: str, layer: str) -> None:
    body = next(s for e, name, s in all_stacks() if (e, name) == (env, layer)).body
    with keep_derived():
        assert made(body, "json") is None
        assert once(body, "json", to_json) == to_json(body)
        assert made(body, "json") is not None
        assert _imports(body) == sorted(set(find_imports(body)))


def _body(*values: Any) -> dict[str, Any]:
    return {"Resources": {f"R{i}": {"Type": "AWS::SNS::Topic", "Properties": v} for i, v in enumerate(values)}}


@pytest.mark.parametrize(
    "body",
    [
        # a key that ends with a quote and the intrinsic's name: not an import
        _body({'x "Fn::ImportValue': "not-an-import"}),
        _body({"A": {"Fn::ImportValue": "shop-dev-network-VpcId"}, "B": [{"Fn::ImportValue": 'a "quoted\\ name'}]}),
        _body({"A": {"Fn::ImportValue": {"Fn::Sub": "${AWS::StackName}-X"}}}),  # not a literal: left out
        _body({"A": 'line\nbreak "Fn::ImportValue": "x"', "B": {"Fn::ImportValue": "é-unicode"}}),
        _body({"Fn::ImportValue": "last", "Z": 1}, {"Fn::ImportValue": "first"}),
    ],
)
def test_imports_from_text_equal_the_walk_on_awkward_keys_and_strings(body: dict[str, Any]) -> None:
    with keep_derived():
        once(body, "json", to_json)
        from_text = _imports(body)
    assert from_text == sorted(set(find_imports(body)))
    assert _imports(body) == from_text  # outside the block: the walk


def test_nothing_is_kept_outside_the_block() -> None:
    body = _body({"A": "x"})
    with keep_derived():
        once(body, "json", to_json)
    assert made(body, "json") is None
    calls: list[int] = []
    once(body, "n", lambda b: calls.append(1))
    once(body, "n", lambda b: calls.append(1))
    assert len(calls) == 2


@pytest.mark.parametrize(
    "value",
    [
        "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666",
        {
            "Fn::Sub": "arn:${AWS::Partition}:acm:us-east-1:${AWS::AccountId}:"
            "certificate/0a1b2c3d-1111-2222-3333-444455556666"
        },
    ],
)
def test_the_certificate_search_finds_the_same_with_the_json_text_made(value: Any) -> None:
    body = _body({"Certificate": value}, {"Other": "certificates are not here"})
    walked = handover._certificates(body, "us-east-1", "123456789012")
    assert walked  # the walk finds it: the shortcut must too
    with keep_derived():
        once(body, "json", to_json)
        assert handover._certificates(body, "us-east-1", "123456789012") == walked
    empty = _body({"Other": "no ARN of that kind"})
    with keep_derived():
        once(empty, "json", to_json)
        assert "certificate/" not in json.dumps(empty)
        assert handover._certificates(empty, "us-east-1", "123456789012") == ()


def test_handler_permissions_from_the_derived_table_equal_the_schemas() -> None:
    """catalog.handler_permissions reads catalog.HANDLERS: the same actions as the type's own
    provider schema gives, for every resource type of every fixture stack in its region."""
    kinds = {(s.region, r["Type"]) for _, _, s in all_stacks() for r in s.body.get("Resources", {}).values()}
    assert len(kinds) > 40
    for region, kind in sorted(kinds):
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            continue
        expected = tuple(catalog._handlers_of(catalog.resource_schema(region, kind)))
        assert catalog.handler_permissions(region, kind) == expected, (region, kind)
    with pytest.raises(KeyError):
        catalog.handler_permissions("us-east-1", "AWS::No::SuchType")


def test_plans_read_once_per_template_equal_plans_read_each_time() -> None:
    """handover.plan reads what a template alone decides once per template inside keep_derived (the
    same bodies listed by several folders' manifests, under other accounts): the plans equal those
    read afresh for each manifest."""
    golden = Path(__file__).parent / "golden"
    folders = sorted(p.name for p in golden.iterdir() if (p / "manifest.json").is_file())
    bodies: dict[str, dict[str, Any]] = {}  # one body per template file, shared as a build shares them
    manifests = {}
    for folder in folders:
        manifests[folder] = json.loads((golden / folder / "manifest.json").read_text())
        for stack in manifests[folder]["stacks"]:
            path = os.path.normpath(golden / folder / stack["templates"]["json"])
            bodies.setdefault(stack["name"], json.loads(Path(path).read_text()))
    assert len(folders) >= 4 and len(bodies) > 40
    afresh = {folder: handover.plan(manifests[folder], bodies, folder) for folder in folders}
    with keep_derived():
        for _ in range(2):  # the second round reads only what was kept
            assert {folder: handover.plan(manifests[folder], bodies, folder) for folder in folders} == afresh


@pytest.mark.parametrize("start", ["dev", "project", "a/b", ".", "dev/.", "a/../b", "..", "../x", "/abs"])
@pytest.mark.parametrize("path", ["dev/x.yaml", "project/x.yaml", "dev", "a/b/c", ".", "a/..", "../x", "/abs/y", "x"])
def test_relative_paths_are_relpaths(path: str, start: str) -> None:
    assert handover._relative(path, start) == posixpath.relpath(path, start)
