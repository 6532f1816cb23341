"""Hardware faults: RAPL files that vanish, become unreadable, hold garbage or go backwards;
an NVML GPU that is lost, answers NOT_SUPPORTED, or a driver that fails to start.

Each test runs a real Tracker (real sampler thread, real meters) on the fakes: the energy
measured up to the fault is kept, the rest of the hardware goes on being measured, the
fault costs one warning, and nothing raises into the caller.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from fake_nvml import DRIVER_NOT_LOADED, GPU_IS_LOST, NO_PERMISSION, NOT_SUPPORTED, UNKNOWN, FakeGpu, fail
from fake_nvml.plugin import FakeNvml
from powercap import FakePowercap, write_attribute
from support import wait_for

from carbon_core import Tracker
from carbon_core.accounting import J_PER_KWH
from carbon_core.meters.base import Channel, Meter
from carbon_core.runlog import read_records

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]

UUID = [f"GPU-{i}{i}{i}{i}{i}{i}{i}{i}-aaaa-bbbb-cccc-dddddddddd0{i}" for i in range(3)]
H100 = "NVIDIA H100 80GB HBM3"


def channel_joules(log_dir: Path) -> dict[str, float]:
    """Cumulative joules per channel at the last interval of the (only) run log."""
    (path,) = log_dir.glob("*.jsonl")
    records = list(read_records(path))
    assert records[-1]["type"] == "final", "the run log was finalised"
    intervals = [r for r in records if r["type"] == "interval"]
    return intervals[-1]["joules"]


def intervals_after(tracker: Tracker, n: int = 2) -> None:
    """Wait until the sampler has taken ``n`` more readings."""
    start = tracker.intervals
    assert wait_for(lambda: tracker.intervals >= start + n)


# -- RAPL -------------------------------------------------------------------------------


def _vanish(zone: Path) -> None:
    (zone / "energy_uj").unlink()


def _unreadable(zone: Path) -> None:  # root reads a chmod 000 file: make reading fail otherwise
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()


def _restore(zone: Path, uj: int) -> None:
    f = zone / "energy_uj"
    if f.is_dir():
        f.rmdir()
    write_attribute(f, f"{uj}\n")


RAPL_FAULTS: Mapping[str, Callable[[Path], None]] = {
    "vanished": _vanish,
    "unreadable": _unreadable,
    "garbage-text": lambda z: write_attribute(z / "energy_uj", "\x00\xffgarbage\n"),
    "empty": lambda z: write_attribute(z / "energy_uj", ""),
    "float": lambda z: write_attribute(z / "energy_uj", "1.5e7\n"),
    "negative": lambda z: write_attribute(z / "energy_uj", "-5\n"),
    "beyond-range": lambda z: write_attribute(z / "energy_uj", f"{10**18}\n"),
}


@pytest.fixture
def rapl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePowercap:
    tree = FakePowercap(tmp_path / "sys", sockets=2, dram=True)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    return tree


def _rapl_tracker(tmp_path: Path) -> Tracker:
    return Tracker(interval_s=0.03, intensity=100.0, gpus="none", meters=["rapl"], log_dir=tmp_path / "log")


@pytest.mark.parametrize("fault", list(RAPL_FAULTS))
def test_rapl_counter_fault_keeps_energy_and_other_zones(
    fault: str, rapl: FakePowercap, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carbon_core")
    tracker = _rapl_tracker(tmp_path).start()
    rapl.add("package-0", 10_000_000)
    rapl.add("package-1", 10_000_000)
    rapl.add("dram-0", 1_000_000)
    assert wait_for(lambda: tracker.snapshot().energy_cpu_kwh * J_PER_KWH >= 20 - 1e-9)
    before = tracker.snapshot()

    RAPL_FAULTS[fault](rapl.zones["package-0"])
    intervals_after(tracker)
    rapl.add("package-1", 5_000_000)  # the other socket goes on being measured
    intervals_after(tracker, 3)
    during = tracker.snapshot()
    assert during.energy_cpu_kwh >= before.energy_cpu_kwh  # never goes down
    # the counter comes back, 4 J further on: the energy drawn meanwhile is counted once
    _restore(rapl.zones["package-0"], 14_000_000)
    rapl.add("package-1", 3_000_000)
    intervals_after(tracker)
    final = tracker.stop()

    joules = channel_joules(tmp_path / "log")
    assert joules["cpu:package-1"] == pytest.approx(18.0)
    assert joules["cpu:dram-0"] == pytest.approx(1.0)
    assert joules["cpu:package-0"] == pytest.approx(14.0)
    assert final.energy_cpu_kwh * J_PER_KWH == pytest.approx(32.0)
    rapl_warnings = [w for w in final.warnings if "RAPL" in w]
    assert len(rapl_warnings) == 1 and "package-0" in rapl_warnings[0], final.warnings
    assert len([r for r in caplog.records if "RAPL" in r.getMessage()]) == 1


def test_rapl_counter_going_backwards_counts_nothing_then_rebases(rapl: FakePowercap, tmp_path: Path) -> None:
    tracker = _rapl_tracker(tmp_path).start()
    rapl.add("package-0", 10_000_000)
    assert wait_for(lambda: tracker.snapshot().energy_cpu_kwh * J_PER_KWH >= 10 - 1e-9)
    rapl.set("package-0", 1_000_000)  # back from 10 J to 1 J: a reset, not a wrap
    intervals_after(tracker)
    rapl.add("package-0", 2_000_000)
    rapl.add("package-1", 3_000_000)
    intervals_after(tracker)
    rapl.set("package-0", 500_000)  # and again: still one warning
    intervals_after(tracker)
    final = tracker.stop()
    joules = channel_joules(tmp_path / "log")
    assert joules["cpu:package-0"] == pytest.approx(12.0)
    assert joules["cpu:package-1"] == pytest.approx(3.0)
    assert len([w for w in final.warnings if "went backwards" in w]) == 1


def test_rapl_wrap_is_not_a_fault(rapl: FakePowercap, tmp_path: Path) -> None:
    max_range = int((rapl.zones["package-0"] / "max_energy_range_uj").read_text())
    rapl.set("package-0", max_range - 2_000_000)
    tracker = _rapl_tracker(tmp_path).start()
    rapl.set("package-0", 3_000_000)  # wrapped: 2 J + 3 J
    intervals_after(tracker)
    final = tracker.stop()
    assert channel_joules(tmp_path / "log")["cpu:package-0"] == pytest.approx(5.0)
    assert not [w for w in final.warnings if "RAPL" in w]


def test_whole_powercap_tree_vanishes(rapl: FakePowercap, tmp_path: Path) -> None:
    tracker = _rapl_tracker(tmp_path).start()
    rapl.add("package-0", 7_000_000)
    assert wait_for(lambda: tracker.snapshot().energy_cpu_kwh * J_PER_KWH >= 7 - 1e-9)
    shutil.rmtree(rapl.base)
    intervals_after(tracker, 3)
    final = tracker.stop()
    assert final.energy_cpu_kwh * J_PER_KWH == pytest.approx(7.0)
    # one warning per zone, not per interval
    assert len([w for w in final.warnings if "RAPL" in w]) == 4


def test_rapl_unreadable_at_start_falls_back_to_the_estimate(rapl: FakePowercap) -> None:
    for zone in rapl.zones.values():
        _unreadable(zone)
    with Tracker(interval_s=0.03, intensity=100.0, gpus="none", log_dir="off") as tracker:
        intervals_after(tracker)
    final = tracker.snapshot()
    assert [m for c, m in final.methods.items() if c.startswith("cpu")] == ["estimated"]
    assert final.energy_cpu_kwh is not None


# -- NVML -------------------------------------------------------------------------------


def _nvml_tracker(tmp_path: Path, **kw: Any) -> Tracker:
    kw.setdefault("meters", ["nvml", "cpu-estimate"])
    return Tracker(interval_s=0.03, intensity=100.0, gpus="all", log_dir=tmp_path / "log", **kw)


def _run_until_settled(tracker: Tracker, reads: int = 8) -> Any:
    tracker.start()
    intervals_after(tracker, reads)  # more reads than any scripted sequence has steps
    return tracker.stop()


@pytest.mark.parametrize(
    "code", [GPU_IS_LOST, NOT_SUPPORTED, UNKNOWN], ids=["lost", "not-supported", "unknown"]
)
def test_gpu_counter_fails_mid_run(nvml_fake: FakeNvml, tmp_path: Path, code: int) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, energy_mj=[0, 1_000, 2_000, fail(code)]),
            FakeGpu(UUID[1], H100, energy_mj=[0, 500, 1_500, 3_000, 4_500]),
        ]
    )
    final = _run_until_settled(_nvml_tracker(tmp_path))
    joules = channel_joules(tmp_path / "log")
    assert joules["gpu:0"] == pytest.approx(2.0)  # what it measured before it was lost
    assert joules["gpu:1"] == pytest.approx(4.5)  # the other GPU goes on
    assert final.energy_gpu_kwh * J_PER_KWH == pytest.approx(6.5)
    assert final.energy_cpu_kwh is not None  # the CPU is still measured
    gpu_warnings = [w for w in final.warnings if "gpu:0" in w]
    assert len(gpu_warnings) == 1 and "no longer measured" in gpu_warnings[0]


def test_gpu_power_readout_fails_mid_run(nvml_fake: FakeNvml, tmp_path: Path) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, power_mw=[100_000, 100_000, 100_000, fail(GPU_IS_LOST)]),
            FakeGpu(UUID[1], H100, watts=50.0),
        ]
    )
    tracker = _nvml_tracker(tmp_path).start()
    assert wait_for(lambda: any("gpu:0" in w for w in tracker.snapshot().warnings))
    intervals_after(tracker)  # an interval wholly after the fault is in the log
    kept = channel_joules_now(tracker)["gpu:0"]
    gpu1 = channel_joules_now(tracker)["gpu:1"]
    intervals_after(tracker, 3)
    final = tracker.stop()
    joules = channel_joules(tmp_path / "log")
    assert kept > 0 and joules["gpu:0"] == pytest.approx(kept)  # frozen at the fault
    assert joules["gpu:1"] > gpu1  # the other GPU keeps counting
    assert final.methods["gpu:0"] == "power-sampled" and final.methods["gpu:1"] == "counter"
    assert len([w for w in final.warnings if "gpu:0" in w]) == 1


def channel_joules_now(tracker: Tracker) -> dict[str, float]:
    """The cumulative joules per channel of the latest interval in the run log (flushed each
    interval)."""
    assert tracker.log_path is not None
    intervals = [r for r in read_records(tracker.log_path) if r["type"] == "interval"]
    return dict(intervals[-1]["joules"])


def test_gpu_counter_not_supported_falls_back_to_power(nvml_fake: FakeNvml, tmp_path: Path) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[fail(NOT_SUPPORTED)], power_mw=[200_000])])
    final = _run_until_settled(_nvml_tracker(tmp_path))
    assert final.methods["gpu:0"] == "power-sampled"
    assert final.energy_gpu_kwh is not None and final.energy_gpu_kwh > 0
    assert not [w for w in final.warnings if "gpu:0" in w]


def test_gpu_with_neither_counter_nor_power_is_skipped(nvml_fake: FakeNvml, tmp_path: Path) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100), FakeGpu(UUID[1], H100, energy_mj=[0, 1_000])])
    final = _run_until_settled(_nvml_tracker(tmp_path))
    assert "gpu:0" not in final.methods and final.methods["gpu:1"] == "counter"
    assert final.energy_gpu_kwh * J_PER_KWH == pytest.approx(1.0)
    assert len([w for w in final.warnings if "gpu:0" in w]) == 1


def test_gpu_counter_going_backwards(nvml_fake: FakeNvml, tmp_path: Path) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0, 5_000, 1_000, 2_000, 100, 600])])
    final = _run_until_settled(_nvml_tracker(tmp_path))
    assert channel_joules(tmp_path / "log")["gpu:0"] == pytest.approx(6.5)  # 5 + 1 + 0.5
    assert len([w for w in final.warnings if "went back" in w]) == 1


@pytest.mark.parametrize(
    "code", [DRIVER_NOT_LOADED, NO_PERMISSION, UNKNOWN], ids=["driver-not-loaded", "no-permission", "unknown"]
)
@pytest.mark.parametrize("meters", ["auto", "explicit"])
def test_nvml_init_fails_tracker_goes_on_without_gpu(
    nvml_fake: FakeNvml, tmp_path: Path, code: int, meters: str
) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0, 1_000])], init_error=code)
    kw: dict[str, Any] = {} if meters == "auto" else {"meters": ["nvml", "cpu-estimate", "ram-estimate"]}
    tracker = Tracker(interval_s=0.03, intensity=100.0, log_dir="off", **kw)
    final = _run_until_settled(tracker, reads=3)
    assert final.energy_gpu_kwh is None and final.methods["gpu"] == "not measured"
    assert final.energy_cpu_kwh is not None
    assert len([w for w in final.warnings if "NVML" in w or "nvml:" in w]) == 1, final.warnings


def test_nvml_shutdown_failure_at_stop_is_one_warning(
    nvml_fake: FakeNvml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pynvml

    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0, 1_000])])
    tracker = _nvml_tracker(tmp_path).start()
    intervals_after(tracker)

    def broken() -> None:
        raise pynvml.NVMLError(UNKNOWN)

    monkeypatch.setattr(pynvml, "nvmlShutdown", broken)
    final = tracker.stop()
    assert final.energy_gpu_kwh * J_PER_KWH == pytest.approx(1.0)
    assert len([w for w in final.warnings if "shutdown" in w]) == 1


# -- any meter (a user's own) -----------------------------------------------------------


class Scripted(Meter):
    """A user's own meter: ``values`` per read for channel ``x:bad`` (the last repeats)."""

    name = "scripted"

    def __init__(self, values: list[Any], exc: BaseException | None = None) -> None:
        super().__init__()
        self.channels = (Channel("x:good", "cpu", "counter"), Channel("x:bad", "cpu", "counter"))
        self.values = values
        self.exc = exc
        self.reads = 0

    def read(self) -> Mapping[str, float]:
        self.reads += 1
        if self.exc is not None and self.reads > 2:
            raise self.exc
        bad = self.values[min(self.reads - 1, len(self.values) - 1)]
        return {"x:good": float(self.reads), "x:bad": bad}


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, "12", None, -1.0, 10**400],
    ids=["nan", "inf", "-inf", "str", "none", "negative", "huge-int"],
)
def test_meter_returning_garbage_does_not_poison_totals(bad: Any) -> None:
    meter = Scripted([1.0, 2.0, bad])
    tracker = Tracker(interval_s=0.02, intensity=100.0, gpus="none", meters=[meter], log_dir="off").start()
    assert wait_for(lambda: meter.reads >= 6)
    final = tracker.stop()
    assert math.isfinite(final.energy_kwh) and math.isfinite(final.co2eq_kg)
    assert final.energy_cpu_kwh * J_PER_KWH >= meter.reads - 1  # x:good kept counting
    assert final.energy_cpu_kwh * J_PER_KWH <= meter.reads + 2.0 + 1e-9
    assert final.duration_s > 0


@pytest.mark.parametrize(
    "exc", [OSError("EIO"), RuntimeError("driver"), KeyError("x")], ids=["oserror", "runtime", "keyerror"]
)
def test_meter_that_raises_is_dropped_with_its_energy_kept(exc: BaseException) -> None:
    meter = Scripted([1.0, 2.0], exc=exc)
    other = Scripted([0.0])
    other.name = "other"
    other.channels = (Channel("y:good", "ram", "counter"), Channel("y:bad", "ram", "counter"))
    other.read = lambda: {"y:good": float(time.monotonic() - t0), "y:bad": 0.0}  # type: ignore[method-assign]
    t0 = time.monotonic()
    tracker = Tracker(
        interval_s=0.02, intensity=100.0, gpus="none", meters=[meter, other], log_dir="off"
    ).start()
    assert wait_for(lambda: meter.reads >= 3)
    intervals_after(tracker, 3)
    mid = tracker.snapshot().energy_ram_kwh
    intervals_after(tracker, 3)
    final = tracker.stop()
    assert final.energy_cpu_kwh * J_PER_KWH == pytest.approx(2.0 + 2.0)  # x:good 2 J + x:bad 2 J
    assert final.energy_ram_kwh > mid  # the other meter goes on
    assert len([w for w in final.warnings if "scripted" in w]) == 1
