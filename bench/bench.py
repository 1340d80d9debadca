#!/usr/bin/env python3
"""Benchmark of infra-templates on this machine (`make bench`): prints Markdown tables for the README.

1. generation: every shipped environment, in process, as `python generate.py` does it (settings,
   layers, rendering, DEPLOY.md/deploy.sh, writing): the median of --repeat runs, in total and per
   layer (each layer's build function timed), plus a whole `python generate.py` process (imports
   included), the diagram of every folder (`generate.py diagram`, Graphviz's dot) and the import time;
2. the gate on that output, each check on its own (wiring, limits, cfn-lint, checkov, shellcheck)
   and the whole `python generate.py check` as users run it (checks two at a time);
3. scale: a copy of environments/ whose prod runs --services services (distinct routes); its
   generation time, stack count, the largest template and the security stack's size and resource
   count, each template against CloudFormation's limits (the gate's own limits check).

Exit status 1 when a check reports problems or a scaled template breaks a limit: the figures of a
broken build mean nothing. --quick (1 run, 5 services, no gate) is what the test suite runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import troposphere
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import generate  # noqa: E402
from infra_templates import checks, pipeline  # noqa: E402
from infra_templates.config import load_environment, project_of  # noqa: E402
from infra_templates.pipeline import LayerSpec  # noqa: E402
from templates import LAYERS, PROJECT_LAYERS  # noqa: E402

SCALED_ENV = "prod"
SETTINGS = ROOT / "environments"  # the default; the test suite passes its fixtures (--settings)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/bench.py", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="runs per generation figure; the median is shown")
    parser.add_argument("--gate-repeat", type=int, default=1, help="runs per gate figure (checkov takes seconds)")
    parser.add_argument("--services", type=int, default=100, help="services in the scaled environment")
    parser.add_argument("--no-gate", action="store_true", help="do not time the gate")
    parser.add_argument(
        "--settings", type=Path, default=SETTINGS, metavar="DIR", help="environment files (default: environments/)"
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 5 services, no gate: does the bench still run?")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.gate_repeat, args.services, args.no_gate = 1, 1, 5, True
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


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:,.0f} ms"


# --- generation -------------------------------------------------------------------------------


@contextmanager
def timed_layers(spent: dict[str, float]) -> Iterator[tuple[LayerSpec, ...]]:
    """The layers with each build function timed into ``spent[layer]`` (summed over environments),
    and the toolkit's rendering and hand-over steps timed too, by wrapping the pipeline's names."""

    def timer(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

        return run

    originals = {name: getattr(pipeline, name) for name in ("to_yaml", "to_json", "handover_files", "apply_tags")}
    labels = {
        "to_yaml": "(render YAML)",
        "to_json": "(render JSON)",
        "handover_files": "(DEPLOY.md, deploy.sh)",
        "apply_tags": "(tags)",
    }
    try:
        for name, function in originals.items():
            setattr(pipeline, name, timer(labels[name], function))
        yield tuple(dataclasses.replace(layer, build=timer(layer.name, layer.build)) for layer in LAYERS)
    finally:
        for name, function in originals.items():
            setattr(pipeline, name, function)


def generate_once(settings: Path, output: Path, spent: dict[str, float]) -> float:
    """One in-process `generate.py --settings settings --output output`, with layers timed."""
    with timed_layers(spent) as layers:
        saved = generate.LAYERS
        generate.LAYERS = layers
        try:
            start = time.perf_counter()
            status = generate.run_build(None, settings, output, quiet=True)
            elapsed = time.perf_counter() - start
        finally:
            generate.LAYERS = saved
    if status != 0:
        raise SystemExit(f"bench: generate.py refused the settings in {settings} (exit {status})")
    return elapsed


def bench_generation(repeat: int, scratch: Path, settings: Path = SETTINGS) -> tuple[list[str], Path]:
    output = scratch / "output"
    totals: list[float] = []
    per_layer: dict[str, list[float]] = {}
    for _ in range(repeat):
        spent: dict[str, float] = {}
        totals.append(generate_once(settings, output, spent))
        for name, seconds in spent.items():
            per_layer.setdefault(name, []).append(seconds)
    process = [
        _run(
            [sys.executable, str(ROOT / "generate.py"), "--quiet", "--settings", str(settings), "--output", str(output)]
        )
        for _ in range(repeat)
    ]
    drawing = [
        _run([sys.executable, str(ROOT / "generate.py"), "diagram", "--output", str(output)]) for _ in range(repeat)
    ]
    imports = [
        _run([sys.executable, "-c", f"import sys; sys.path[:0] = {[str(ROOT / 'src'), str(ROOT)]}; import generate"])
        for _ in range(repeat)
    ]
    environments = sorted(p.parent.name for p in output.glob("*/manifest.json"))
    rows = [
        f"| all environments ({', '.join(environments)}), in process | {median_ms(totals)} |",
        *(f"| &nbsp;&nbsp;layer `{name}` | {median_ms(per_layer[name])} |" for name in _layer_order(per_layer)),
        *(
            f"| &nbsp;&nbsp;{name} | {median_ms(per_layer[name])} |"
            for name in sorted(per_layer)
            if name.startswith("(")
        ),
        f"| `python generate.py --quiet` (a whole process: imports + the above) | {median_ms(process)} |",
        f"| &nbsp;&nbsp;of which importing `generate` | {median_ms(imports)} |",
        f"| `python generate.py diagram` (every folder: DOT, SVG, PNG) | {median_ms(drawing)} |",
    ]
    return rows, output


def _layer_order(per_layer: dict[str, list[float]]) -> list[str]:
    return [layer.name for layer in LAYERS if layer.name in per_layer]


def _run(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed


# --- the gate ---------------------------------------------------------------------------------


def bench_gate(output: Path, repeat: int) -> tuple[list[str], list[str]]:
    manifests = checks.load_manifests(output)
    files = checks.template_files(manifests)
    steps: list[tuple[str, Callable[[], list[checks.Problem]]]] = [
        ("wiring", lambda: checks.check_wiring(manifests)),
        ("limits", lambda: checks.check_limits(files)),
        ("cfn-lint", lambda: checks.check_cfn_lint(files)),
        ("checkov", lambda: checks.check_checkov(output)),
        ("shellcheck", lambda: checks.check_shellcheck(manifests)),
    ]
    rows: list[str] = []
    problems: list[str] = []
    for name, step in steps:
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            found = step()
            samples.append(time.perf_counter() - start)
            problems.extend(str(p) for p in found)
        rows.append(f"| &nbsp;&nbsp;{name}, on its own, in process | {median_ms(samples)} |")
    whole = [_run([sys.executable, str(ROOT / "generate.py"), "check", "--output", str(output)]) for _ in range(repeat)]
    rows.insert(
        0, f"| `python generate.py check`: {len(files)} templates, {len(manifests)} folders | {median_ms(whole)} |"
    )
    return rows, problems


# --- scale ------------------------------------------------------------------------------------


def scaled_settings(folder: Path, services: int, settings: Path = SETTINGS) -> Path:
    """A copy of environments/ whose prod runs ``services`` services in all (the shipped ones plus
    generated ones, each with a route of its own)."""
    target = folder / "environments"
    shutil.copytree(settings, target)
    path = target / f"{SCALED_ENV}.yaml"
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    defaults = yaml.safe_load((target / "defaults.yaml").read_text(encoding="utf-8")) or {}
    shipped = set(defaults.get("services", {})) | set(data.get("services", {}))
    extra = data.setdefault("services", {})
    for i in range(services - len(shipped)):
        name = f"svc{i:03d}"
        extra[name] = {
            "port": 8080,
            "cpu": 256,
            "memory": 512,
            "desired_count": 2,
            "autoscaling": {"min": 2, "max": 4, "cpu_target": 60, "requests_per_target": 1000},
            "routing": {"paths": [f"/{name}/*"]},
            "health_check": {"path": f"/{name}/healthz"},
            "database_access": i % 2 == 0,  # half of them reach the database: rules in the security stack
        }
    header = text.splitlines()[0] + "\n" if text.startswith("#") else ""
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


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


def first_breaking(services: int, scratch: Path, settings: Path = SETTINGS) -> str:
    """The smallest number of services at which one of prod's stacks or the project's breaks a limit
    (bytes of the YAML or JSON body, resources, outputs), building prod alone with 3, 4, ... services."""
    for count in range(3, services + 1):
        folder = scratch / f"breaking-{count}"
        scaled = scaled_settings(folder, count, settings)
        with lifted_troposphere_limits():
            env = load_environment(SCALED_ENV, scaled)
            stacks = pipeline.build_project_stacks(project_of([env], scaled), PROJECT_LAYERS)
            stacks += pipeline.build_stacks(env, LAYERS)
        for stack in stacks:
            size = max(len(stack.yaml.encode()), len(stack.json.encode()))
            outputs = len(stack.body.get("Outputs", {}))
            limit = checks.MAX_UPLOADED_BYTES if stack.upload_bucket else checks.MAX_BODY_BYTES
            if size > limit or stack.resource_count > checks.MAX_RESOURCES or outputs > checks.MAX_OUTPUTS:
                return (
                    f"{count} services: `{stack.name}` has {size:,} bytes, {stack.resource_count} resources, "
                    f"{outputs} outputs"
                )
        shutil.rmtree(folder)
    return f"none up to {services}"


def bench_scale(services: int, repeat: int, scratch: Path, shipped: Path = SETTINGS) -> tuple[list[str], list[str]]:
    settings = scaled_settings(scratch, services, shipped)
    output = scratch / "scaled"
    refused = ""
    try:
        samples = [generate_once(settings, output, {}) for _ in range(repeat)]
    except ValueError as error:  # troposphere refuses a template over CloudFormation's quotas
        refused = str(error)
        with lifted_troposphere_limits():  # build it anyway, to measure how far over it is
            samples = [generate_once(settings, output, {}) for _ in range(repeat)]
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
    if refused:
        problems.insert(0, f"generating {services} services: troposphere refused a template: {refused}")
    count = len(described["stacks"])
    rows = [
        f"| services in `{SCALED_ENV}` | {services} |",
        f"| generation, every environment with the scaled one (median of {repeat}) | {median_ms(samples)}"
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
        f"| first breaking point (a limit exceeded) | {first_breaking(services, scratch, shipped)} |",
    ]
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    print(f"Measured {machine()}.\n")
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        rows, output = bench_generation(args.repeat, Path(scratch), args.settings)
        print(f"| generation (median of {args.repeat}) | time |\n|---|---:|")
        print("\n".join(rows))
        problems: list[str] = []
        if args.no_gate:
            print("\n| the gate | time |\n|---|---:|\n| not measured (--no-gate) | - |")
        else:
            gate_rows, gate_problems = bench_gate(output, args.gate_repeat)
            problems += gate_problems
            print(f"\n| the gate, full output (median of {args.gate_repeat}) | time |\n|---|---:|")
            print("\n".join(gate_rows))
        scale_rows, scale_problems = bench_scale(args.services, args.repeat, Path(scratch), args.settings)
        problems += scale_problems
        print(f"\n| scale: {args.services} services | figure |\n|---|---|")
        print("\n".join(scale_rows))
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
