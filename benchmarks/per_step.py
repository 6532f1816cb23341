"""Per-step cost on the training thread, and the samplers' own CPU time.

- Per step (carbon-core; the others have no per-step call): median ns of what an adapter
  does every step, ``snapshot()`` + ``should_stop``, and with ``progress()`` too, timed in
  batches of 1000 calls while the sampler runs; and what the adapters add for issue 19: a
  phase switch into ``train`` and back (``phases.open`` + ``phases.close``, the split is on the
  sampler thread) and counting a step's samples and tokens (``count()``).
- Background CPU: each tool at a 1 s interval in an idle child process; the CPU time of
  every thread but the (sleeping) main one, per second of run, and for carbon-core per
  sampler interval. Trials interleaved; median (min … max).
"""

from __future__ import annotations

import time

from _common import Section, Spread, background_cpu_s, emit, interleaved, main, per_call_ns, run_child
from _trackers import open_tracker

from carbon_core.faults import FaultLog
from carbon_core.phases import PhaseClock, PhaseSplit


def child(args: list[str]) -> None:
    tool, seconds = args[0], float(args[1])
    handle = open_tracker(tool, 1.0)
    handle.start()
    result = {}
    if tool == "carbon-core":
        t = handle.t  # type: ignore[attr-defined]
        calls = int(seconds * 200_000)

        def check() -> None:
            t.snapshot()
            t.should_stop  # noqa: B018 - the property read is what is measured

        result["check_ns"] = per_call_ns(check, calls)
        result["step_ns"] = per_call_ns(lambda: handle.step(5, 10), calls)
        result["count_ns"] = per_call_ns(lambda: t.count(samples=32, tokens=4096), calls)
        # the run's own code on a clock of its own, so that millions of switches do not queue for
        # the run's sampler (and the background CPU below); the sampler's side timed apart
        phases = PhaseClock(FaultLog())
        result["phase_ns"] = per_call_ns(lambda: phases.close(phases.open("train")), calls)
        switches = len(phases.switches)
        split, start = PhaseSplit(0.0), time.perf_counter()
        split.add(0.0, time.monotonic(), 1.0, 1.0, phases.switches)
        result["split_ns"] = (time.perf_counter() - start) / switches * 1e9
        result["empty_ns"] = per_call_ns(lambda: None, calls)
    time.sleep(1.2)  # the first interval (lazy imports, first reads) is start-up, not steady state
    cpu0, t0 = background_cpu_s(), time.monotonic()
    intervals0 = getattr(getattr(handle, "t", None), "intervals", 0)
    time.sleep(seconds)
    result["cpu_per_s"] = (background_cpu_s() - cpu0) / (time.monotonic() - t0)
    if tool == "carbon-core":
        result["cpu_per_interval"] = (background_cpu_s() - cpu0) / max(1, handle.t.intervals - intervals0)  # type: ignore[attr-defined]
    handle.stop()
    emit(result)


def run(quick: bool, tools: list[str]) -> Section:
    """Per-step cost on the training thread and the samplers' own CPU time."""
    seconds, trials = (1.5, 1) if quick else (6.0, 3)
    results: dict[str, list[dict[str, float]]] = {}
    for _, tool in interleaved(tools, trials):
        results.setdefault(tool, []).append(run_child([__file__, "--child", tool, str(seconds)]))

    section = Section(
        "2. Per-step cost and sampler CPU time",
        ["tool", "per step: snapshot + should_stop, ns", "per step: + progress(), ns",
         "phase switch into train and back, ns", "count(samples, tokens), ns",
         "sampler: split per switch, ns",
         "background CPU per second of run, ms", "sampler CPU per interval, ms"],
    )  # fmt: skip
    for tool, rs in results.items():

        def col(key: str, scale: float = 1.0, rs: list[dict[str, float]] = rs) -> str:
            values = [r[key] for r in rs if key in r]
            return Spread.of(values).fmt(".3g", scale) if values else "no per-step call"

        section.rows.append([tool, col("check_ns"), col("step_ns"), col("phase_ns"), col("count_ns"),
                             col("split_ns"), col("cpu_per_s", 1e3),
                             col("cpu_per_interval", 1e3) if tool == "carbon-core" else "-"])  # fmt: skip
    empty_ns = Spread.of([r["empty_ns"] for r in results.get("carbon-core", [{"empty_ns": 0.0}])]).median
    section.notes.append(
        f"All at a 1 s interval, {seconds:g} s per trial, {trials} trial(s). Background CPU is the "
        "process's CPU time outside the (idle) main thread, so it includes whatever helper threads "
        "a tool starts; the first interval is left out. CodeCarbon and Carbontracker need no call "
        "per training step. Per-step figures include the benchmark's own Python call overhead: "
        f"an empty call costs {empty_ns:.0f} ns here."
    )
    return section


if __name__ == "__main__":
    main(run, child)
