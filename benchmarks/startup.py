"""Start-up: import the tool, start a tracker, take the first reading, stop, as a whole process.

One child per (trial, tool), interleaved, after one untimed warm-up child per tool (so
that every tool's imports come from cached bytecode, as for a user). In the child: start
-> first snapshot -> stop (for CodeCarbon ``start(); stop()``, for Carbontracker
construction + one empty epoch + ``stop()``), the tracker class imported on the way. The
parent times the whole process, from spawn to exit, against a bare ``python`` doing
nothing. The import is timed in a bare interpreter of its own, as the first line of a
user's script pays it: the benchmark child has ``typing``, ``json`` and more loaded already.
"""

from __future__ import annotations

import importlib
import time

from _common import Section, Spread, emit, interleaved, main, run_child
from _trackers import open_tracker

IMPORTS = {"carbon-core": "carbon_core", "codecarbon": "codecarbon", "carbontracker": "carbontracker.tracker"}
TARGETS = {"import_s": 1 / 4, "start_s": 1 / 10}  # carbon-core / CodeCarbon


def child(args: list[str]) -> None:
    tool = args[0]
    if tool == "python":
        emit({})
        return
    importlib.import_module(IMPORTS[tool])
    t0 = time.perf_counter()
    handle = open_tracker(tool, 1.0)
    handle.start()
    if tool == "carbon-core":
        handle.t.snapshot()  # type: ignore[attr-defined]
    handle.stop()
    emit({"start_s": time.perf_counter() - t0})


def import_s(tool: str) -> float:
    """Seconds ``import <tool>`` takes as the first statement of a fresh interpreter."""
    code = (
        f"import time\nt0 = time.perf_counter()\nimport {IMPORTS[tool]}\n"
        "print('RESULT {\"import_s\": %r}' % (time.perf_counter() - t0))"
    )
    return float(run_child(["-c", code])["import_s"])


def run(quick: bool, tools: list[str]) -> Section:
    """Import and start-to-stop time of each tracker, as whole processes."""
    trials = 1 if quick else 7
    variants = ["python", *tools]
    for tool in variants if not quick else []:
        run_child([__file__, "--child", tool])  # warm-up: bytecode caches, page cache
    results: dict[str, list[dict[str, float]]] = {}
    for _, tool in interleaved(variants, trials):
        result = run_child([__file__, "--child", tool])
        if tool != "python":
            result["import_s"] = import_s(tool)
        results.setdefault(tool, []).append(result)

    bare = Spread.of([r["wall_s"] for r in results["python"]]).median
    section = Section(
        f"3. Start-up ({trials} interleaved trials per tool, ms: median (min … max))",
        ["tool", "import", "start → first snapshot → stop", "whole process, minus bare python"],
    )
    medians: dict[str, dict[str, float]] = {}
    for tool in tools:
        rs = results[tool]
        cols = {k: Spread.of([r[k] for r in rs]) for k in ("import_s", "start_s")}
        medians[tool] = {k: v.median for k, v in cols.items()}
        whole = Spread.of([r["wall_s"] - bare for r in rs])
        section.rows.append([tool, cols["import_s"].fmt(".3g", 1e3), cols["start_s"].fmt(".3g", 1e3),
                             whole.fmt(".3g", 1e3)])  # fmt: skip
    section.notes.append(f"A bare `python` process takes {bare * 1e3:.0f} ms here.")
    if "carbon-core" in medians and "codecarbon" in medians and not quick:
        for key, target in TARGETS.items():
            ratio = medians["carbon-core"][key] / medians["codecarbon"][key]
            what = "import" if key == "import_s" else "start → stop"
            verdict = "met" if ratio < target else f"MISSED ({ratio:.2f}, {ratio / target:.1f}x the target)"
            section.notes.append(
                f"Target: carbon-core {what} under {target:g} of CodeCarbon's: "
                f"it is {ratio:.3f} of it, {verdict}."
            )
    return section


if __name__ == "__main__":
    main(run, child)
