"""The benchmark script (`make bench`) still runs: quick mode, 1 run, 5 services, no gate."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SETTINGS

from templates import LAYERS

sys.path.insert(0, str(ROOT / "bench"))
import bench


@pytest.mark.slow  # generates, draws and scales whole outputs: ~10 s
def test_bench_quick_mode_prints_every_table() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench.py"), "--quick", "--settings", str(SETTINGS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"Measured \d{4}-\d\d-\d\d .*\d+ CPUs \(nproc\), .*Python 3\.", out)
    floor = re.search(r'the floor measured in this run: `python -c "import troposphere, awacs"`.* ([\d,]+) ms CPU', out)
    assert floor, out
    assert "10.3 s for one environment's `cdk synth`, measured 2026-11-30" in out
    assert re.search(r'\| floor: `python -c "import troposphere, awacs"` \| [\d,]+ ms \| [\d,]+ ms \| 1\.0x \|', out)
    for layer in LAYERS:
        assert re.search(rf"\| (&nbsp;)+layer `{re.escape(layer.name)}` \| [\d,]+ ms \|  \| [\d.,]+x \|", out), (
            layer.name
        )
    assert re.search(
        r"\| `python generate.py --quiet --diagrams none`: every environment .* one process; "
        r"(within|\*\*over\*\*) 0.35 s CPU \| [\d,]+ ms \| [\d,]+ ms \| [\d.,]+x \|",
        out,
    )
    libraries = re.search(r"of which the libraries' (\d+) modules alone \(troposphere, .*\| [\d,]+ ms \|", out)
    assert libraries and int(libraries[1]) > 100, out  # troposphere's, awacs', pydantic's, PyYAML's
    assert re.search(
        r"\| &nbsp;&nbsp;its one environment ÷ our every environment \(one process\) \| \| \| [\d.,]+x \|", out
    )
    assert "| not measured (--no-gate) | - | - | - |" in out
    assert "| not measured (--no-make-test) | - | - | - |" in out
    assert "| services in `prod` | 5 |" in out
    assert re.search(r"\| security stack \| [\d,]+ bytes, \d+ resources \(limit 500\)", out)
    assert "| limits and wiring on the scaled output | ok |" in out
    assert "| first breaking point (a limit exceeded) | none up to 5 |" in out


def test_first_breaking_bisects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The smallest breaking count, found in about log2(range) builds rather than one per count."""
    tried: list[int] = []

    def breaks(count: int, scratch: Path) -> str | None:
        tried.append(count)
        return f"too big at {count}" if count >= 37 else None

    monkeypatch.setattr(bench, "breaks_a_limit", breaks)
    assert bench.first_breaking(100, tmp_path) == "37 services: too big at 37"
    assert len(tried) <= 8
    tried.clear()
    assert bench.first_breaking(36, tmp_path) == "none up to 36"
    assert tried == [36]
    assert bench.first_breaking(100, tmp_path, lowest=40) == "40 services: too big at 40"


def test_ratios_divide_cpu_by_the_floor() -> None:
    assert bench.ratio(0.7, 0.07) == "10.0x"
    assert bench.ratio(1.0, 0.0) == "-"
    assert bench.verdict(0.35, 0.35) == "within 0.35 s" and bench.verdict(90.5, 90) == "**over** 90 s"


@pytest.mark.slow  # builds prod with 100 services: ~2 s
def test_one_hundred_mixed_services_break_no_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared stack that grows per service (the data stack's user per service did, past 51,200
    bytes from 54 services) is caught here: at 100 services of every kind, half with database
    access, every stack of prod and of the project stays within CloudFormation's limits."""
    monkeypatch.setattr(bench, "SETTINGS", SETTINGS)
    # shutil.rmtree opens each folder by its bare name (dir_fd): from here, conftest's guard does not
    # take the scratch copy's environments/ for the user's
    monkeypatch.chdir(tmp_path)
    assert bench.breaks_a_limit(100, tmp_path) is None
