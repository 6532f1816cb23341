"""Report at scale: peak RSS and wall time of ``carbon-core report`` on long and multi-node logs.

python benchmarks/report_scale.py [--quick] [--lines N] [--baseline DIR] [--timeout S]

Generates run logs in the writer's format (one interval a second, four channels, ~240 bytes
a line), then runs ``carbon-core report`` on them in a child process each, and reports the
child's peak RSS and wall time:

* one node, ``--lines`` lines (default 10^6, ~11.6 days at a 1 s interval): ``report`` and
  ``report --json``;
* a two-node job whose nodes sample half a second apart: ``report --plot`` at a few sizes,
  so that the growth with the number of intervals shows.

``--baseline DIR``: a source tree of another carbon-core (e.g. the last commit, exported
with ``git archive HEAD | tar -x -C DIR``) measured side by side, with the ratios baseline /
this tree. A baseline run that exceeds ``--timeout`` is shown as ``> timeout``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHANNELS = {
    "gpu:0": {"component": "gpu", "method": "counter"},
    "gpu:1": {"component": "gpu", "method": "counter"},
    "cpu:package-0": {"component": "cpu", "method": "counter"},
    "cpu:dram-0": {"component": "ram", "method": "counter"},
}
WATTS = {"gpu:0": 300.0, "gpu:1": 280.0, "cpu:package-0": 65.0, "cpu:dram-0": 6.0}
INTENSITY = 344.1


def write_log(path: Path, lines: int, host: str = "node0", node_rank: int = 0, shift: float = 0.0) -> Path:
    """A complete run log of ``lines`` lines (header, intervals, final) at a 1 s interval, each
    interval ending ``shift`` seconds past the second (nodes do not sample in step)."""
    intervals = max(0, lines - 2)
    header = {
        "type": "header", "schema": "carbon-core/run-log/1", "run_id": f"bench{node_rank:07d}",
        "job_id": "bench", "started_at": "2025-01-01T00:00:00Z", "host": host, "node_rank": node_rank,
        "rank": None, "world_size": None, "versions": {"carbon_core": "0", "python": "3"}, "zone": "DE",
        "intensity_source": "table:country:DE:2024", "location_source": "env", "channels": CHANNELS,
        "devices": ["gpu:0 Bench GPU", "gpu:1 Bench GPU"], "hardware": {}, "config": {"pue": 1.2},
    }  # fmt: skip
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    co2_g = 0.0
    with path.open("w", encoding="utf-8") as fh:
        fh.write(dumps(header) + "\n")
        power = sum(WATTS.values())
        for i in range(intervals):
            t1 = float(i + 1) + shift
            wobble = 1.0 + 0.1 * ((i * 7919) % 13) / 13.0
            joules = {k: round(w * t1 * wobble, 6) for k, w in WATTS.items()}
            g = power / 3.6e6 * 1.2 * INTENSITY
            co2_g += g
            record = {
                "type": "interval", "t0": t1 - 1.0, "t1": t1, "joules": joules, "energy_j": power,
                "co2eq_g": g, "intensity": INTENSITY, "intensity_source": "table:country:DE:2024",
                "power_w": power,
            }  # fmt: skip
            fh.write(dumps(record) + "\n")
        kwh = {k: w * intervals / 3.6e6 for k, w in WATTS.items()}
        snapshot = {
            "duration_s": float(intervals), "energy_kwh": sum(kwh.values()),
            "energy_gpu_kwh": kwh["gpu:0"] + kwh["gpu:1"], "energy_cpu_kwh": kwh["cpu:package-0"],
            "energy_ram_kwh": kwh["cpu:dram-0"], "co2eq_kg": co2_g / 1000.0, "power_w": power,
            "intensity_gco2eq_per_kwh": INTENSITY, "zone": "DE", "intensity_source": "table:country:DE:2024",
            "methods": {k: "counter" for k in CHANNELS}, "pue": 1.2,
        }  # fmt: skip
        fh.write(dumps({"type": "final", "ended_at": "2025-01-12T00:00:00Z", "snapshot": snapshot}) + "\n")
    return path


CHILD = """
import resource, sys, time, io, contextlib
sys.path.insert(0, sys.argv[1])
from carbon_core import cli
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = cli.main(sys.argv[2:])
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print("RESULT", rc, wall, peak)
"""


def measure(tree: Path, args: list[str], timeout: float) -> Optional[tuple[float, float]]:
    """(wall s, peak RSS MiB) of ``carbon-core <args>`` with ``tree``'s carbon_core; None on timeout."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(tree), *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines or lines[-1][1] != "0":
        raise RuntimeError(f"report failed in {tree}: {proc.stderr[-2000:]}")
    return float(lines[-1][2]), float(lines[-1][3])


def _fmt(value: Optional[tuple[float, float]], timeout: float) -> tuple[str, str]:
    if value is None:
        return f"> {timeout:.0f} s", "-"
    return f"{value[0]:.2f} s", f"{value[1]:.0f} MiB"


def _ratio(base: Optional[tuple[float, float]], new: Optional[tuple[float, float]], i: int) -> str:
    if new is None:
        return "-"
    if base is None:
        return "baseline timed out"
    return f"{base[i] / new[i]:.1f}x"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    p.add_argument("--lines", type=int, default=1_000_000, help="lines of the one-node log (default 10^6)")
    p.add_argument("--baseline", type=Path, help="another carbon-core source tree to compare against")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds before a run counts as too slow")
    p.add_argument("--plot-sizes", default="2500,10000,40000", help="intervals per node for --plot")
    args = p.parse_args()
    lines = 2000 if args.quick else args.lines
    sizes = [200, 400] if args.quick else [int(s) for s in args.plot_sizes.split(",")]
    probe = subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True)
    trees: list[tuple[str, Path]] = [("this tree", ROOT)]
    if args.baseline:
        trees.insert(0, ("baseline", args.baseline.resolve()))
    rows: list[tuple[str, list[Optional[tuple[float, float]]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        big = write_log(d / "big.jsonl", lines)
        size_mb = big.stat().st_size / 1e6
        took = time.perf_counter() - t0
        print(f"generated {lines} lines ({size_mb:.0f} MB) in {took:.0f} s", file=sys.stderr)
        cases: list[tuple[str, list[str]]] = [
            (f"report, 1 log of {lines:,} lines", ["report", str(big)]),
            (f"report --json, 1 log of {lines:,} lines", ["report", "--json", str(big)]),
        ]
        if probe.returncode == 0:
            for n in sizes:
                logs = [str(write_log(d / f"n{n}-{k}.jsonl", n + 2, f"node{k}", k, k / 2)) for k in range(2)]
                plot = ["report", *logs, "--plot", str(d / "p.png")]
                cases.append((f"report --plot, 2 nodes x {n:,} intervals", plot))
        for name, cli_args in cases:
            results = []
            for label, tree in trees:
                print(f"{name}: {label} ...", file=sys.stderr, flush=True)
                results.append(measure(tree, cli_args, args.timeout))
            rows.append((name, results))
    columns = ["case"]
    for label, _ in trees:
        columns += [f"{label}: wall", f"{label}: peak RSS"]
    if args.baseline:
        columns += ["time ratio (baseline / this)", "RSS ratio (baseline / this)"]
    out = ["## Report at scale", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, results in rows:
        cells = [name]
        for r in results:
            cells += list(_fmt(r, args.timeout))
        if args.baseline:
            cells += [_ratio(results[0], results[1], 0), _ratio(results[0], results[1], 1)]
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        f"- The one-node log is {size_mb:.0f} MB for {lines:,} lines: "
        f"{size_mb / lines * 86400:.1f} MB a day at the default 1 s interval.",
        "- Peak RSS is the whole report process (Python, carbon-core, matplotlib when plotting).",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
