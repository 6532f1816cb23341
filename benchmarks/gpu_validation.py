"""On a real NVIDIA GPU: counter vs integrated power, NVML call costs, callback overhead.

Skips cleanly (a one-line section, exit 0) where torch sees no CUDA GPU or NVML does not
start. On a GPU, each part runs in its own child process:

1. Window: a CUDA training loop runs for a fixed time on GPU 0. Over the same window:
   the NVML total-energy counter (the reference), ``nvmlDeviceGetPowerUsage`` integrated
   (trapezoid) at 100 ms and at 1 s, carbon-core's ``Tracker`` and CodeCarbon's
   ``OfflineEmissionsTracker`` (both at 1 s, both started just before and stopped just
   after the counter reads).
2. NVML call cost: median µs of each call the NVML meter makes (per read: the counter,
   or the power where there is no counter; at construction: the others).
3. Overhead: a Lightning ``Trainer`` fitting a GPU model, with no tracker, with
   ``carbon_lightning.CarbonCallback`` and with CodeCarbon around ``fit``; the timed span
   is from ``on_train_start`` to ``on_train_end``; trials interleaved.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from _common import Section, Spread, emit, installed, interleaved, main, run_child
from _trackers import open_tracker

NVML_CALLS = (
    "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage", "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetIndex", "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
)  # fmt: skip


def gpu_missing() -> str | None:
    """Why this machine cannot run the GPU validation, or None."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "torch sees no CUDA GPU"
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception as exc:  # no torch, no pynvml, no driver: all mean "no GPU here"
        return f"no usable NVIDIA GPU ({type(exc).__name__}: {exc})"
    return None


def _workload(size: int) -> Any:
    """One training step of a wide MLP on cuda:0 (a closure)."""
    import torch

    model = torch.nn.Sequential(
        torch.nn.Linear(size, size), torch.nn.ReLU(), torch.nn.Linear(size, size), torch.nn.ReLU(),
        torch.nn.Linear(size, 10),
    ).cuda()  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(1024, size, device="cuda"), torch.randint(0, 10, (1024,), device="cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def window(seconds: float, tools: list[str]) -> dict[str, Any]:
    import pynvml
    import torch

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    step = _workload(4096)
    for _ in range(20):
        step()
    torch.cuda.synchronize()
    samples: list[tuple[float, float]] = []  # (monotonic s, W)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))
            done.wait(0.1)

    trackers = [open_tracker(tool, 1.0) for tool in tools]
    for t in trackers:
        t.start()
    sampler = threading.Thread(target=sample, daemon=True)
    e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    sampler.start()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        step()
    torch.cuda.synchronize()
    e1 = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    done.set()
    sampler.join()
    reported = {t.tool: t.stop().get("gpu") for t in trackers}

    def trapezoid(points: list[tuple[float, float]]) -> float:
        return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(points, points[1:]))

    every_s = [samples[i] for i in range(0, len(samples), 10)]
    return {
        "counter_j": (e1 - e0) / 1000.0,
        "power_100ms_j": trapezoid(samples),
        "power_1s_j": trapezoid(every_s),
        "reported_j": reported,
        "gpu": pynvml.nvmlDeviceGetName(handle),
    }


def call_costs(calls: int) -> dict[str, float]:
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    args: dict[str, tuple[Any, ...]] = {"nvmlDeviceGetCount": (), "nvmlDeviceGetHandleByIndex": (0,)}
    out = {}
    for name in NVML_CALLS:
        fn, a = getattr(pynvml, name), args.get(name, (handle,))
        try:
            fn(*a)
        except pynvml.NVMLError:
            continue  # not supported on this GPU
        times = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn(*a)
            times.append(time.perf_counter_ns() - t0)
        out[name] = statistics.median(times) / 1000.0
    return out


def fit(variant: str, steps: int) -> float:
    """Seconds from on_train_start to on_train_end of a Lightning fit on the GPU."""
    import lightning.pytorch as pl
    import torch

    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(2048, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 10)
            )

        def training_step(self, batch: Any, _: int) -> Any:
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    class Clock(pl.Callback):
        def on_train_start(self, *_: Any) -> None:
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_train_end(self, *_: Any) -> None:
            torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self.t0

    data = torch.utils.data.TensorDataset(torch.randn(512 * 8, 2048), torch.randint(0, 10, (512 * 8,)))
    loader = torch.utils.data.DataLoader(data, batch_size=512)
    clock = Clock()
    callbacks: list[Any] = [clock]
    if variant == "carbon-core":
        from carbon_lightning import CarbonCallback

        callbacks.append(CarbonCallback())
    trainer = pl.Trainer(
        accelerator="gpu", devices=1, max_steps=steps, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    tracker = open_tracker("codecarbon" if variant == "codecarbon" else "none", None)
    tracker.start()
    trainer.fit(Model(), loader)
    tracker.stop()
    return float(clock.seconds)


def child(args: list[str]) -> None:
    kind = args[0]
    if kind == "window":
        emit(window(float(args[1]), args[2:]))
    elif kind == "calls":
        emit(call_costs(int(args[1])))
    else:
        emit({"seconds": fit(args[1], int(args[2]))})


def run(quick: bool, tools: list[str]) -> Section:
    """Real-GPU validation: NVML counter vs power, NVML call costs, callback overhead."""
    section = Section("6. Real GPU", ["measurement", "result"])
    missing = gpu_missing()
    if missing:
        section.rows.append(["all", f"skipped: {missing}"])
        return section
    seconds, calls, steps, trials = (3.0, 50, 20, 1) if quick else (60.0, 2000, 1500, 5)
    win = run_child([__file__, "--child", "window", str(seconds), *tools])
    ref = win["counter_j"]
    section.title += f": {win['gpu']}"
    section.rows.append([f"NVML counter over a {seconds:g} s training window (reference)", f"{ref:.1f} J"])
    rows = [
        ("power integrated every 100 ms", win["power_100ms_j"]),
        ("power integrated every 1 s", win["power_1s_j"]),
    ]
    rows += [(f"{tool} @1 s, GPU energy", j) for tool, j in win["reported_j"].items()]
    for name, joules in rows:
        section.rows.append(
            [
                name,
                "no GPU energy" if joules is None else f"{joules:.1f} J ({(joules / ref - 1) * 100:+.2f} %)",
            ]
        )
    for name, us in run_child([__file__, "--child", "calls", str(calls)]).items():
        section.rows.append([f"{name}, median of {calls} calls", f"{us:.1f} µs"])

    variants = ["none"] + [v for v in ("carbon-core", "codecarbon") if v in tools]
    if "carbon-core" in variants and not installed("carbon_lightning"):
        variants.remove("carbon-core")
        section.notes.append("carbon_lightning is not importable: the callback overhead was not measured.")
    fits: dict[str, list[float]] = {}
    for _, variant in interleaved(variants, trials):
        fits.setdefault(variant, []).append(
            run_child([__file__, "--child", "fit", variant, str(steps)])["seconds"]
        )
    base = Spread.of(fits["none"]).median
    for variant, values in fits.items():
        what = {
            "none": "no tracker",
            "carbon-core": "CarbonCallback()",
            "codecarbon": "CodeCarbon around fit",
        }
        slow = Spread.of([v / base - 1 for v in values]).fmt("+.2f", 100)
        section.rows.append(
            [
                f"Lightning fit, {steps} steps, {what[variant]}",
                f"{Spread.of(values).fmt('.2f')} s; slowdown {slow} %",
            ]
        )
    section.notes.append(
        f"Overhead: {trials} interleaved trials, median (min … max). "
        "'power integrated every 1 s' uses every 10th 100 ms sample."
    )
    return section


if __name__ == "__main__":
    main(run, child)
