"""The tool's tests apart from the user's settings (issue 19): the tests build from the fixtures in
tests/fixtures/environments/, a guard in conftest.py fails any test that reads environments/, and a
copy of the project with settings changed the way a new user changes them still passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
import yaml
from conftest import (
    ROOT,
    SETTINGS,
    USER_SETTINGS,
    _audit,
    _reads_user_settings,
    _seen_user_settings,
    edit_yaml,
    generate_command,
)

from infra_templates import checks

# --- the guard and the helper -------------------------------------------------------------------


def test_the_guard_records_a_read_of_the_users_settings() -> None:
    with suppress(OSError):  # the event is raised before the file is opened, whether it is there or not
        (USER_SETTINGS / "defaults.yaml").read_text()
    with suppress(OSError):
        os.listdir(USER_SETTINGS)
    seen = _seen_user_settings[:]
    _seen_user_settings.clear()  # this test read them on purpose
    assert seen == [f"open {USER_SETTINGS / 'defaults.yaml'}", f"os.listdir {USER_SETTINGS}"]


def test_the_guard_leaves_the_fixtures_alone() -> None:
    (SETTINGS / "defaults.yaml").read_text()
    _audit("subprocess.Popen", (sys.executable, [sys.executable, str(ROOT / "generate.py"), "check"], None, None))
    assert _seen_user_settings == []


@pytest.mark.parametrize(
    ("argv", "reads"),
    [
        ([], True),  # the default command, build, from environments/
        (["--quiet", "--output", "x"], True),
        (["--diagrams", "none", "--env", "dev"], True),  # a value is not the command (it read environments/)
        (["--env", "dev", "diff", "--against", "x"], True),
        (["diff", "--settings", "s"], False),
        (["--settings", "s", "--quiet"], False),
        (["check", "--output", "x"], False),
        (["--output", "x", "check"], False),  # a value is not the command
        (["diagram", "--output", "x"], False),
        (["schema", "--check"], False),
        (["--help"], False),
    ],
)
def test_the_guard_knows_which_generate_commands_read_settings(argv: list[str], reads: bool) -> None:
    assert _reads_user_settings([sys.executable, str(ROOT / "generate.py"), *argv], str(ROOT)) is reads
    assert _reads_user_settings([sys.executable, "generate.py", *argv], str(ROOT)) is reads  # relative to cwd
    assert not _reads_user_settings([sys.executable, "generate.py", *argv], "/elsewhere")  # another copy's
    assert _reads_user_settings([sys.executable, str(ROOT / "bench" / "bench.py"), "--quick"], str(ROOT))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--quiet",), ["--settings", str(SETTINGS), "--quiet"]),
        (("diff", "--env", "dev"), ["diff", "--settings", str(SETTINGS), "--env", "dev"]),
        (("--env", "dev", "build"), ["--env", "dev", "build", "--settings", str(SETTINGS)]),
        (("diff", "--settings", "mine"), ["diff", "--settings", "mine"]),
        (("check", "--output", "x"), ["check", "--output", "x"]),
        (("--help",), ["--help"]),
    ],
)
def test_generate_builds_from_the_fixtures_unless_told_otherwise(args: tuple[str, ...], expected: list[str]) -> None:
    assert generate_command(*args) == [sys.executable, str(ROOT / "generate.py"), *expected]


# --- a user's own settings: the trial of issue 19, on a copy of the project ----------------------

# What the trial changed: a new service, dev's database on MySQL, another environment.
NEW_SERVICE = {
    "port": 8080,
    "cpu": 256,
    "memory": 512,
    "desired_count": 1,
    "autoscaling": {"min": 1, "max": 2, "cpu_target": 60, "requests_per_target": 1000},
    "routing": {"paths": ["/search/*"]},
    "health_check": {"path": "/search/healthz"},
}
NEW_ENVIRONMENT = {
    "account_id": "555555555555",
    "region": "eu-west-1",
    "network": {
        "cidr": "10.50.0.0/16",
        "availability_zones": 2,
        "subnets": {
            "public": ["10.50.0.0/24", "10.50.1.0/24"],
            "private": ["10.50.16.0/20", "10.50.32.0/20"],
            "data": ["10.50.64.0/24", "10.50.65.0/24"],
        },
    },
    "platform": {
        "certificate_arn": "arn:aws:acm:eu-west-1:555555555555:certificate/55555555-5555-5555-5555-555555555555"
    },
    "database": {"capacity": {"mode": "serverless", "min_acu": 0.5, "max_acu": 4, "readers": 1}},
    "edge": {
        "origin_domain": "origin.qa.shop.example.com",
        "aliases": ["qa.shop.example.com"],
        "certificate_arn": "arn:aws:acm:us-east-1:555555555555:certificate/55555555-5555-5555-5555-555555555556",
    },
}
# The tool's tests the copy runs: the golden files and pinned logical IDs (what failed in the trial) and
# the schema against the fixtures. Every other test is held to the fixtures by the guard in conftest.py,
# in every run, which keeps this test cheap.
COPY_TESTS = ["tests/test_golden.py", "tests/test_schema.py"]


TOP_SKIPPED = {".git", ".venv", "output", "environments"}  # the user's settings are the test's own
CACHES = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def project_files() -> list[str]:
    """The project's files: as git knows them (tracked and new, not ignored), or, in a checkout without
    git (an unpacked archive), every file outside the generated and cached folders."""
    with suppress(OSError, subprocess.CalledProcessError):
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        return [name for name in listed if name]
    return [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*")
        if path.is_file()
        and path.relative_to(ROOT).parts[0] not in TOP_SKIPPED
        and not CACHES & set(path.relative_to(ROOT).parts)
    ]


def copy_of_the_project(target: Path) -> Path:
    """A copy of the project without the user's settings (environments/) and without output/.

    With the bytecode Python and pytest cached of each module (``__pycache__``): the copy's
    processes then compile nothing again (0.9 s of CPU). A cached file holds its source's time and
    size, which ``copy2`` keeps, so it is used only where the source is the same; any other is
    compiled anew, as in the project."""
    for name in project_files():
        source = ROOT / name
        if name.startswith(("environments/", "output/")) or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
        if source.suffix == ".py":
            for cached in source.parent.glob(f"__pycache__/{source.stem}.*.pyc"):
                folder = (target / name).parent / "__pycache__"
                folder.mkdir(exist_ok=True)
                shutil.copy2(cached, folder / cached.name)
    return target


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MAKE"))}


def run(copy: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=copy, capture_output=True, text=True, env=_environ(), check=False
    )


@pytest.mark.slow
# last: dev's templates the user did not change are those `make test`'s own gate checks beside the tests,
# whose findings it keeps by then (the gate's cache): only what the change touched is linted and scanned
@pytest.mark.last
def test_a_users_own_settings_keep_the_tests_and_the_gate_green(tmp_path: Path) -> None:
    copy = copy_of_the_project(tmp_path / "project")
    users = copy / "environments"
    shutil.copytree(SETTINGS, users)  # a user who started from the examples, then changed them:
    edit_yaml(users / "defaults.yaml", services__search=NEW_SERVICE)
    edit_yaml(users / "dev.yaml", database__engine="aurora-mysql", database__engine_version="8.0.mysql_aurora.3.08.2")
    (users / "qa.yaml").write_text(yaml.safe_dump(NEW_ENVIRONMENT, sort_keys=False))
    # The copy's tests read its fixtures and golden files, nothing it builds: they run beside the
    # build and the gate below (this test is the session's last: the other core is free by then)
    tests = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *COPY_TESTS],
        cwd=copy,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environ(),
    )
    try:
        _build_and_gate(copy, tmp_path)
    finally:
        stdout, stderr = tests.communicate()
    assert tests.returncode == 0, stdout[-5000:] + stderr[-2000:]
    assert " passed" in stdout and "failed" not in stdout and "error" not in stdout


def _build_and_gate(copy: Path, tmp_path: Path) -> None:
    # make templates, its diagrams as DOT source: drawing them from the user's stacks is what this
    # proves; Graphviz's rendering of DOT into SVG and PNG (2.7 s of CPU) is tested on the fixtures.
    built = run(copy, "generate.py", "--quiet", "--diagrams", "dot")
    assert built.returncode == 0, built.stderr
    output = copy / "output"
    assert (output / "qa" / "svc-search.json").is_file()
    assert '"aurora-mysql"' in (output / "dev" / "data.json").read_text()

    # The gate, with every check `make gate` runs, on dev: MySQL and the new service. Cheaply: dev's own stacks (its
    # manifest without the project's stacks it lists, which dev's stacks neither import from nor depend on:
    # the wiring check would say so). qa is staging's shape, and the project's new stacks those of the other
    # services, which `make gate` passes in every run of `make test` in this repository.
    gated = tmp_path / "gated" / "dev"
    shutil.copytree(output / "dev", gated)
    manifest = json.loads((gated / "manifest.json").read_text())
    manifest["stacks"] = [s for s in manifest["stacks"] if not s["templates"]["yaml"].startswith("../")]
    assert "shop-dev-svc-search" in [s["name"] for s in manifest["stacks"]]
    (gated / "manifest.json").write_text(json.dumps(manifest))
    # In this process (what `generate.py check --output DIR` runs): its checkov run through the
    # session's fork server, cfn-lint's rules as this process loaded them; `generate.py check` itself
    # is tested in test_checks.py.
    lines: list[str] = []
    assert checks.run_gate(gated.parent, lines.append) == 0, "\n".join(lines)
    assert lines[-1].startswith("gate: passed")
