"""Round two of the fault suite: the tracker's own defects a hostile tester found.

Implausible readings (a glitched NVML counter, a bogus power sample, a user's meter giving
absurd finite values), a component measured twice, a tracker used re-entrantly, Ctrl-C
inside ``start()`` and ``stop()``, and an error outside the guarded training step in Keras
and the Hugging Face Trainer. Each case failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fake_nvml import FakeGpu
from fake_nvml.plugin import FakeNvml
from support import wait_for

from carbon_core import Tracker
from carbon_core.accounting import J_PER_KWH
from carbon_core.meters.base import Channel, Meter
from carbon_core.runlog import read_records

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
UUID = "GPU-12345678-aaaa-bbbb-cccc-dddddddddd01"


def _log(log_dir: Path) -> list[dict[str, Any]]:
    (path,) = log_dir.glob("*.jsonl")
    return list(read_records(path))


def _settle(tracker: Tracker, n: int = 6) -> None:
    start = tracker.intervals
    assert wait_for(lambda: tracker.intervals >= start + n), "the sampler stopped sampling"


# -- implausible readings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "gpu",
    [
        # one glitched counter read, 10^15 mJ too high, then back on track
        FakeGpu(UUID, energy_mj=[1000, 1100, 10**15, 1300, 1400, 1500]),
        # no counter: power sampled, one bogus sample of 10^9 W
        FakeGpu(UUID, power_mw=[100_000, 100_000, 10**12, 100_000]),
    ],
    ids=["counter-glitch", "power-glitch"],
)
def test_one_glitched_gpu_reading_is_a_warning_not_energy(
    nvml_fake: FakeNvml, tmp_path: Path, gpu: FakeGpu
) -> None:
    nvml_fake.scenario([gpu])
    tracker = Tracker(
        interval_s=0.03,
        intensity=400.0,
        gpus="all",
        meters=["nvml"],
        log_dir=tmp_path / "log",
        budget_kg=0.001,
    ).start()
    _settle(tracker, 8)
    final = tracker.stop()
    assert final.energy_gpu_kwh is not None
    assert final.energy_gpu_kwh * J_PER_KWH < 3000.0, "nothing like 10^12 J was counted"
    assert not tracker.should_stop.stop, "the budget never decides on a rejected reading"
    (warning,) = [w for w in final.warnings if "implausible" in w or "more power than" in w]
    assert "gpu:0" in warning
    text = "".join(p.read_text() for p in (tmp_path / "log").glob("*.jsonl"))
    assert "Infinity" not in text and "NaN" not in text


class Custom(Meter):
    """A user's own meter: one channel, the joules ``value(reads)`` gives, and a close hook."""

    def __init__(self, name: str, channel: Channel, value: Any, on_close: Any = None) -> None:
        super().__init__()
        self.name, self.channels, self.value, self.on_close = name, (channel,), value, on_close
        self.reads = self.closes = 0

    def read(self) -> Mapping[str, float]:
        self.reads += 1
        return {self.channels[0].name: self.value(self.reads)}

    def close(self) -> None:
        self.closes += 1
        if self.on_close is not None:
            self.on_close(self.closes)


def _ctrl_c_at_first(closes: int) -> None:
    if closes == 1:
        raise KeyboardInterrupt  # Ctrl-C arrives while the meter closes


def test_absurd_custom_readings_never_overflow_the_totals_or_break_report(tmp_path: Path) -> None:
    # finite but absurd readings: 1e300 J and growing
    meter = Custom("absurd", Channel("gpu:custom", "gpu", "counter"), lambda n: 1e300 * n)
    tracker = Tracker(interval_s=0.02, intensity=100.0, gpus="none", meters=[meter], log_dir=tmp_path / "log")
    tracker.start()
    assert wait_for(lambda: meter.reads >= 6)
    final = tracker.stop()
    assert final.energy_kwh == 0.0 and final.co2eq_kg == 0.0
    assert any("gpu:custom" in w for w in final.warnings)
    report = subprocess.run(
        [sys.executable, "-m", "carbon_core.cli", "report", "--json", str(tmp_path / "log")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)


# -- one component measured twice ----------------------------------------------------------


@pytest.mark.parametrize(
    ("meters", "named"),
    [
        (["rapl", "cpu-estimate"], ("rapl", "cpu-estimate", "cpu")),
        (["pyrapl", "rapl"], ("pyrapl", "rapl", "cpu")),
        ("rapl,cpu-estimate", ("rapl", "cpu-estimate", "cpu")),
        ([Custom("my-gpu", Channel("gpu:0", "gpu", "counter"), float), "nvml"], ("my-gpu", "nvml", "gpu")),
    ],
    ids=["rapl+estimate", "pyrapl+rapl", "env-style", "own-gpu+nvml"],
)
def test_a_component_measured_twice_is_refused_at_construction(meters: Any, named: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="meters=") as caught:
        Tracker(meters=meters, log_dir="off")
    assert all(word in str(caught.value) for word in named)
    assert "twice" in str(caught.value)


# -- re-entrant use --------------------------------------------------------------------------


def test_nested_with_and_recursive_decorator_make_one_run(tmp_path: Path) -> None:
    tracker = Tracker(interval_s=0.02, intensity=100.0, gpus="none", log_dir=tmp_path / "log")

    @tracker
    def work(depth: int) -> float:
        if depth:
            return work(depth - 1)
        _settle(tracker, 3)
        return tracker.snapshot().duration_s

    with tracker:
        _settle(tracker, 3)
        with tracker:
            inner = work(3)
            assert tracker.running, "an inner exit does not stop the run"
        assert tracker.running and tracker.snapshot().duration_s >= inner, "nor reset its totals"
    assert not tracker.running
    records = _log(tmp_path / "log")  # one log, one header, one final record
    assert [r["type"] for r in records].count("final") == 1


# -- Ctrl-C inside stop() and start() ------------------------------------------------------


def test_ctrl_c_inside_stop_then_stop_again_finalises(tmp_path: Path) -> None:
    meter = Custom("interrupted", Channel("cpu:x", "cpu", "counter"), lambda n: 1.0, _ctrl_c_at_first)
    tracker = Tracker(interval_s=0.02, intensity=100.0, meters=[meter], log_dir=tmp_path / "log")
    tracker.start()
    _settle(tracker, 2)
    with pytest.raises(KeyboardInterrupt):
        tracker.stop()
    final = tracker.stop()
    records = _log(tmp_path / "log")
    assert records[-1]["type"] == "final"
    assert final.energy_cpu_kwh == pytest.approx(1.0 / J_PER_KWH)


def test_ctrl_c_inside_start_then_stop_finalises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from carbon_core.intensity.source import IntensitySource

    def interrupted(self: IntensitySource, faults: object = None) -> None:
        raise KeyboardInterrupt  # Ctrl-C arrives after the run log was created

    tracker = Tracker(interval_s=0.02, intensity=100.0, gpus="none", log_dir=tmp_path / "log")
    monkeypatch.setattr(IntensitySource, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tracker.start()
    monkeypatch.undo()
    tracker.stop()
    assert _log(tmp_path / "log")[-1]["type"] == "final"


CHILD = """
import sys
from collections.abc import Mapping
from carbon_core import Tracker
from carbon_core.meters.base import Channel, Meter

class Interrupted(Meter):
    name = "interrupted"
    def __init__(self):
        super().__init__()
        self.channels = (Channel("cpu:x", "cpu", "counter"),)
        self.closes = 0
    def read(self) -> Mapping[str, float]:
        return {"cpu:x": 1.0}
    def close(self):
        self.closes += 1
        if self.closes == 1:
            raise KeyboardInterrupt

t = Tracker(interval_s=0.02, intensity=100, meters=[Interrupted()], log_dir="log").start()
t.stop()  # Ctrl-C lands inside: the script dies of it, the exit hook finishes the log
"""


def test_ctrl_c_inside_stop_at_the_end_of_a_script_still_finalises(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD)], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert proc.returncode != 0 and b"KeyboardInterrupt" in proc.stderr
    assert _log(tmp_path / "log")[-1]["type"] == "final"
