"""Exactness on a known answer: scripted energy counters, and what each tool reports.

Each tool runs in a child that sees a fake powercap tree (tests/powercap.py) and the fake
``libnvidia-ml.so.1`` (tests/fake_nvml) through the real pynvml. After the tracker has
started, the child advances the counters by known amounts (CPU package, DRAM, GPU) and,
after a few more intervals, stops the tracker. The truth is the counter advance; for a
counter-based reading the error must be zero. The GPU also reports a constant power, the
window's mean, for tools that integrate power samples. A stub ``nvidia-smi`` is put on
PATH: CodeCarbon looks for NVIDIA GPUs only where ``nvidia-smi --help`` runs.

Pointing the tools at the fake tree: carbon-core reads ``CARBON_POWERCAP_ROOT``.
CodeCarbon (its ``IntelRAPL(rapl_dir=...)`` is not reachable from the tracker's options)
and Carbontracker (module constant ``RAPL_DIR``) have no option, so the child patches
their default path; nothing else of theirs is changed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import TESTS, Section, child_env, emit, main, run_child
from _trackers import open_tracker

TRUTH_J = {"cpu": 150.0, "ram": 30.0, "gpu": 600.0}  # advance of package-0, dram, the GPU
GPU_UUID = "GPU-00000000-1111-2222-3333-444444444444"
START_MJ = 5_000_000
START_UJ = 1_000_000_000


def _scenario(path: Path, energy_mj: int, power_w: float) -> None:
    import fake_nvml

    gpu = fake_nvml.FakeGpu(GPU_UUID, energy_mj=[energy_mj], power_mw=[int(power_w * 1000)])
    fake_nvml.write_scenario(path, [gpu])


def _point_at(tool: str, root: Path) -> None:
    if tool == "codecarbon":
        from codecarbon.core import cpu

        init = cpu.IntelRAPL.__init__

        def patched(self: object, rapl_dir: str = "", *args: object, **kw: object) -> None:
            init(self, str(root), *args, **kw)

        cpu.IntelRAPL.__init__ = patched
        cpu.is_rapl_available.__defaults__ = (str(root),)
    elif tool == "carbontracker":
        from carbontracker.components.cpu import intel

        intel.RAPL_DIR = f"{root}/"


def child(args: list[str]) -> None:
    tool, root, scenario, settle = args[0], Path(args[1]), Path(args[2]), float(args[3])
    sys.path.insert(0, str(TESTS))
    _point_at(tool, root)
    handle = open_tracker(tool, 1.0)
    handle.start()
    time.sleep(settle)
    for zone, joules in (("intel-rapl:0", TRUTH_J["cpu"]), ("intel-rapl:0:2", TRUTH_J["ram"])):
        (root / zone / "energy_uj").write_text(f"{START_UJ + int(joules * 1e6)}\n")
    _scenario(scenario, START_MJ + int(TRUTH_J["gpu"] * 1000), TRUTH_J["gpu"] / (2 * settle))
    time.sleep(settle)
    emit({"joules": handle.stop()})


def _measure(tool: str, lib: Path, settle: float, fake_powercap: Any, gpu: bool) -> dict[str, Any]:
    """Joules per component that ``tool`` reports on a fresh fake tree (and fake GPU)."""
    import fake_nvml

    with tempfile.TemporaryDirectory() as tmp:
        tree = fake_powercap(Path(tmp) / "sys")
        for zone in ("package-0", "dram-0"):
            tree.set(zone, START_UJ)
        scenario = Path(tmp) / "nvml.txt"
        _scenario(scenario, START_MJ, TRUTH_J["gpu"] / (2 * settle))
        path = os.environ["PATH"]
        if gpu:  # CodeCarbon looks for NVIDIA GPUs only where `nvidia-smi --help` runs
            smi = Path(tmp) / "bin" / "nvidia-smi"
            smi.parent.mkdir()
            smi.write_text("#!/bin/sh\nexit 0\n")
            smi.chmod(0o755)
            path = f"{smi.parent}:{path}"
        env = child_env({"CARBON_POWERCAP_ROOT": str(tree.root), "PATH": path})
        if gpu:
            env = fake_nvml.subprocess_env(lib, scenario, env)
        args = [__file__, "--child", tool, str(tree.root), str(scenario), str(settle)]
        joules: dict[str, Any] = run_child(args, env)["joules"]
        return joules


def run(quick: bool, tools: list[str]) -> Section:
    """Energy each tool reports for scripted counter advances (fake RAPL + fake NVML)."""
    sys.path.insert(0, str(TESTS))
    import fake_nvml
    from powercap import FakePowercap

    settle = 1.5 if quick else 2.5
    lib = fake_nvml.build()
    section = Section(
        "4. Exactness on a known answer (fake RAPL + fake NVML, counters advanced by a script)",
        ["tool", *(f"{c.upper()} J (truth {t:g})" for c, t in TRUTH_J.items()), "worst error"],
    )
    for tool in tools:
        try:
            got = _measure(tool, lib, settle, FakePowercap, gpu=True)
        except RuntimeError:  # CodeCarbon calls NVML entry points the fake does not implement
            section.notes.append(
                f"{tool} fails on the fake GPU: it calls NVML functions the fake library does not "
                "implement (nvmlDeviceGetMemoryInfo, nvmlDeviceGetEnforcedPowerLimit, ...); it ran "
                "again without a GPU."
            )
            got = {**_measure(tool, lib, settle, FakePowercap, gpu=False), "gpu": None}
        cells, worst = [], 0.0
        for comp, truth in TRUTH_J.items():
            value = got.get(comp)
            if value is None:
                cells.append("not measured")
                continue
            err = (value - truth) / truth
            worst = max(worst, abs(err))
            cells.append(f"{value:.6g} ({err * 100:+.3g} %)")
        section.rows.append([tool, *cells, f"{worst * 100:.3g} %"])
    section.notes += [
        f"Each tracker at a 1 s interval; the counters advance {settle:g} s after start and the "
        f"tracker stops {settle:g} s later. The GPU's power reading is the window's mean power "
        f"({TRUTH_J['gpu'] / (2 * settle):g} W), so a tool integrating power could be exact too.",
        "CodeCarbon counts the CPU from RAPL package counters but, by default, estimates RAM "
        "instead of reading DRAM; Carbontracker samples RAPL and NVML as power (1 s windows) "
        "and multiplies the mean power by the epoch's duration.",
    ]
    return section


if __name__ == "__main__":
    main(run, child)
