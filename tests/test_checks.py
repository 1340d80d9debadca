"""The gate itself: each check must catch what it exists for (a gate that never fails proves nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra_templates import checks
from infra_templates.render import to_json

BUCKET_WITHOUT_ANYTHING = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": "an insecure bucket",
    "Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}}},
}


def stack(name: str, region: str = "eu-west-1", exports=(), imports=(), depends_on=()) -> dict:
    return {
        "order": 0,
        "name": name,
        "layer": name.rsplit("-", 1)[-1],
        "region": region,
        "templates": {"yaml": f"{name}.yaml", "json": f"{name}.json"},
        "depends_on": list(depends_on),
        "exports": list(exports),
        "imports": list(imports),
    }


def wiring(*stacks: dict) -> list[str]:
    manifest = {"environment": "test", "stacks": list(stacks)}
    return [p.message for p in checks.check_wiring([(Path("m.json"), manifest)])]


def test_wiring_accepts_imports_of_earlier_exports() -> None:
    assert wiring(stack("a", exports=["a-X"]), stack("b", imports=["a-X"], depends_on=["a"])) == []


def test_wiring_refuses_an_import_nobody_exports() -> None:
    assert wiring(stack("b", imports=["a-X"])) == ["b imports a-X, which no earlier stack exports"]


def test_wiring_refuses_an_import_from_a_later_stack() -> None:
    problems = wiring(stack("b", imports=["a-X"], depends_on=["a"]), stack("a", exports=["a-X"]))
    assert "b imports a-X, which no earlier stack exports" in problems
    assert "b depends on a, which is not deployed before it" in problems


def test_wiring_refuses_an_import_across_regions() -> None:
    problems = wiring(stack("a", region="us-east-1", exports=["a-X"]), stack("b", imports=["a-X"], depends_on=["a"]))
    assert problems == ["b (eu-west-1) imports a-X from a (us-east-1): exports are regional"]


def test_wiring_refuses_a_duplicate_export() -> None:
    assert wiring(stack("a", exports=["X"]), stack("b", exports=["X"])) == ["export X of b is already exported by a"]


def test_wiring_refuses_an_undeclared_dependency() -> None:
    assert wiring(stack("a", exports=["a-X"]), stack("b", imports=["a-X"])) == [
        "b imports from a but does not list it in depends_on"
    ]


def write_output(folder: Path, body: dict, region: str = "eu-west-1") -> Path:
    env = folder / "test"
    env.mkdir(parents=True)
    (env / "x.json").write_text(to_json(body))
    (env / "x.yaml").write_text(to_json(body))  # JSON is YAML
    (env / "manifest.json").write_text(
        json.dumps(
            {
                "environment": "test",
                "stacks": [
                    {
                        "name": "t-x",
                        "region": region,
                        "templates": {"yaml": "x.yaml", "json": "x.json"},
                        "depends_on": [],
                        "exports": [],
                        "imports": [],
                    }
                ],
            }
        )
    )
    return folder


def test_limits_refuse_a_body_over_51200_bytes(tmp_path: Path) -> None:
    body = dict(BUCKET_WITHOUT_ANYTHING, Description="x" * 60_000)
    output = write_output(tmp_path, body)
    problems = checks.check_limits(checks.template_files(checks.load_manifests(output)))
    assert any("bytes; a template body may have 51,200" in p.message for p in problems)


def test_limits_refuse_too_many_resources(tmp_path: Path) -> None:
    body = dict(BUCKET_WITHOUT_ANYTHING)
    body["Resources"] = {f"Topic{i}": {"Type": "AWS::SNS::Topic"} for i in range(501)}
    output = write_output(tmp_path, body)
    problems = checks.check_limits(checks.template_files(checks.load_manifests(output)))
    assert any(p.message == "501 Resources; CloudFormation allows 500" for p in problems)


def test_cfn_lint_reports_a_broken_template(tmp_path: Path) -> None:
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"Nope": 1}}},
    }
    output = write_output(tmp_path, body)
    problems = checks.check_cfn_lint(checks.template_files(checks.load_manifests(output)))
    assert any("E3002" in p.message for p in problems)


def test_cfn_lint_includes_informational_rules(tmp_path: Path) -> None:
    # I3011: a stateful resource without UpdateReplacePolicy/DeletionPolicy is informational only.
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Db": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST",
                },
            }
        },
    }
    output = write_output(tmp_path, body)
    problems = checks.check_cfn_lint(checks.template_files(checks.load_manifests(output)))
    assert any(p.message.startswith("I") for p in problems), problems


def test_checkov_reports_an_insecure_bucket(tmp_path: Path) -> None:
    output = write_output(tmp_path, BUCKET_WITHOUT_ANYTHING)
    problems = checks.check_checkov(output)
    assert any("CKV_AWS_18" in p.message for p in problems)  # access logging
    assert any("CKV_AWS_21" in p.message for p in problems)  # versioning


def test_gate_fails_when_a_check_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = write_output(tmp_path, BUCKET_WITHOUT_ANYTHING)

    def missing() -> list[str]:
        raise RuntimeError("checkov is not installed")

    monkeypatch.setattr(checks, "checkov_command", missing)
    lines: list[str] = []
    assert checks.run_gate(output, lines.append) == 1
    assert "  [checkov] gate: could not run: checkov is not installed" in lines


def test_gate_fails_on_an_empty_folder(tmp_path: Path) -> None:
    lines: list[str] = []
    assert checks.run_gate(tmp_path, lines.append) == 1
    assert "run `make templates` first" in lines[0]


def test_gate_fails_when_the_manifest_names_a_missing_file(tmp_path: Path) -> None:
    output = write_output(tmp_path, BUCKET_WITHOUT_ANYTHING)
    (output / "test" / "x.yaml").unlink()
    lines: list[str] = []
    assert checks.run_gate(output, lines.append) == 1
    assert "not there" in lines[0]


def test_checkov_refuses_skips_that_are_unneeded_or_unexplained(tmp_path: Path) -> None:
    queue = {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyId": "alias/aws/sqs"}}
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Needed": {
                "Type": "AWS::SQS::Queue",
                "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "x"}]}},
                "Properties": {},
            },
            "Unneeded": {
                **queue,
                "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "a long enough reason, but moot"}]}},
            },
        },
    }
    output = write_output(tmp_path, body)
    problems = [f"{p.where} {p.message}" for p in checks.check_checkov(output)]
    assert "test/x.json Needed skip of CKV_AWS_27 needs a reason a reviewer accepts" in problems
    assert "test/x.json Unneeded skip of CKV_AWS_27 is not needed: it hides nothing" in problems
    assert "test/x.yaml Unneeded skip of CKV_AWS_27 is not needed: it hides nothing" in problems
    assert not any(p.startswith("test/x.json Needed skip of CKV_AWS_27 is not needed") for p in problems)
    assert not any(p.startswith("test/x.json Needed CKV_AWS_27") for p in problems)  # skipped, so no failure


def test_checkov_fails_a_finding_without_a_skip(tmp_path: Path) -> None:
    body = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
    problems = [f"{p.where} {p.message}" for p in checks.check_checkov(write_output(tmp_path, body))]
    assert any(p.startswith("test/x.json Queue CKV_AWS_27") for p in problems)


def test_cfn_lint_refuses_a_yaml_template_that_differs_from_its_json_twin(tmp_path: Path) -> None:
    """cfn-lint lints the JSON; the YAML passes only if it decodes to the same template."""
    output = write_output(tmp_path, BUCKET_WITHOUT_ANYTHING)
    files = checks.template_files(checks.load_manifests(output))
    assert checks.check_cfn_lint(files) == []
    (output / "test" / "x.yaml").write_text(to_json(dict(BUCKET_WITHOUT_ANYTHING, Description="other")))
    problems = checks.check_cfn_lint(files)
    assert [p.message for p in problems] == ["does not hold the same template as x.json: []"]
    (output / "test" / "x.yaml").write_text("Resources: [unclosed\n")
    assert any("does not hold the same template" in p.message for p in checks.check_cfn_lint(files))
