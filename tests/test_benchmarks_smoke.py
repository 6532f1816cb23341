"""Smoke run of every benchmark script with tiny sizes, carbon-core only, so that they keep working.

``run_all.py`` runs each script in turn (overhead, per_step, startup, exactness, memory,
gpu_validation, meter_reads) and writes their sections, so one run of it covers every script.

No timing is asserted: these machines are noisy and the numbers of a ``--quick`` run mean
nothing. CodeCarbon and Carbontracker are left out (``--tools carbon-core``); the bench
session installs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args, "--quick", "--tools", "carbon-core"],
        capture_output=True, text=True, timeout=240, cwd=BENCH.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_run_all_writes_the_results_file(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    _run(str(BENCH / "run_all.py"), "--out", str(out))
    text = out.read_text()
    assert "Versions:" in text and "Machine:" in text
    sections = text.split("\n## ")[1:]
    assert [s.split(".", 1)[0] for s in sections] == ["1", "2", "3", "4", "5", "6", "7"], text
    for section in sections[:6]:  # every script measured carbon-core, or said why it could not
        assert "| carbon-core" in section or "skipped" in section, section
    reads = sections[6]  # the GPU meters' read cost: both measured, on their fake libraries
    assert "| NVML (pynvml) | " in reads and "| AMD (amdsmi) | " in reads and "skipped" not in reads, reads
    # counters read as deltas: carbon-core's error on the scripted energy is exactly zero
    exact = text[text.index("## 4.") :]
    row = next(line for line in exact.splitlines() if line.startswith("| carbon-core"))
    assert row.endswith("| 0 % |"), row
