"""Training overhead: a fixed CPU training loop, with no tracker and with each tracker.

One child process per (trial, variant), variants interleaved. The child builds a tiny MLP,
warms it up, starts the tracker, times the training loop alone (``step`` of the tracker
after every optimiser step, see _trackers), then stops the tracker. Start and stop are
not in the timed window (see startup.py). Reported: slowdown = loop time / median loop
time without a tracker - 1, over the trials: median (min … max).
"""

from __future__ import annotations

import time

from _common import Section, Spread, emit, interleaved, main, run_child
from _trackers import DEFAULT_INTERVAL_S, label, open_tracker

TARGET = 0.005  # carbon-core: under 0.5 %


def train(steps: int, tool: str, interval_s: float | None) -> tuple[float, float]:
    """Wall and process-CPU seconds of ``steps`` optimiser steps of a tiny MLP, the tracker running."""
    import torch

    torch.set_num_threads(1)  # steadier on a shared machine; leaves a core for the samplers
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 128), torch.randint(0, 10, (64,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(min(200, steps)):  # warm-up: allocator, kernels
        step()
    tracker = open_tracker(tool, interval_s)
    tracker.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        step()
        tracker.step(i + 1, steps)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    tracker.stop()
    return elapsed, cpu


def child(args: list[str]) -> None:
    tool, interval, steps = args
    wall, cpu = train(int(steps), tool, None if interval == "default" else float(interval))
    emit({"seconds": wall, "cpu_s": cpu})


def variants(tools: list[str]) -> list[tuple[str, float | None]]:
    """No tracker; each tool at its default interval, and at 1 s where that differs."""
    out: list[tuple[str, float | None]] = [("none", None)]
    for tool in tools:
        out.append((tool, None))
        if DEFAULT_INTERVAL_S[tool] != 1.0:
            out.append((tool, 1.0))
    return out


def _verdict(wall: float, cpu: float, base: dict[str, Spread]) -> str:
    """The target verdict, or why this run cannot resolve it."""
    noise = {k: (b.max - b.min) / b.median for k, b in base.items()}
    parts = []
    for name, slow, key in (("wall", wall, "seconds"), ("CPU", cpu, "cpu_s")):
        if noise[key] > 4 * TARGET:
            parts.append(
                f"{name} time {slow * 100:+.2f} %, unresolvable here "
                f"(no-tracker runs spread {noise[key] * 100:.1f} %)"
            )
        else:
            parts.append(f"{name} time {slow * 100:+.2f} %: " + ("met" if slow < TARGET else "MISSED"))
    return "Target for carbon-core, median slowdown < 0.5 %: " + "; ".join(parts) + "."


def run(quick: bool, tools: list[str]) -> Section:
    """Training overhead of each tracker on a fixed CPU training loop."""
    steps, trials = (30, 1) if quick else (3000, 5)
    runs: dict[tuple[str, float | None], list[dict[str, float]]] = {}
    for _, (tool, interval) in interleaved(variants(tools), trials):
        arg = "default" if interval is None else str(interval)
        runs.setdefault((tool, interval), []).append(run_child([__file__, "--child", tool, arg, str(steps)]))

    base = {k: Spread.of([r[k] for r in runs[("none", None)]]) for k in ("seconds", "cpu_s")}
    section = Section(
        f"1. Training overhead ({steps} steps of a tiny MLP on the CPU, {trials} interleaved trials)",
        ["variant", "loop wall time, s", "wall-time slowdown", "process CPU time, s", "CPU-time slowdown"],
    )
    for (tool, interval), rs in runs.items():
        row = [label(tool, interval)]
        slow = {}
        for key in ("seconds", "cpu_s"):
            slow[key] = Spread.of([r[key] / base[key].median - 1 for r in rs])
            row += [Spread.of([r[key] for r in rs]).fmt(".2f"), slow[key].fmt("+.2f", 100) + " %"]
        section.rows.append(row)
        if tool == "carbon-core" and not quick:
            section.notes.append(_verdict(slow["seconds"].median, slow["cpu_s"].median, base))
    section.notes.append(
        "Median (min … max) over the trials. torch runs one thread. Start and stop are outside the timed "
        "loop (see start-up). CPU time (all threads of the process, the tracker's included) is far "
        "less disturbed than wall time by other load on the machine."
    )
    return section


if __name__ == "__main__":
    main(run, child)
