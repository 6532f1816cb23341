"""Memory: the peak resident set size each tracker adds to a training process.

One child per (trial, variant), interleaved. Every child imports torch first (a training
process has it loaded: what a tracker shares with it costs nothing extra), then starts
the tracker at a 1 s interval, lets it sample for a few seconds, stops it and reports
its peak RSS (``ru_maxrss``). Added = peak - the median peak of the same child without
a tracker.
"""

from __future__ import annotations

import time

from _common import Section, Spread, emit, interleaved, main, peak_rss_mib, run_child
from _trackers import open_tracker


def child(args: list[str]) -> None:
    tool, seconds = args[0], float(args[1])
    import torch  # noqa: F401 - the training process's own footprint

    handle = open_tracker(tool, 1.0)
    handle.start()
    time.sleep(seconds)
    handle.stop()
    emit({"peak_mib": peak_rss_mib()})


def run(quick: bool, tools: list[str]) -> Section:
    """Peak RSS added by each tracker to a process that has torch loaded."""
    seconds, trials = (1.0, 1) if quick else (3.0, 3)
    peaks: dict[str, list[float]] = {}
    for _, tool in interleaved(["none", *tools], trials):
        peaks.setdefault(tool, []).append(run_child([__file__, "--child", tool, str(seconds)])["peak_mib"])
    base = Spread.of(peaks["none"]).median
    section = Section(
        f"5. Memory: peak RSS added ({trials} interleaved trials, MiB: median (min … max))",
        ["tool", "peak RSS added"],
    )
    section.rows += [[tool, Spread.of([p - base for p in peaks[tool]]).fmt(".3g")] for tool in tools]
    section.notes.append(
        f"Baseline: `import torch` alone peaks at {base:.0f} MiB; each tracker ran {seconds:g} s."
    )
    return section


if __name__ == "__main__":
    main(run, child)
