"""The GPU meters' cost per sample: one ``read()`` of the NVML and the AMD meter, side by side.

Each meter runs in a child of its own against its fake driver library (tests/fake_nvml,
tests/fake_amdsmi) through the real binding (pynvml, amdsmi), with 1 and with 8 GPUs whose
energy counters answer. A fake call costs well under a microsecond, so the figures are the
Python side of a read: the binding's wrapper code and the meter's bookkeeping. What a real
driver adds on top is measured on a real NVIDIA GPU in section 6 (NVML call cost); no AMD GPU
has run this benchmark.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from _common import TESTS, Section, Spread, child_env, emit, interleaved, main, per_call_ns, run_child

METERS = ("nvml", "amd")
GPUS = (1, 8)


def _environment(meter: str, gpus: int, folder: Path) -> dict[str, str]:
    """A child environment whose binding loads the fake library, with ``gpus`` counters."""
    sys.path.insert(0, str(TESTS))
    scenario = folder / f"{meter}-{gpus}.txt"
    if meter == "nvml":
        import fake_nvml

        lib = fake_nvml.build()
        fake_nvml.write_scenario(
            scenario,
            [fake_nvml.FakeGpu(f"GPU-{i:08d}-0000-0000-0000-000000000000", watts=300.0) for i in range(gpus)],
        )
        return fake_nvml.subprocess_env(lib, scenario, child_env())
    import fake_amdsmi

    root = fake_amdsmi.build()
    fake_amdsmi.write_scenario(
        scenario,
        [
            fake_amdsmi.FakeGpu(f"GPU-{i:016x}", watts=300.0, bdf=f"0000:{i + 1:02x}:00.0")
            for i in range(gpus)
        ],
    )
    return fake_amdsmi.subprocess_env(root, scenario, child_env())


def child(args: list[str]) -> None:
    meter_name, calls = args[0], int(args[1])
    from carbon_core.faults import FaultLog
    from carbon_core.meters.registry import meter_class

    meter = meter_class(meter_name)(FaultLog(), gpus="all", env={})
    assert all(c.method == "counter" for c in meter.channels), meter.channels
    ns = per_call_ns(meter.read, calls, batch=max(1, calls // 10))
    meter.close()
    emit({"ns": ns, "gpus": len(meter.channels)})


def run(quick: bool, tools: list[str]) -> Section:
    """Per-sample read cost of the NVML and AMD meters on their fake libraries."""
    section = Section(
        "7. GPU meter read cost per sample (fake driver libraries, µs: median (min … max))",
        ["meter", *(f"one read, {n} GPU{'s' if n > 1 else ''}" for n in GPUS)],
    )
    trials, calls = (1, 200) if quick else (5, 5000)
    results: dict[tuple[str, int], list[float]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        envs = {}
        for meter in METERS:
            for gpus in GPUS:
                try:
                    envs[meter, gpus] = _environment(meter, gpus, Path(tmp))
                except Exception as exc:  # no compiler, no binding installed
                    skipped[meter] = f"{type(exc).__name__}: {exc}"
        for _, key in interleaved([k for k in envs if k[0] not in skipped], trials):
            script = os.path.abspath(__file__)
            try:
                result = run_child([script, "--child", key[0], str(calls)], envs[key])
            except RuntimeError as exc:
                skipped[key[0]] = str(exc).splitlines()[-1]
                continue
            results.setdefault(key, []).append(result["ns"] / 1000.0)
    binding = {"nvml": "NVML (pynvml)", "amd": "AMD (amdsmi)"}
    for meter in METERS:
        if meter in skipped:
            section.rows.append([binding[meter], *(f"skipped: {skipped[meter][:120]}" for _ in GPUS)])
            continue
        section.rows.append([binding[meter], *(Spread.of(results[meter, n]).fmt(".3g") for n in GPUS)])
    section.notes.append(
        f"{trials} trial(s) of {calls} reads per meter and GPU count, each in its own process, interleaved; "
        "every GPU's energy counter answers (the counter method). The fake libraries answer in well under "
        "a microsecond: these are the binding's and the meter's own costs per sample, the part carbon-core "
        "controls. A real driver's call cost comes on top (NVML on a real GPU: section 6)."
    )
    section.notes.append(
        "The AMD meter also checks each counter against the power readout once, at start (0.5 s): not in "
        "these figures, which are per sample."
    )
    return section


if __name__ == "__main__":
    main(run, child)
