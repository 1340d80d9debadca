#!/usr/bin/env python3
"""Benchmark of infra-templates on this machine (`make bench`): prints Markdown tables for the README.

Every figure is also given as a ratio to a floor measured in the same run, a bare
`python -c "import troposphere, awacs"` in a subprocess (CPU against CPU): the machine is shared
and its speed varies, the ratios much less. The CDK peer's figure is quoted, not measured here.

1. generation: a whole `python generate.py` process (every shipped environment), the import of
   `generate` alone and, within it, of the libraries alone (the third-party modules a build imports,
   none of ours: what no change to this project's code can take off), and every environment in
   process as `generate.py` builds it (settings, layers, rendering, DEPLOY.md/deploy.sh, writing):
   CPU medians of --repeat runs, in total and per layer (each layer's build function, its own time
   only), plus the diagram of every folder;
2. the gate on that output as users run it (`python generate.py check`, and with `--env` for one
   environment): wall and CPU time of the process and its workers, and each check's share as the
   gate itself prints it; with its findings cache off (a fresh clone's first gate) and filled;
3. `make test` on a fresh clone of HEAD after `make venv` (the set-up, timed apart): wall and CPU;
4. scale: a copy of environments/ whose prod runs --services services (distinct routes); its
   generation time, stack count, the largest template and the security stack's size and resource
   count, each template against CloudFormation's limits (the gate's own limits check), and the
   smallest number of services at which a template breaks a limit (found by bisection).

Exit status 1 when a check reports problems or a scaled template breaks a limit: the figures of a
broken build mean nothing. --quick (1 run, 5 services, no gate, no `make test`) is what the test suite runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import troposphere
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import generate  # noqa: E402
from infra_templates import checks, pipeline, quotas  # noqa: E402
from infra_templates.config import load_environment, project_of  # noqa: E402
from templates import LAYERS, PROJECT_LAYERS  # noqa: E402

SCALED_ENV = "prod"
SETTINGS = ROOT / "environments"  # the environment files measured; the test suite passes its fixtures (--settings)
FLOOR_CODE = "import troposphere, awacs"
# The CDK peer (the same platform written with the AWS CDK) is not in this repository: its figure
# is quoted as measured on this machine, with the date.
CDK_PEER_SECONDS = 10.3
CDK_PEER = "10.3 s for one environment's `cdk synth`, measured 2026-11-30"
# Issue 17's targets, each row that has one says whether it is met
GENERATION_TARGET_SECONDS = 0.35  # every environment, one process, CPU
GATE_TARGET_SECONDS = 25.0  # the gate on the shipped environments, wall, on 2 cores
MAKE_TEST_TARGET_SECONDS = 90.0  # `make test` on a fresh clone after its set-up, wall


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/bench.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="runs per generation figure; the median is shown")
    parser.add_argument("--gate-repeat", type=int, default=1, help="runs per gate figure (the gate takes seconds)")
    parser.add_argument("--services", type=int, default=100, help="services in the scaled environment")
    parser.add_argument("--no-gate", action="store_true", help="do not time the gate")
    parser.add_argument(
        "--settings", type=Path, default=SETTINGS, metavar="DIR", help="environment files (default: environments/)"
    )
    parser.add_argument(
        "--no-make-test",
        action="store_true",
        help="do not time `make test` on a fresh clone (minutes, with its set-up)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 run, 5 services, no gate, no make test: does the bench still run?"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.gate_repeat, args.services, args.no_gate, args.no_make_test = 1, 1, 5, True, True
    return args


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", load average %.1f at start (other jobs share the machine: medians, not minima)" % os.getloadavg()[0]
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs (nproc), {cpu}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}{load}"
    )


@dataclass(frozen=True)
class Sample:
    cpu: float  # seconds of CPU (user + system), the process's and its children's
    wall: float  # seconds


def median(samples: list[Sample]) -> Sample:
    return Sample(statistics.median(s.cpu for s in samples), statistics.median(s.wall for s in samples))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def seconds_text(seconds: float) -> str:
    return f"{seconds:,.1f} s"


def ratio(cpu: float, floor: float) -> str:
    return f"{cpu / floor:,.1f}x" if floor > 0 else "-"


def process_environment() -> dict[str, str]:
    """The environment the measured processes run in: Python's bytecode cache on, as `make` runs
    them (the Makefile unexports PYTHONDONTWRITEBYTECODE) and as on a user's machine after the
    first run, even where the caller turned it off: the project's modules cached beside them
    (``__pycache__/``, git-ignored), the pinned tools' as pip compiled them into ``.venv``.
    Not PYTHONPYCACHEPREFIX: with a prefix Python reads no
    ``__pycache__`` at all, so a process measured once (the gate) compiled every module of
    cfn-lint and checkov from source first, which no user's gate does: 3 s more wall time and
    5 s more CPU of a cold gate (26.6 s against 23.5 s, measured 2026-11-30)."""
    return {
        key: value for key, value in os.environ.items() if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }


PROCESS_ENV: dict[str, str] | None = None  # set by main() to process_environment()


def run_process(command: list[str]) -> tuple[Sample, str]:
    """Run ``command`` to its end: its CPU time (with its own children's) and wall time, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=PROCESS_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} exited {result.returncode}: {result.stderr[-2000:]}")
    return Sample(cpu, wall), result.stdout


def floor(repeat: int) -> Sample:
    """The baseline every ratio divides by: a bare import of troposphere and awacs, in a new process."""
    return median([run_process([sys.executable, "-c", FLOOR_CODE])[0] for _ in range(max(repeat, 3))])


# --- generation -------------------------------------------------------------------------------


@contextmanager
def timed_layers(spent: dict[str, float]) -> Iterator[None]:
    """Each layer's build function and the toolkit's rendering and hand-over steps timed into
    ``spent[name]`` (CPU seconds, summed over environments), each its own time only: a layer that
    builds others (the deployer reads the resource types of the layers after it) is not charged
    for them.

    The layer objects are wrapped in place: the deployer layer and the infrastructure pipeline
    hold the same objects, and a build builds each (environment, layer) once, keyed by them.
    """
    running: list[float] = []  # CPU spent in timed calls nested in the one running, per level

    def timer(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            running.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                nested = running.pop()
                elapsed = time.process_time() - start
                spent[name] = spent.get(name, 0.0) + elapsed - nested
                if running:
                    running[-1] += elapsed

        return run

    labels = {
        "to_yaml": "(render YAML)",
        "to_json": "(render JSON)",
        "handover_files": "(DEPLOY.md, deploy.sh)",
        "apply_tags": "(tags)",
    }
    originals = {name: getattr(pipeline, name) for name in labels}
    builds = {layer: layer.build for layer in LAYERS}
    try:
        for name, function in originals.items():
            setattr(pipeline, name, timer(labels[name], function))
        for layer, build in builds.items():
            object.__setattr__(layer, "build", timer(layer.name, build))  # frozen: wrapped in place
        yield
    finally:
        for name, function in originals.items():
            setattr(pipeline, name, function)
        for layer, build in builds.items():
            object.__setattr__(layer, "build", build)


def generate_once(settings: Path, output: Path, spent: dict[str, float] | None = None) -> float:
    """One in-process `generate.py --settings settings --output output`: CPU seconds; with ``spent``,
    the layers timed into it."""
    with timed_layers(spent) if spent is not None else _nothing():
        start = time.process_time()
        status = generate.run_build(None, settings, output, quiet=True)
        elapsed = time.process_time() - start
    if status != 0:
        raise SystemExit(f"bench: generate.py refused the settings in {settings} (exit {status})")
    return elapsed


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def bench_generation(repeat: int, scratch: Path, base: Sample) -> tuple[list[str], Path]:
    output = scratch / "output"
    totals: list[float] = []
    per_layer: dict[str, list[float]] = {}
    for _ in range(repeat):
        spent: dict[str, float] = {}
        totals.append(generate_once(SETTINGS, output, spent))
        for name, seconds in spent.items():
            per_layer.setdefault(name, []).append(seconds)
    generate_py = [sys.executable, str(ROOT / "generate.py")]
    settings = ["--settings", str(SETTINGS)]
    process = median(
        [
            run_process([*generate_py, "--quiet", "--diagrams", "none", *settings, "--output", str(output)])[0]
            for _ in range(repeat)
        ]
    )
    drawing = median([run_process([*generate_py, "diagram", "--output", str(output)])[0] for _ in range(repeat)])
    # The collector off, as generate.py turns it off before its imports when run as a command.
    code = f"import gc, sys; gc.disable(); sys.path[:0] = {[str(ROOT / 'src'), str(ROOT)]}; import generate"
    imports = median([run_process([sys.executable, "-c", code])[0] for _ in range(repeat)])
    modules = library_modules(output)
    libraries = median([run_process([sys.executable, "-c", libraries_code(modules)])[0] for _ in range(repeat)])
    environments = sorted(p.parent.name for p in output.glob("*/manifest.json"))
    in_process = statistics.median(totals)

    def row(label: str, cpu: float, wall: str = "") -> str:
        return f"| {label} | {ms(cpu)} | {wall} | {ratio(cpu, base.cpu)} |"

    rows = [
        row(f"floor: `python -c \"{FLOOR_CODE}\"`", base.cpu, ms(base.wall)),
        row(
            f"`python generate.py --quiet --diagrams none`: every environment ({', '.join(environments)}), one "
            f"process; {verdict(process.cpu, GENERATION_TARGET_SECONDS)} CPU",
            process.cpu,
            ms(process.wall),
        ),
        row("&nbsp;&nbsp;of which importing `generate`", imports.cpu, ms(imports.wall)),
        row(
            f"&nbsp;&nbsp;&nbsp;&nbsp;of which the libraries' {len(modules)} modules alone (troposphere, awacs, "
            "pydantic, PyYAML and what they import; none of ours)",
            libraries.cpu,
            ms(libraries.wall),
        ),
        row("&nbsp;&nbsp;of which building and writing every environment (in process)", in_process),
        *(
            row(f"&nbsp;&nbsp;&nbsp;&nbsp;layer `{name}`", statistics.median(per_layer[name]))
            for name in _layer_order(per_layer)
        ),
        *(
            row(f"&nbsp;&nbsp;&nbsp;&nbsp;{name}", statistics.median(per_layer[name]))
            for name in sorted(per_layer)
            if name.startswith("(")
        ),
        f"| the CDK peer: {CDK_PEER} (not in this repository) | {seconds_text(CDK_PEER_SECONDS)} | | "
        f"{ratio(CDK_PEER_SECONDS, base.cpu)} |",
        f"| &nbsp;&nbsp;its one environment ÷ our every environment (one process) | | | "
        f"{ratio(CDK_PEER_SECONDS, process.cpu)} |",
        row("`python generate.py diagram` (every folder: DOT, SVG, PNG; Graphviz's `dot` included)", drawing.cpu,
            ms(drawing.wall)),
    ]  # fmt: skip
    return rows, output


LIBRARY_MODULES_CODE = """
import gc, sys, sysconfig
gc.disable()
sys.path[:0] = {path!r}
import generate
status = generate.main(["--quiet", "--diagrams", "none", "--settings", {settings!r}, "--output", {output!r}])
if status != 0:
    raise SystemExit(status)
site = {{sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}}
for name, module in sorted(sys.modules.items()):
    if type(module).__name__ == "_LazyModule":  # deferred, never used (its attributes would load it)
        continue
    where = getattr(module, "__file__", None) or ""
    if any(where.startswith(s + "/") for s in site):
        print(name)
"""


def library_modules(output: Path) -> list[str]:
    """The third-party modules (in the venv's site-packages) a whole `generate.py` build has imported
    when it ends, in a process of its own: troposphere's, awacs', pydantic's, PyYAML's and what
    they import. A module deferred and never used (cfn_flip, still a lazy module) is not counted."""
    code = LIBRARY_MODULES_CODE.format(path=[str(ROOT / "src"), str(ROOT)], settings=str(SETTINGS), output=str(output))
    return run_process([sys.executable, "-c", code])[1].split()


def libraries_code(modules: list[str]) -> str:
    """A process that imports ``modules`` and nothing of ours, as `generate.py` starts: the collector
    off, pydantic's plugins off and its loader and cfn_flip deferred (deferred_imports, which
    imports only the standard library)."""
    return (
        "import gc, os, sys; gc.disable(); os.environ.setdefault('PYDANTIC_DISABLE_PLUGINS', '__all__'); "
        f"sys.path[:0] = [{str(ROOT / 'src')!r}]; "
        "from infra_templates.deferred_imports import install; install(); "
        f"import {', '.join(modules)}"
    )


def _layer_order(per_layer: dict[str, list[float]]) -> list[str]:
    return [layer.name for layer in LAYERS if layer.name in per_layer]


# --- the gate ---------------------------------------------------------------------------------

GATE_STEP = re.compile(r"^gate: (\S+) +(ok|\d+ problem\(s\)) +([\d.]+) s$")


def run_gate(
    output: Path, extra: list[str], repeat: int, *, cache: bool = True
) -> tuple[Sample, dict[str, float], str]:
    """`python generate.py check` (with ``extra`` arguments): its CPU and wall times (median of
    ``repeat``), each check's share as the gate prints it (of the median run), and its first line.
    ``cache=False``: with its findings cache off (``GATE_CACHE=off``), as a fresh clone's first gate
    runs (every template linted and scanned); otherwise with the cache as the runs before left it."""
    runs = []
    env = dict(PROCESS_ENV or os.environ)
    if not cache:
        env["GATE_CACHE"] = "off"
    for _ in range(repeat):
        command = [sys.executable, str(ROOT / "generate.py"), "check", "--output", str(output), *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs.append((Sample(cpu, wall), result))
    runs.sort(key=lambda run: run[0].wall)
    _, result = runs[len(runs) // 2]
    steps = {
        match.group(1): float(match.group(3)) for line in result.stdout.splitlines() if (match := GATE_STEP.match(line))
    }
    if result.returncode != 0 or not steps:
        raise SystemExit(f"bench: the gate failed (exit {result.returncode}):\n{result.stdout[-3000:]}{result.stderr}")
    return median([s for s, _ in runs]), steps, result.stdout.splitlines()[0].removeprefix("gate: ")


def verdict(value: float, target: float) -> str:
    return f"{'within' if value <= target else '**over**'} {target:g} s"


def bench_gate(output: Path, repeat: int, base: Sample) -> list[str]:
    """The gate cold (``GATE_CACHE=off``: every template checked, as on a fresh clone) and warm
    (its findings cache filled by the cold-equivalent run before: nothing changed), whole and for dev."""
    cold, steps, what = run_gate(output, [], repeat, cache=False)
    run_gate(output, [], 1)  # fills the findings cache for the warm rows
    warm, _, _ = run_gate(output, [], repeat)
    one, _, one_what = run_gate(output, ["--env", "dev"], repeat, cache=False)

    def row(label: str, sample: Sample) -> str:
        return f"| {label} | {seconds_text(sample.wall)} | {seconds_text(sample.cpu)} | {ratio(sample.cpu, base.cpu)} |"

    return [
        row(
            f"`python generate.py check`, no findings cache (a fresh clone): {what}; "
            f"{verdict(cold.wall, GATE_TARGET_SECONDS)} wall",
            cold,
        ),
        *(
            f"| &nbsp;&nbsp;{name}: its jobs' time on the workers | {seconds_text(spent)} | | |"
            for name, spent in steps.items()
        ),
        row("`python generate.py check`, findings cache filled (nothing changed since the last gate)", warm),
        row(f"`python generate.py check --env dev`, no findings cache: {one_what}", one),
    ]


def bench_make_test(scratch: Path, base: Sample) -> list[str]:
    """`make test` on a fresh clone of this repository's HEAD (uncommitted changes are not in it):
    ``make venv`` first (the set-up: pip from its cache; timed apart), then ``make test`` timed,
    its wall time and the CPU time of every process it ran. Raises SystemExit when either fails."""
    clone = scratch / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "PYTEST_", "VIRTUAL_ENV"))}
    samples = []
    for target in ("venv", "test"):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(["make", target], cwd=clone, capture_output=True, text=True, check=False, env=env)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(
                f"bench: make {target} on a fresh clone exited {result.returncode}:\n{result.stdout[-3000:]}"
            )
        samples.append(Sample((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall))
    setup, test = samples
    tests = re.search(r"(\d[\d,]*) passed", result.stdout)
    return [
        f"| `make venv` on a fresh clone (the set-up, not in the target) | {seconds_text(setup.wall)} | "
        f"{seconds_text(setup.cpu)} | |",
        f"| `make test` right after it: lint, the gate (no findings cache), "
        f"{tests.group(1) if tests else '?'} tests; {verdict(test.wall, MAKE_TEST_TARGET_SECONDS)} wall | "
        f"{seconds_text(test.wall)} | {seconds_text(test.cpu)} | {ratio(test.cpu, base.cpu)} |",
    ]


# --- scale ------------------------------------------------------------------------------------


def scaled_settings(folder: Path, services: int) -> Path:
    """A copy of environments/ whose prod runs ``services`` services in all (the shipped ones plus
    generated ones, each with a route of its own)."""
    target = folder / "environments"
    shutil.copytree(SETTINGS, target)
    path = target / f"{SCALED_ENV}.yaml"
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    defaults = yaml.safe_load((target / "defaults.yaml").read_text(encoding="utf-8")) or {}
    shipped = set(defaults.get("services", {})) | set(data.get("services", {}))
    extra = data.setdefault("services", {})
    count = services - len(shipped)
    for i in range(count):
        extra[f"svc{i:03d}"] = _scaled_service(i, count)
    header = text.splitlines()[0] + "\n" if text.startswith("#") else ""
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def _scaled_service(i: int, count: int) -> dict[str, Any]:
    """The ``i``-th of ``count`` generated services, of every kind in turn: a web service (its own
    route), a backend it calls through Service Connect, a worker it sends to, a nightly job."""
    name = f"svc{i:03d}"
    common = {"cpu": 256, "memory": 512, "database_access": i % 2 == 0}  # half reach the database
    kind = ("web", "backend", "worker", "job")[i % 4]
    if kind == "job":
        return {**common, "kind": "job", "schedule": {"expression": "cron(0 3 * * ? *)"}}
    scaling = {"min": 2, "max": 4, "cpu_target": 60}
    if kind == "backend":
        return {**common, "kind": "backend", "port": 9000, "desired_count": 2, "autoscaling": scaling}
    if kind == "worker":
        return {**common, "kind": "worker", "desired_count": 2, "autoscaling": scaling}
    web = {
        **common,
        "port": 8080,
        "desired_count": 2,
        "autoscaling": {**scaling, "requests_per_target": 1000},
        "routing": {"paths": [f"/{name}/*"]},
        "health_check": {"path": f"/{name}/healthz"},
    }
    if i + 1 < count:
        web["calls"] = [f"svc{i + 1:03d}"]  # the next service, a backend
    if i + 2 < count:
        web["sends_to"] = [f"svc{i + 2:03d}"]  # the one after, a worker
    return web


@contextmanager
def lifted_troposphere_limits() -> Iterator[None]:
    """troposphere.Template refuses a 501st resource; lift that so an over-limit stack can be measured."""
    saved = {name: getattr(troposphere, name) for name in ("MAX_RESOURCES", "MAX_OUTPUTS")}
    try:
        for name in saved:
            setattr(troposphere, name, 100_000)
        yield
    finally:
        for name, value in saved.items():
            setattr(troposphere, name, value)


def breaks_a_limit(count: int, scratch: Path) -> str | None:
    """What breaks a limit when prod runs ``count`` services (prod's stacks and the project's,
    prod built alone; bytes of the YAML or JSON body, resources, outputs), or None."""
    folder = scratch / f"breaking-{count}"
    settings = scaled_settings(folder, count)
    try:
        with lifted_troposphere_limits(), pipeline.build_once():
            env = load_environment(SCALED_ENV, settings)
            stacks = pipeline.build_project_stacks(project_of([env], settings), PROJECT_LAYERS)
            stacks += pipeline.build_stacks(env, LAYERS)
        for stack in stacks:
            size = max(len(stack.yaml.encode()), len(stack.json.encode()))
            outputs = len(stack.body.get("Outputs", {}))
            limit = checks.MAX_UPLOADED_BYTES if stack.upload_bucket else checks.MAX_BODY_BYTES
            if size > limit or stack.resource_count > checks.MAX_RESOURCES or outputs > checks.MAX_OUTPUTS:
                return f"`{stack.name}` has {size:,} bytes, {stack.resource_count} resources, {outputs} outputs"
        return None
    finally:
        shutil.rmtree(folder)


def first_breaking(services: int, scratch: Path, lowest: int = 3) -> str:
    """The smallest number of services (``lowest`` to ``services``) at which one of prod's stacks or
    the project's breaks a limit, found by bisection: a template only grows with the services, so
    once a count breaks a limit every larger count does. At most log2(services) builds (one when
    ``services`` breaks nothing), where trying every count took 98."""
    found = breaks_a_limit(services, scratch)
    if found is None:
        return f"none up to {services}"
    low, high = lowest - 1, services  # low breaks nothing (or is below the range); high breaks a limit
    while high - low > 1:
        middle = (low + high) // 2
        broken = breaks_a_limit(middle, scratch)
        if broken is None:
            low = middle
        else:
            high, found = middle, broken
    return f"{high} services: {found}"


def bench_scale(services: int, repeat: int, scratch: Path, base: Sample) -> tuple[list[str], list[str]]:
    settings = scaled_settings(scratch, services)
    output = scratch / "scaled"
    refused = ""
    try:
        samples = [generate_once(settings, output) for _ in range(repeat)]
    except ValueError as error:  # troposphere refuses a template over CloudFormation's quotas
        refused = str(error)
        with lifted_troposphere_limits():  # build it anyway, to measure how far over it is
            samples = [generate_once(settings, output) for _ in range(repeat)]
    folder = output / SCALED_ENV
    described = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    own = [s for s in described["stacks"] if s["scope"] == "environment"]
    sizes = {
        s["name"]: max((folder / s["templates"][f]).stat().st_size for f in ("yaml", "json"))
        for s in described["stacks"]
    }
    limits = {  # a stack uploaded through a bucket may be larger than one sent in the request
        s["name"]: checks.MAX_UPLOADED_BYTES if "upload_bucket" in s else checks.MAX_BODY_BYTES
        for s in described["stacks"]
    }
    largest = max(sizes, key=lambda name: sizes[name] / limits[name])  # the closest to its limit
    security = next(s for s in own if s["layer"] == "security")
    security_body = json.loads((folder / security["templates"]["json"]).read_text(encoding="utf-8"))
    registry = next(s for s in described["stacks"] if s["layer"] == "registry")
    registry_body = json.loads((folder / registry["templates"]["json"]).read_text(encoding="utf-8"))
    manifests = checks.load_manifests(output)
    problems = [str(p) for p in checks.check_limits(checks.template_files(manifests))]
    problems += [str(p) for p in checks.check_wiring(manifests)]
    quota_problems = quotas.check_output_quotas(manifests)  # AWS's default quotas, across stacks
    problems += quota_problems
    if refused:
        problems.insert(0, f"generating {services} services: troposphere refused a template: {refused}")
    count = len(described["stacks"])
    rows = [
        f"| services in `{SCALED_ENV}` | {services} |",
        f"| generation, every environment with the scaled one, in process (median of {repeat}) | "
        f"{ms(statistics.median(samples))} CPU, {ratio(statistics.median(samples), base.cpu)} the floor"
        + (f" (**refused**: troposphere: {refused}; measured with its limits lifted)" if refused else "")
        + " |",
        f"| stacks of `{SCALED_ENV}` (its own + project) | {len(own)} + {count - len(own)} |",
        f"| largest template (against its limit) | `{largest}`: {sizes[largest]:,} bytes (limit {limits[largest]:,}) |",
        f"| security stack | {sizes[security['name']]:,} bytes, "
        f"{len(security_body['Resources'])} resources (limit {checks.MAX_RESOURCES}), "
        f"{len(security_body.get('Outputs', {}))} outputs (limit {checks.MAX_OUTPUTS}) |",
        f"| registry stack (project) | {sizes[registry['name']]:,} bytes, "
        f"{len(registry_body['Resources'])} resources, {len(registry_body.get('Outputs', {}))} outputs |",
        f"| limits and wiring on the scaled output | {'ok' if not problems else f'{len(problems)} problem(s)'} |",
        f"| first breaking point (a limit exceeded) | {first_breaking(services, scratch)} |",
        f"| AWS default quotas ({len(quotas.QUOTAS)}: target groups, rules, targets per load balancer, rules per "
        f"security group...) | {_quota_figure(settings, quota_problems)} |",
    ]
    return rows, problems


def _quota_figure(settings: Path, problems: list[str]) -> str:
    """The scaled environment's blue/green services, load balancers and the quota check's verdict."""
    env = load_environment(SCALED_ENV, settings)
    balancers = len(env.load_balancer_groups())
    verdict = "within every one" if not problems else f"**{len(problems)} exceeded**"
    return f"{len(env.blue_green_services)} blue/green services on {balancers} load balancer(s): {verdict}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    print(f"Measured {machine()}.\n")
    global PROCESS_ENV, SETTINGS  # noqa: PLW0603 - one setting for every measured process of this run
    scratch_folder = tempfile.TemporaryDirectory(prefix="bench-")
    scratch = Path(scratch_folder.name)
    PROCESS_ENV = process_environment()
    SETTINGS = args.settings
    run_process(
        [
            sys.executable,
            str(ROOT / "generate.py"),
            "--quiet",
            "--diagrams",
            "dot",  # compiles every module the measured runs import; Graphviz's drawing is timed below
            "--settings",
            str(SETTINGS),
            "--output",
            str(scratch / "warm-up"),
        ]
    )
    base = floor(args.repeat)
    print(
        f'Every ratio divides by the floor measured in this run: `python -c "{FLOOR_CODE}"` in a new process, '
        f"{ms(base.cpu)} CPU (median of {max(args.repeat, 3)}); CPU by CPU. Processes run with Python's bytecode "
        f"cache, as a user's do after the first run. The CDK peer: {CDK_PEER}.\n"
    )
    with scratch_folder:
        rows, output = bench_generation(args.repeat, scratch, base)
        print(f"| generation (median of {args.repeat}) | CPU | wall | ÷ floor |\n|---|---:|---:|---:|")
        print("\n".join(rows))
        problems: list[str] = []
        if args.no_gate:
            print(
                "\n| the gate | wall | CPU | ÷ floor |\n|---|---:|---:|---:|\n| not measured (--no-gate) | - | - | - |"
            )
        else:
            print(f"\n| the gate (median of {args.gate_repeat}) | wall | CPU | ÷ floor |\n|---|---:|---:|---:|")
            print("\n".join(bench_gate(output, args.gate_repeat, base)))
        print("\n| `make test` on a fresh clone | wall | CPU | ÷ floor |\n|---|---:|---:|---:|")
        if args.no_make_test:
            print("| not measured (--no-make-test) | - | - | - |")
        else:
            print("\n".join(bench_make_test(scratch, base)))
        scale_rows, scale_problems = bench_scale(args.services, args.repeat, scratch, base)
        problems += scale_problems
        print(f"\n| scale: {args.services} services | figure |\n|---|---|")
        print("\n".join(scale_rows))
    print(f"\n`make bench` took {time.perf_counter() - started:,.0f} s.")
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `make bench | head`: no traceback, as generate.py ends then
        status = generate.stdout_closed()
    sys.exit(status)
