"""The benchmark script (`make bench`) still runs: quick mode, 1 run, 5 services, no gate, on the fixtures."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT, SETTINGS

from templates import LAYERS


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
    for layer in LAYERS:
        assert re.search(rf"\| &nbsp;&nbsp;layer `{re.escape(layer.name)}` \| [\d,]+ ms \|", out), layer.name
    assert re.search(r"\| `python generate.py --quiet` .* \| [\d,]+ ms \|", out)
    assert "| not measured (--no-gate) | - |" in out
    assert "| services in `prod` | 5 |" in out
    assert re.search(r"\| security stack \| [\d,]+ bytes, \d+ resources \(limit 500\)", out)
    assert "| limits and wiring on the scaled output | ok |" in out
