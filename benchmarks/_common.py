"""What every benchmark shares: the command line, child processes, timing, statistics, tables.

Each benchmark measures in child processes (one per trial and variant, interleaved), so a
tracker's threads, imports and memory never leak from one measurement into the next.
A child prints one line ``RESULT <json>``; :func:`run_child` returns that object.

Nothing may leave the machine: every child gets ``HTTP(S)_PROXY=http://127.0.0.1:9``, so
any HTTP call a tool makes (Carbontracker geolocates by IP on every start) is refused
at once by the local port instead of waiting on DNS.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TESTS = ROOT / "tests"  # FakePowercap (tests/powercap.py) and the fake NVML library
TOOLS = ("carbon-core", "codecarbon", "carbontracker")
_MODULES = {"carbon-core": "carbon_core", "codecarbon": "codecarbon", "carbontracker": "carbontracker"}
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail at once


def installed(tool: str) -> bool:
    return importlib.util.find_spec(_MODULES.get(tool, tool)) is not None


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: offline, quiet, no run logs, no host GPU selection."""
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' imports come from cached bytecode
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[key] = DEAD_PROXY
    env.update(
        NO_PROXY="", no_proxy="", CARBON_LOG_DIR="off", CODECARBON_LOG_LEVEL="error",
        PYTHONWARNINGS="ignore", TF_CPP_MIN_LOG_LEVEL="3",
    )  # fmt: skip
    env.update(extra or {})
    return env


def run_child(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
    """Run ``python *args``; return its ``RESULT`` object plus ``wall_s`` (spawn to exit)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], env=env or child_env(), capture_output=True, text=True,
        timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-20000:]
        raise RuntimeError(f"child {' '.join(args)} failed (rc={proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result["wall_s"] = wall
    return result


def emit(result: dict[str, Any]) -> None:
    """The child's answer to run_child (always the last line it prints)."""
    print("RESULT " + json.dumps(result), flush=True)


def interleaved(variants: Sequence[Any], trials: int) -> Iterator[tuple[int, Any]]:
    """Every variant once per trial, the order rotated each trial so drift hits all alike."""
    for trial in range(trials):
        k = trial % len(variants)
        for variant in [*variants[k:], *variants[:k]]:
            yield trial, variant


@dataclass(frozen=True)
class Spread:
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(min(values), statistics.median(values), max(values))

    def fmt(self, spec: str = ".3g", scale: float = 1.0) -> str:
        lo, mid, hi = (format(v * scale, spec) for v in (self.min, self.median, self.max))
        return f"{mid} ({lo} … {hi})"


def per_call_ns(fn: Callable[[], object], calls: int, batch: int = 1000) -> float:
    """Median over batches of the mean cost of one call, in nanoseconds."""
    means = []
    for _ in range(max(1, calls // batch)):
        t0 = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        means.append((time.perf_counter_ns() - t0) / batch)
    return statistics.median(means)


def background_cpu_s() -> float:
    """CPU seconds used so far by every thread of this process but the calling one."""
    return time.process_time() - time.thread_time()


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


@dataclass
class Section:
    """One benchmark's table, as it goes into RESULTS.md."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"## {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        out.append("|" + "---|" * len(self.columns))
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    p.add_argument(
        "--tools", default=",".join(TOOLS),
        help="comma-separated subset of carbon-core,codecarbon,carbontracker (uninstalled ones are skipped)",
    )  # fmt: skip
    p.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    return p


def selected_tools(spec: str, notes: list[str] | None = None) -> list[str]:
    """The requested tools that are installed; the others are named in notes."""
    tools = []
    for tool in (t.strip() for t in spec.split(",") if t.strip()):
        if tool not in TOOLS:
            raise SystemExit(f"--tools: unknown tool {tool!r} (known: {', '.join(TOOLS)})")
        if installed(tool):
            tools.append(tool)
        elif notes is not None:
            notes.append(f"{tool} is not installed here: skipped.")
    return tools


def main(run: Callable[[bool, list[str]], Section], child: Callable[[list[str]], None]) -> None:
    """The entry point of a benchmark script: a child run, or the whole benchmark."""
    args = parser(run.__doc__ or "").parse_args()
    if args.child is not None:
        child(args.child)
        return
    notes: list[str] = []
    section = run(args.quick, selected_tools(args.tools, notes))
    section.notes += notes
    print(section.markdown())
