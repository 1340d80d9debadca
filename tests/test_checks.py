"""The gate itself: each check must catch what it exists for (a gate that never fails proves nothing)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file

import generate
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


@pytest.mark.xdist_group("checkov")
def test_checkov_reports_an_insecure_bucket(checkov_scan: tuple[Path, dict[str, list[str]]]) -> None:
    problems = checkov_scan[1]["bucket"]
    assert any(p.startswith("test/x.json Bucket CKV_AWS_18") for p in problems)  # access logging
    assert any(p.startswith("test/x.json Bucket CKV_AWS_21") for p in problems)  # versioning


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
    assert checks.run_gate(tmp_path, lines.append) == 2
    assert "run `make templates` first" in lines[0]


def test_gate_fails_when_the_manifest_names_a_missing_file(tmp_path: Path) -> None:
    output = write_output(tmp_path, BUCKET_WITHOUT_ANYTHING)
    (output / "test" / "x.yaml").unlink()
    lines: list[str] = []
    assert checks.run_gate(output, lines.append) == 1
    assert "not there" in lines[0]


@pytest.mark.xdist_group("checkov")
def test_checkov_refuses_skips_that_are_unneeded_or_unexplained(
    checkov_scan: tuple[Path, dict[str, list[str]]],
) -> None:
    problems = checkov_scan[1]["skips"]
    assert "test/x.json Needed skip of CKV_AWS_27 needs a reason a reviewer accepts" in problems
    assert "test/x.json Unneeded skip of CKV_AWS_27 is not needed: it hides nothing" in problems
    assert not any(p.startswith("test/x.yaml") for p in problems)  # the twin of x.json: not scanned again
    assert not any(p.startswith("test/x.json Needed skip of CKV_AWS_27 is not needed") for p in problems)
    assert not any(p.startswith("test/x.json Needed CKV_AWS_27") for p in problems)  # skipped, so no failure


@pytest.mark.xdist_group("checkov")
def test_checkov_fails_a_finding_without_a_skip(checkov_scan: tuple[Path, dict[str, list[str]]]) -> None:
    problems = checkov_scan[1]["queue"]
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


# --- the gate as a whole: every tool's finding comes through, on a small synthetic output --------

QUEUE_WITH_A_TYPO = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": "a queue with a misspelt property and no encryption",
    "Metadata": {"Padding": "x" * 60_000},  # over the 51,200-byte body limit
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Nope": 1}},
        # a misspelt action: the IAM analysis' unknown-action
        "QueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "Queue"}],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "Typo",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": ["sqs:SendMessages"],
                            "Resource": [{"Fn::GetAtt": ["Queue", "Arn"]}],
                        }
                    ],
                },
            },
        },
    },
}


def broken_output(folder: Path) -> Path:
    """One environment whose template breaks cfn-lint (E3002), checkov (CKV_AWS_27, no encryption)
    and the body limit, whose manifest imports an export nobody makes, and whose deploy.sh has
    an unquoted variable (shellcheck SC2086); its security group references CloudFront's
    origin-facing prefix list twice (2 x 55 of 60 inbound rules: quotas)."""
    group = {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": "two prefix-list rules",
            "SecurityGroupIngress": [
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "SourcePrefixListId": "pl-4fa04526"}
                for port in (80, 443)
            ],
        },
    }
    write_output(folder, {**QUEUE_WITH_A_TYPO, "Resources": {**QUEUE_WITH_A_TYPO["Resources"], "Group": group}})
    manifest_path = folder / "test" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["stacks"][0]["imports"] = ["nobody-Export"]
    manifest_path.write_text(json.dumps(manifest))
    (folder / "test" / "deploy.sh").write_text("#!/usr/bin/env bash\necho $1\n")
    for script in checks.SHELL_SCRIPTS[1:]:  # the day-2 scripts: present and clean
        (folder / "test" / script).write_text('#!/usr/bin/env bash\necho "$1"\n')
    return folder


@pytest.mark.xdist_group("checkov")  # runs checkov: on the worker whose fork server the others use
def test_the_gate_sees_a_finding_of_every_tool_and_times_each(tmp_path: Path) -> None:
    lines: list[str] = []
    assert checks.run_gate(broken_output(tmp_path), lines.append) == 1
    text = "\n".join(lines)
    assert "[wiring]" in text and "imports nobody-Export, which no earlier stack exports" in text
    assert "[limits]" in text and "bytes; a template body may have 51,200" in text
    assert "[cfn-lint]" in text and "E3002" in text
    assert "[checkov] test/x.json Queue: CKV_AWS_27" in text.replace(" Queue CKV", " Queue: CKV")
    assert "[shellcheck]" in text and "SC2086" in text
    assert "[quotas]" in text and "110 inbound rules" in text
    assert "[iam]" in text and "unknown-action: t-x QueuePolicy Typo: sqs:SendMessages" in text
    for check in checks.CHECKS:
        assert re.search(rf"^gate: {re.escape(check)} +\d+ problem\(s\) +\d+\.\d s$", text, re.M), check
    assert re.search(r"^gate: FAILED in \d+\.\d s wall, \d+\.\d s CPU$", lines[-1])


@pytest.mark.xdist_group("checkov")  # runs checkov: on the worker whose fork server the others use
def test_the_gate_passes_a_clean_output_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "an encrypted queue",
        "Resources": {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"KmsMasterKeyId": "alias/aws/sqs", "MessageRetentionPeriod": 345600},
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
            }
        },
    }
    output = write_output(tmp_path, body)
    for script in checks.SHELL_SCRIPTS:
        (output / "test" / script).write_text('#!/usr/bin/env bash\necho "$1"\n')
    # The order of submits, in a process that serves checkov (these tests): every worker of the
    # pool is forked at its first submit, before the thread beside gets its first job (starting
    # checkov's fork server there while a worker was forked left the gate waiting forever).
    submits: list[str] = []
    pool = checks._pool

    def recorded_pool(workers: int) -> Any:
        made = pool(workers)
        submit = made.submit

        def recorded(*a: Any, **k: Any) -> Any:
            submits.append("pool")
            return submit(*a, **k)

        made.submit = recorded  # type: ignore[method-assign]
        return made

    class RecordedThreads(checks.ThreadPoolExecutor):
        def submit(self, *a: Any, **k: Any) -> Any:  # type: ignore[override]
            submits.append("thread")
            return super().submit(*a, **k)

    monkeypatch.setattr(checks, "_pool", recorded_pool)
    monkeypatch.setattr(checks, "ThreadPoolExecutor", RecordedThreads)
    lines: list[str] = []
    status = checks.run_gate(output, lines.append)
    assert status == 0, lines
    assert re.search(r"^gate: passed in \d+\.\d s wall, \d+\.\d s CPU$", lines[-1])
    assert submits[0] == "pool" and "thread" in submits, submits


def test_the_gate_refuses_an_environment_without_a_folder(tmp_path: Path) -> None:
    output = write_output(tmp_path, BUCKET_WITHOUT_ANYTHING)
    lines: list[str] = []
    assert checks.run_gate(output, lines.append, environments=["nope"]) == 2
    assert lines == [
        f"gate: --env nope: {output / 'nope' / 'manifest.json'} is not there (run `make templates`); folders: test"
    ]


def two_environments_and_a_project(folder: Path) -> Path:
    """output/{a,b,project}: a and b each list the project's stack first (../project/p.json)."""
    for name in ("a", "b", "project"):
        (folder / name).mkdir(parents=True)
        (folder / name / f"{name}.json").write_text(to_json(BUCKET_WITHOUT_ANYTHING))
        (folder / name / f"{name}.yaml").write_text(to_json(BUCKET_WITHOUT_ANYTHING))
    project_stack = stack("shop-p", exports=["shop-p-X"])
    project_stack.update(
        scope="project", templates={"yaml": "../project/project.yaml", "json": "../project/project.json"}
    )
    for name in ("a", "b"):
        own = stack(f"shop-{name}", imports=["shop-p-X"], depends_on=["shop-p"])
        own["templates"] = {"yaml": f"{name}.yaml", "json": f"{name}.json"}
        (folder / name / "manifest.json").write_text(json.dumps({"environment": name, "stacks": [project_stack, own]}))
    project_own = dict(project_stack, templates={"yaml": "project.yaml", "json": "project.json"})
    (folder / "project" / "manifest.json").write_text(json.dumps({"environment": None, "stacks": [project_own]}))
    return folder


def test_the_gate_of_one_environment_reads_its_folder_and_the_project_folder(tmp_path: Path) -> None:
    output = two_environments_and_a_project(tmp_path)
    manifests = checks.load_manifests(output, ["a"])
    assert [path for path, _ in manifests] == [output / "a" / "manifest.json", output / "project" / "manifest.json"]
    files = sorted(str(f.path.relative_to(output.resolve())) for f in checks.template_files(manifests))
    assert files == ["a/a.json", "a/a.yaml", "project/project.json", "project/project.yaml"]
    assert checks.check_wiring(manifests) == []
    everything = checks.template_files(checks.load_manifests(output))
    assert len(everything) == 6  # b's folder too, and the project's files once


def test_generate_check_takes_env_and_exits_2_for_a_folder_that_is_not_there(tmp_path: Path) -> None:
    output = two_environments_and_a_project(tmp_path)
    assert generate.main(["check", "--env", "c", "--output", str(output)]) == 2
    assert generate.parse_args(["check", "--env", "a", "--env", "b"]).env == ["a", "b"]


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["--output", "/x", "check"], "output", Path("/x")),  # was output/: the gate checked another folder
        (["check", "--output", "/y"], "output", Path("/y")),
        (["check"], "output", generate.ROOT / "output"),
        (["--env", "dev", "check"], "env", ["dev"]),  # was every folder
        (["--env", "dev", "diff"], "env", ["dev"]),
        (["--settings", "s", "diff"], "settings", Path("s")),  # was environments/: the diff read other settings
        (["diff"], "settings", generate.ROOT / "environments"),
        (["--env", "b", "cost"], "env", ["b"]),
        (["--output", "/z", "diagram"], "output", Path("/z")),
        (["--env", "dev", "diff", "--env", "prod"], "env", ["dev", "prod"]),  # was prod only: dev dropped
        (["--env", "a", "cost", "--env", "b"], "env", ["a", "b"]),
        (["build", "--env", "x"], "env", ["x"]),
        (["diff"], "env", None),
    ],
)
def test_an_option_before_the_command_is_not_overwritten_by_the_commands_default(argv, field, expected) -> None:
    assert getattr(generate.parse_args(argv), field) == expected


def test_the_gate_of_a_folder_built_with_env_says_the_project_folder_was_never_built(tmp_path: Path, capsys) -> None:
    output = two_environments_and_a_project(tmp_path)
    shutil.rmtree(output / "project")  # what a build with --env leaves: its folders only
    assert generate.main(["check", "--env", "a", "--output", str(output)]) == 1
    out = capsys.readouterr().out
    assert f"folder(s) never built: {output / 'project'}" in out and "build without --env" in out


# --- cfn-lint as its CLI runs it: rules loaded once, custom rules appended ------------------------

CUSTOM_RULE = '''
from cfnlint.rules import CloudFormationLintRule, RuleMatch


class NoQueues(CloudFormationLintRule):
    """A test rule: every SQS queue is a finding."""

    id = "E9901"
    shortdesc = "No queues"
    description = "Reports every AWS::SQS::Queue (a rule of the gate's own tests)"
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-sqs-queue.html"
    tags = ["test"]

    def match(self, cfn):
        return [RuleMatch(["Resources", name], "a queue") for name in cfn.get_resources(["AWS::SQS::Queue"])]
'''


def test_cfn_lint_appends_a_custom_rules_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "no_queues.py").write_text(CUSTOM_RULE)
    body = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
    files = checks.template_files(checks.load_manifests(write_output(tmp_path / "out", body)))
    assert not any("E9901" in p.message for p in checks.check_cfn_lint(files, append_rules=[]))
    assert any(p.message == "E9901 a queue" for p in checks.check_cfn_lint(files, append_rules=[rules]))
    monkeypatch.setattr(checks, "RULES_DIR", rules)  # the rule pack's place: appended by default
    assert checks.default_rules() == (rules,)
    assert any(p.message == "E9901 a queue" for p in checks.check_cfn_lint(files))


def test_cfn_lint_in_batches_finds_what_it_finds_template_by_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate lints a region's templates in one run with the rules loaded once; the findings are
    those of cfn-lint's lint_file on each template on its own (what the gate did before)."""
    monkeypatch.setenv("GATE_CACHE", "off")  # cfn-lint's own runs, both
    bodies = {
        "queue": QUEUE_WITH_A_TYPO,
        "table": {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"Db": {"Type": "AWS::DynamoDB::Table", "Properties": {"BillingMode": "NOPE"}}},
        },
        "bucket": BUCKET_WITHOUT_ANYTHING,
    }
    paths = []
    for name, body in bodies.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(to_json(body))
    batch = checks.lint_templates("eu-west-1", [str(p) for p in paths], append_rules=())
    alone = [
        checks.Problem("cfn-lint", f"{path}:{m.linenumber}", f"{m.rule.id} {m.message}")
        for path in paths
        for m in lint_file(path, ManualArgs(include_checks=["I"], regions=["eu-west-1"]))
    ]
    assert len(alone) >= 3
    assert sorted(map(str, batch)) == sorted(map(str, alone))


def test_a_missing_rule_pack_fails_the_gate_instead_of_passing_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks, "RULES_DIR", tmp_path / "gone")
    with pytest.raises(RuntimeError, match="rule pack"):
        checks.default_rules()


def several_stacks(folder: Path, bodies: dict[str, dict], environment: str = "test") -> Path:
    """One environment (folder ``environment``) with a stack per ``bodies`` entry (name: template),
    JSON and YAML twins."""
    env = folder / environment
    env.mkdir(parents=True)
    stacks = []
    for name, body in bodies.items():
        (env / f"{name}.json").write_text(to_json(body))
        (env / f"{name}.yaml").write_text(to_json(body))  # JSON is YAML
        stacks.append({**stack(f"t-{name}"), "templates": {"yaml": f"{name}.yaml", "json": f"{name}.json"}})
    (env / "manifest.json").write_text(json.dumps({"environment": "test", "stacks": stacks}))
    return folder


SKIPPED_QUEUE = {
    "Type": "AWS::SQS::Queue",
    "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "a reason long enough for a reviewer"}]}},
}
ENCRYPTED_QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyId": "alias/aws/sqs"}}


# The checkov tests' small outputs, one environment folder each in one output, scanned by ONE checkov
# run (checkov's start-up, about 2.3 s of CPU, was paid by every test): a file's findings and skips
# are its own, whatever else is scanned with it (the split test below holds a scan in parts to the
# whole), so each test reads its own folder's problems, named as a scan of that folder alone names
# them ("test/x.json Queue CKV_AWS_27 ...").
CHECKOV_CASES: dict[str, dict[str, dict]] = {
    "bucket": {"x": BUCKET_WITHOUT_ANYTHING},
    "skips": {
        "x": {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {
                "Needed": {
                    "Type": "AWS::SQS::Queue",
                    "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "x"}]}},
                    "Properties": {},
                },
                "Unneeded": {
                    **ENCRYPTED_QUEUE,
                    "Metadata": {
                        "checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "a long enough reason, but moot"}]}
                    },
                },
            },
        }
    },
    "queue": {"x": {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}},
    "split": {
        "a": {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}},  # a finding, no skip
        "b": {"Resources": {"Queue": SKIPPED_QUEUE, "Other": {"Type": "AWS::SQS::Queue"}}},  # one accepted
        "c": {"Resources": {"Queue": {**ENCRYPTED_QUEUE, "Metadata": SKIPPED_QUEUE["Metadata"]}}},  # moot skip
        "d": {"Resources": {"Queue": ENCRYPTED_QUEUE, "Bucket": BUCKET_WITHOUT_ANYTHING["Resources"]["Bucket"]}},
    },
}


def _as_alone(problem: checks.Problem) -> tuple[str, str]:
    """A problem's folder, and its text as a scan of that folder alone (written as "test/") gives it."""
    folder, _, rest = problem.where.partition("/")
    return folder, f"test/{rest} {problem.message}"


@pytest.fixture(scope="module")
def checkov_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """The output of CHECKOV_CASES, and the problems of one checkov run over it, by folder."""
    output = tmp_path_factory.mktemp("checkov-cases")
    for folder, bodies in CHECKOV_CASES.items():
        several_stacks(output, bodies, folder)
    found: dict[str, list[str]] = {folder: [] for folder in CHECKOV_CASES}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GATE_CACHE", "off")  # checkov's own run (the split test compares runs)
        for problem in checks.check_checkov(output):
            folder, text = _as_alone(problem)
            found[folder].append(text)
    return output, found


@pytest.mark.xdist_group("checkov")
def test_checkov_split_over_processes_finds_what_one_run_finds(
    checkov_scan: tuple[Path, dict[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate may run checkov as several processes over groups of files: every file lands in one
    group, and a skip is judged against the findings of its own file, whichever group it is in."""
    monkeypatch.setenv("GATE_CACHE", "off")  # checkov's own runs, each
    output, found = checkov_scan
    files = checks.template_files(checks.load_manifests(output, ["split"]))
    parts = checks.checkov_parts(files, 2)
    scanned = sorted(str(f.path) for f in files if f.path.suffix == ".json")
    assert len(parts) == 2 and sorted(p for part in parts for p in part) == scanned  # disjoint, complete
    whole = sorted(found["split"])  # the run over every case's folder, this folder's part of it
    split = sorted(_as_alone(p)[1] for part in parts for p in checks.check_checkov(output, ["split"], only=part))
    assert split == whole
    assert "test/a.json Queue CKV_AWS_27 Ensure all data stored in the SQS queue is encrypted" in whole
    assert "test/b.json Other CKV_AWS_27 Ensure all data stored in the SQS queue is encrypted" in whole
    assert not any(p.startswith("test/b.json Queue") for p in whole)  # the skip hides a finding: accepted
    assert "test/c.json Queue skip of CKV_AWS_27 is not needed: it hides nothing" in whole
    assert any(p.startswith("test/d.json Bucket CKV_AWS_18") for p in whole)
    assert sorted(checks.checkov_parts(files, 9)) == [(path,) for path in scanned]  # never an empty group
    with pytest.raises(RuntimeError, match="do not name"):
        checks.check_checkov(output, only=(str(output / "elsewhere.json"),))


@pytest.mark.xdist_group("checkov")  # runs checkov: on the worker whose fork server the others use
def test_checkov_cli_finds_what_checkov_itself_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """checkov_cli's repairs (one JSONPath parser per process, cloudsplaining's action data kept,
    templates parsed in its own process) change nothing: same findings and counts as checkov's own
    script, on Subs with pseudo parameters and references and on IAM statements whose expanded
    action lists overflow policy_sentry's 1,024-entry cache (a Deny of *), one of them repeated, in two files."""
    sub = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/logs/${AWS::AccountId}/*"}
    wide = [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["iam:PassRole", "iam:CreateUser", "kms:Decrypt"], "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"},  # a list seen before
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [sub]},
    ]
    body = {
        "Resources": {
            "Bucket": BUCKET_WITHOUT_ANYTHING["Resources"]["Bucket"],
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-q"}}},
            "Policy": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": [sub, "*"]}],
                    }
                },
            },
        }
    }
    roles = {
        "Resources": {
            name: {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    },
                    "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "2012-10-17", "Statement": wide}}],
                },
            }
            for name in ("RoleB",)
        }
    }
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "x.json").write_text(to_json(body))
    (folder / "y.json").write_text(to_json(roles))
    ours = checks._run_checkov(folder)
    monkeypatch.setattr(checks, "checkov_command", lambda: [str(Path(checks.sys.executable).parent / "checkov")])
    theirs = checks._run_checkov(folder)
    assert ours == theirs
    assert ours[1] == 4 and {check for _, _, check in ours[0]} >= {"CKV_AWS_18", "CKV_AWS_27"}
    role_checks = {check for where, logical, check in ours[0] if where.endswith("y.json") and logical == "RoleB"}
    assert {"CKV_AWS_109", "CKV_AWS_111"} <= role_checks  # cloudsplaining's checks found something to compare


def test_cfn_lint_findings_kept_are_those_found_and_keyed_by_all_they_depend_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template linted once is not linted again: the gate reads what cfn-lint found (path put
    back); another region, rule pack or template bytes is another key, linted afresh."""
    from infra_templates import derived  # noqa: PLC0415

    monkeypatch.setattr(derived, "CACHE_FOLDER", tmp_path / "cache")
    path = tmp_path / "queue.json"
    path.write_text(to_json(QUEUE_WITH_A_TYPO))
    monkeypatch.setenv("GATE_CACHE", "off")
    live = checks.lint_templates("eu-west-1", [str(path)], append_rules=())
    assert live and not (tmp_path / "cache").exists()
    monkeypatch.delenv("GATE_CACHE")
    assert checks.lint_templates("eu-west-1", [str(path)], append_rules=()) == live  # linted, and kept
    assert len(list((tmp_path / "cache" / "gate-findings").glob("cfn-lint-*.json"))) == 1

    import cfnlint.runner  # noqa: PLC0415

    def linted(*_: object) -> list[object]:
        raise AssertionError("linted again")

    monkeypatch.setattr(cfnlint.runner, "run_template_by_file_path", linted)
    assert checks.lint_templates("eu-west-1", [str(path)], append_rules=()) == live  # read back
    elsewhere = tmp_path / "copy" / "queue.json"  # the same bytes at another path: its own path in each finding
    elsewhere.parent.mkdir()
    elsewhere.write_text(path.read_text())
    assert [p.where for p in checks.lint_templates("eu-west-1", [str(elsewhere)], append_rules=())] == [
        p.where.replace(str(path), str(elsewhere)) for p in live
    ]
    for region, rules, body in (
        ("us-east-1", (), QUEUE_WITH_A_TYPO),
        ("eu-west-1", (str(checks.RULES_DIR),), QUEUE_WITH_A_TYPO),
        ("eu-west-1", (), BUCKET_WITHOUT_ANYTHING),
    ):
        path.write_text(to_json(body))
        with pytest.raises(AssertionError, match="linted again"):
            checks.lint_templates(region, [str(path)], append_rules=rules)


@pytest.mark.xdist_group("checkov")  # runs checkov: on the worker whose fork server the others use
def test_checkov_findings_kept_are_those_found_and_keyed_by_the_scanned_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file scanned once is not scanned again: the gate reads what checkov found on the same
    text (its skips judged afresh); another text is scanned; no scanner, no pass."""
    from infra_templates import derived  # noqa: PLC0415

    monkeypatch.setattr(derived, "CACHE_FOLDER", tmp_path / "cache")
    output = write_output(tmp_path / "a", BUCKET_WITHOUT_ANYTHING)
    found = checks.check_checkov(output)
    assert any("CKV_AWS_18" in p.message for p in found)  # access logging: a finding to keep
    assert len(list((tmp_path / "cache" / "gate-findings").glob("checkov-*.json"))) == 1

    def scanned(*_: object) -> object:
        raise AssertionError("scanned again")

    monkeypatch.setattr(checks, "_run_checkov", scanned)
    again = checks.check_checkov(write_output(tmp_path / "b", BUCKET_WITHOUT_ANYTHING))
    assert again == found  # read back
    assert not any("scanned no resources" in p.message for p in again)  # its resource counts as scanned
    other = json.loads(json.dumps(BUCKET_WITHOUT_ANYTHING))
    other["Resources"]["Bucket"]["Properties"] = {"BucketName": "another"}
    with pytest.raises(AssertionError, match="scanned again"):
        checks.check_checkov(write_output(tmp_path / "c", other))

    def missing() -> list[str]:
        raise RuntimeError("checkov is not installed")

    monkeypatch.setattr(checks, "checkov_command", missing)
    with pytest.raises(RuntimeError, match="not installed"):
        checks.check_checkov(output)


def test_wiring_refuses_a_header_rule_no_distribution_sends(tmp_path: Path) -> None:
    """A listener rule that requires X-Origin-Verify from a secret, in a folder whose distribution
    does not send it (an override removed OriginCustomHeaders, say): every request CloudFront
    forwards would get the default 404, and the gate says so; with the header sent, nothing."""
    rule = {
        "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
        "Properties": {
            "Conditions": [
                {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}},
                {
                    "Field": "http-header",
                    "HttpHeaderConfig": {
                        "HttpHeaderName": "X-Origin-Verify",
                        "Values": [
                            "{{resolve:secretsmanager:shop-x-origin-verify-value:SecretString:header:AWSCURRENT}}",
                            "{{resolve:secretsmanager:shop-x-origin-verify-value:SecretString:header:AWSPREVIOUS}}",
                        ],
                    },
                },
            ]
        },
    }
    header = {
        "HeaderName": "x-origin-verify",  # header names compare ignoring case, as HTTP's do
        "HeaderValue": "{{resolve:secretsmanager:shop-x-origin-verify-value:SecretString:header:AWSCURRENT}}",
    }

    def gate(headers: list[dict]) -> list[str]:
        origin = {"Id": "load-balancer", "DomainName": "origin.example.com", "OriginCustomHeaders": headers}
        distribution = {
            "Type": "AWS::CloudFront::Distribution",
            "Properties": {"DistributionConfig": {"Origins": [origin]}},
        }
        (tmp_path / "shop-x-edge.json").write_text(json.dumps({"Resources": {"Distribution": distribution}}))
        (tmp_path / "shop-x-svc-api.json").write_text(json.dumps({"Resources": {"ListenerRule": rule}}))
        manifest = {"environment": "x", "stacks": [stack("shop-x-edge"), stack("shop-x-svc-api")]}
        return [p.message for p in checks.check_wiring([(tmp_path / "manifest.json", manifest)])]

    assert gate([header]) == []
    (problem,) = gate([])
    assert problem.startswith("shop-x-svc-api ListenerRule forwards only requests with X-Origin-Verify")
    assert "shop-x-origin-verify-value" in problem
    other_secret = dict(header, HeaderValue=header["HeaderValue"].replace("shop-x-", "shop-y-"))
    assert len(gate([other_secret])) == 1  # the header from another secret is not the one checked


def test_the_findings_cache_drops_what_nobody_used_for_30_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each gate prunes the kept findings: an entry neither written nor read for CACHE_KEPT_DAYS goes,
    one read since stays (a hit refreshes it), and a cache that is off prunes nothing."""
    from infra_templates import derived  # noqa: PLC0415

    monkeypatch.setattr(derived, "CACHE_FOLDER", tmp_path / "cache")
    folder = tmp_path / "cache" / "gate-findings"
    old, used, fresh = (folder / f"cfn-lint-{name}.json" for name in ("old", "used", "fresh"))
    for entry in (old, used, fresh):
        checks._write_cached(entry, [[1, "finding"]])
    month_ago = time.time() - (checks.CACHE_KEPT_DAYS + 1) * 86400
    for entry in (old, used):
        os.utime(entry, (month_ago, month_ago))
    assert checks._read_cached(used) == [[1, "finding"]]  # a hit: used today
    monkeypatch.setenv("GATE_CACHE", "off")
    assert checks.prune_cache() == 0 and old.exists()
    monkeypatch.delenv("GATE_CACHE")
    assert checks.prune_cache() == 1
    assert not old.exists() and used.exists() and fresh.exists()
    assert checks.prune_cache(now=time.time() + (checks.CACHE_KEPT_DAYS + 1) * 86400) == 2


def test_shellcheck_findings_kept_are_those_found_and_keyed_by_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script checked once is not checked again: its findings are read back under its own path;
    another script text is checked afresh; a shellcheck that is not there fails even so."""
    from infra_templates import derived  # noqa: PLC0415

    monkeypatch.setattr(derived, "CACHE_FOLDER", tmp_path / "cache")
    output = broken_output(tmp_path / "a")
    manifests = checks.load_manifests(output)
    monkeypatch.setenv("GATE_CACHE", "off")
    live = checks.check_shellcheck(manifests)
    assert [p.check for p in live] == ["shellcheck"] and "SC2086" in live[0].message
    monkeypatch.delenv("GATE_CACHE")
    assert checks.check_shellcheck(manifests) == live  # checked, and kept
    texts = {(output / "test" / script).read_bytes() for script in checks.SHELL_SCRIPTS}
    assert len(list((tmp_path / "cache" / "gate-findings").glob("shellcheck-*.json"))) == len(texts) == 2

    real_run = checks.subprocess.run

    def no_run(*_: object, **__: object) -> object:
        raise AssertionError("shellcheck ran again")

    monkeypatch.setattr(checks.subprocess, "run", no_run)
    again = broken_output(tmp_path / "b")  # the same scripts elsewhere: read back, each under its own path
    assert [str(p) for p in checks.check_shellcheck(checks.load_manifests(again))] == [
        str(p).replace(str(output), str(again)) for p in live
    ]
    monkeypatch.setattr(checks.subprocess, "run", real_run)
    (again / "test" / "deploy.sh").write_text('#!/usr/bin/env bash\necho "$1"\n')  # fixed: another text
    assert checks.check_shellcheck(checks.load_manifests(again)) == []
    monkeypatch.setattr(checks, "shellcheck_command", lambda: (_ for _ in ()).throw(RuntimeError("not installed")))
    with pytest.raises(RuntimeError, match="not installed"):
        checks.check_shellcheck(checks.load_manifests(again))


@pytest.mark.xdist_group("checkov")  # runs checkov: on the worker whose fork server the others use
def test_checkov_runs_of_a_session_are_forks_of_one_server(tmp_path: Path) -> None:
    """The tests' checkov runs are forks of a server that imported checkov once (conftest turns it
    on; that a served run reports what checkov's own script reports is the checkov_cli test's):
    run after run the same server answers, the same report; a process forked from the one that
    turned the servers on (a gate worker) starts checkov anew instead of sharing its pipes."""
    folder = tmp_path / "scan"
    folder.mkdir()
    (folder / "x.json").write_text(to_json(BUCKET_WITHOUT_ANYTHING))
    first = checks._run_checkov(folder)
    servers = {key: server for key, server in checks._checkov_servers.items() if key[0] == os.getpid()}
    assert servers and all(server.poll() is None for server in servers.values())
    assert checks._run_checkov(folder) == first
    assert {key: server for key, server in checks._checkov_servers.items() if key[0] == os.getpid()} == servers
    assert first[1] == 1 and any(check == "CKV_AWS_18" for _, _, check in first[0])
    with pytest.MonkeyPatch.context() as patch:  # as seen from a process forked from this one
        patch.setattr(checks.os, "getpid", lambda: -1)
        assert checks._checkov_server(checks.checkov_command(), dict(os.environ)) is None
