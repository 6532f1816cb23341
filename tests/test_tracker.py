"""The Tracker end to end on this machine: real meters, real sampler thread, real accounting."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from powercap import FakePowercap
from support import wait_for

from carbon_core import Snapshot, Tracker
from carbon_core.accounting import J_PER_KWH
from carbon_core.meters.base import Channel, Meter


@pytest.fixture
def rapl(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys", sockets=2, dram=True)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    return tree


def test_rapl_energy_equals_scripted_deltas_and_emissions_follow(rapl):
    t = Tracker(interval_s=0.05, intensity=400.0, pue=1.5, gpus="none", log_dir="off")
    t.start()
    rapl.add("package-0", 90_000_000)  # 90 J
    rapl.add("package-1", 54_000_000)
    rapl.add("core-0", 80_000_000)  # inside package-0: never added again
    rapl.add("dram-0", 18_000_000)
    assert wait_for(lambda: t.snapshot().energy_kwh > 0)
    rapl.add("dram-1", 18_000_000)  # lands just before stop: the final reading must include it
    final = t.stop()
    assert final.energy_cpu_kwh == pytest.approx(144 / J_PER_KWH, rel=1e-12)
    assert final.energy_ram_kwh == pytest.approx(36 / J_PER_KWH, rel=1e-12)
    assert final.energy_gpu_kwh is None and final.methods["gpu"] == "not measured"
    assert final.energy_kwh == pytest.approx(180 / J_PER_KWH, rel=1e-12)
    assert final.co2eq_kg == pytest.approx(180 / J_PER_KWH * 1.5 * 400 / 1000, rel=1e-9)
    assert final.intensity_source == "fixed"
    assert final.methods["cpu:package-0"] == "counter" and final.methods["cpu:dram-1"] == "counter"
    assert "ram" not in final.methods  # the dram counters replace the RAM estimate
    assert final.to_metrics()["carbon/co2eq_kg"] == final.co2eq_kg
    assert "carbon/energy_gpu_kwh" not in final.to_metrics()


def test_cpu_busy_run_estimates_more_energy_than_idle_one(monkeypatch, tmp_path):
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tmp_path / "absent"))

    def run(busy: bool) -> Snapshot:
        with Tracker(interval_s=0.1, zone="DE", gpus="none", log_dir="off") as t:
            end = time.monotonic() + 0.6
            x = 0
            while time.monotonic() < end:
                if busy:
                    x += sum(range(1000))
                else:
                    time.sleep(0.01)
        return t.snapshot()

    idle, busy = run(False), run(True)
    assert busy.methods["cpu:estimate"] == "estimated"
    assert busy.energy_cpu_kwh > 3 * idle.energy_cpu_kwh
    assert busy.energy_ram_kwh > 0 and busy.methods["ram"] == "estimated"
    assert any("estimated" in w for w in busy.warnings)


class _Flaky(Meter):
    name = "flaky"

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.channels = (Channel("gpu:9", "gpu", "counter"),)
        self.calls = 0
        self.fail_after = fail_after

    def read(self):
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("device fell off the bus")
        return {"gpu:9": 100.0 * self.calls}


def test_meter_that_raises_is_dropped_with_one_warning_and_keeps_its_energy(caplog):
    flaky = _Flaky(fail_after=2)
    with caplog.at_level(logging.WARNING, logger="carbon_core"):
        t = Tracker(interval_s=0.02, intensity=100, meters=[flaky], log_dir="off").start()
        assert wait_for(lambda: flaky.calls >= 3)
        time.sleep(0.1)
        final = t.stop()
    assert final.energy_gpu_kwh == pytest.approx(200 / J_PER_KWH)
    dropped = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(dropped) == 1 and flaky.calls == 3
    assert any("fell off the bus" in w for w in final.warnings)


def test_start_stop_leaves_no_thread_and_stop_is_idempotent():
    before = {th.ident for th in threading.enumerate()}
    t = Tracker(interval_s=0.02, intensity=100, gpus="none", log_dir="off")
    t.start()
    t.start()  # no second sampler
    samplers = [th for th in threading.enumerate() if th.name == "carbon-core-sampler"]
    assert len(samplers) == 1 and samplers[0].daemon
    first = t.stop()
    assert t.stop() is first
    assert {th.ident for th in threading.enumerate()} <= before


def test_snapshot_from_another_thread_while_sampling_and_stop_from_another_thread():
    t = Tracker(interval_s=0.01, intensity=100, gpus="none", log_dir="off").start()
    seen: list[Snapshot] = []
    errors: list[BaseException] = []

    def reader():
        try:
            for _ in range(2000):
                seen.append(t.snapshot())
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    stopper = threading.Thread(target=t.stop)
    stopper.start()
    stopper.join(10)
    assert not errors and not stopper.is_alive()
    assert all(isinstance(s, Snapshot) for s in seen)
    durations = [s.duration_s for s in seen[:2000]]
    assert durations == sorted(durations)  # one reader sees time only move forward


def test_context_manager_and_decorator(rapl):
    tracker = Tracker(interval_s=0.05, intensity=100, gpus="none", log_dir="off")

    @tracker
    def train() -> int:
        rapl.add("package-0", 36_000_000)
        return 7

    assert train() == 7
    assert tracker.snapshot().energy_cpu_kwh == pytest.approx(36 / J_PER_KWH)
    with Tracker(zone="DE", gpus="none", log_dir="off") as t:
        rapl.add("package-1", 3_600_000)
    assert t.snapshot().energy_cpu_kwh == pytest.approx(3.6 / J_PER_KWH)
    assert t.snapshot().intensity_source.startswith("table:country:DE")


WH_UJ = 3_600_000_000  # 1 Wh in microjoules: at 1000 gCO2eq/kWh, 1 g


def test_budget_spent_and_predicted(rapl):
    spent = Tracker(interval_s=0.02, intensity=1000, budget_kg=0.001, gpus="none", log_dir="off").start()
    rapl.add("package-0", WH_UJ // 2)
    assert wait_for(lambda: spent.snapshot().co2eq_kg == pytest.approx(0.0005))
    assert not spent.should_stop.stop
    rapl.add("package-1", WH_UJ // 2)  # 1 g in all: the budget is spent
    assert wait_for(lambda: spent.should_stop.stop)
    assert "budget spent" in spent.should_stop.reason
    assert spent.stop().co2eq_kg == pytest.approx(0.001)

    predicted = Tracker(
        interval_s=0.02, intensity=1000, budget_kg=0.001, stop_on="predicted", gpus="none", log_dir="off"
    ).start()
    rapl.add("package-0", WH_UJ // 10)  # 0.1 g spent ...
    predicted.progress(5, 100)  # ... at 5 % done: 2 g forecast for the run
    assert wait_for(lambda: predicted.should_stop.stop)
    snap = predicted.stop()
    assert snap.co2eq_kg == pytest.approx(0.0001)
    assert snap.predicted_co2eq_kg == pytest.approx(0.002)
    assert "predicted" in predicted.should_stop.reason


def test_state_dict_round_trip_carries_totals(rapl):
    first = Tracker(interval_s=0.05, intensity=500, gpus="none", log_dir="off")
    with first:
        rapl.add("package-0", 7_200_000)
    second = Tracker(interval_s=0.05, intensity=500, gpus="none", log_dir="off")
    second.load_state_dict(first.state_dict())
    with second:
        rapl.add("package-0", 3_600_000)
    assert second.snapshot().energy_cpu_kwh == pytest.approx(10.8 / J_PER_KWH)
    assert second.snapshot().co2eq_kg == pytest.approx(10.8 / J_PER_KWH * 0.5)


def test_cpu_estimate_counts_a_child_that_ends_between_two_readings():
    import resource
    import subprocess
    import sys

    from carbon_core.meters.cpu_estimate import CpuEstimateMeter

    meter = CpuEstimateMeter(model="AMD EPYC 7763 64-Core Processor", sockets=1)
    own0, kids0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)  # born and reaped between readings
    own1, kids1 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    assert meter.read()["cpu:estimate"] > 0
    counted_s = meter.cpu_seconds
    child_s = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    assert child_s >= 0.5
    assert child_s - 0.02 <= counted_s <= child_s + (own1 - own0) + 0.05


def test_explicit_meter_list_never_estimates_ram_a_dram_counter_measures(rapl):
    t = Tracker(interval_s=0.05, intensity=100, meters=["rapl", "ram-estimate"], log_dir="off").start()
    rapl.add("dram-0", 3_600_000)
    final = t.stop()
    assert "ram" not in final.methods and final.methods["cpu:dram-0"] == "counter"
    assert final.energy_ram_kwh == pytest.approx(3.6 / J_PER_KWH)


class _Hanging(Meter):
    name = "hanging"

    def __init__(self) -> None:
        super().__init__()
        self.channels = (Channel("gpu:7", "gpu", "counter"),)
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.calls = 0

    def read(self):
        self.calls += 1
        if self.calls >= 3:
            self.blocked.set()
            self.release.wait(30)
            return {"gpu:7": 1e9}  # would be a wild figure if it landed after stop()
        return {"gpu:7": 360.0 * self.calls}


def test_a_read_that_hangs_neither_blocks_stop_for_long_nor_lands_after_it():
    meter = _Hanging()
    t = Tracker(interval_s=0.02, intensity=100, meters=[meter], log_dir="off").start()
    assert meter.blocked.wait(10)
    final = t.stop()  # returns (after a bounded wait) with the last interval's totals
    assert final.energy_gpu_kwh == pytest.approx(720 / J_PER_KWH)
    assert any("no final reading" in w for w in final.warnings)
    meter.release.set()
    time.sleep(0.2)  # the hung read returns now: it must not touch the stopped run
    assert t.snapshot().energy_gpu_kwh == pytest.approx(720 / J_PER_KWH)


def test_a_restarted_tracker_reports_its_own_faults_again(caplog):
    flaky = _Flaky(fail_after=1)
    t = Tracker(interval_s=0.02, intensity=100, meters=[flaky], log_dir="off")
    with caplog.at_level(logging.WARNING, logger="carbon_core"):
        t.start()
        assert wait_for(lambda: flaky.calls >= 2)
        first = t.stop()
        flaky.calls = 0  # the same fault in the second run: logged again, listed once
        t.start()
        assert wait_for(lambda: flaky.calls >= 2)
        second = t.stop()
    assert sum("flaky failed" in w for w in first.warnings) == 1
    assert sum("flaky failed" in w for w in second.warnings) == 1
    assert sum("flaky failed" in r.getMessage() for r in caplog.records) == 2
