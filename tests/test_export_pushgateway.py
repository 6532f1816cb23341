"""The pushgateway exporter against a real Prometheus Pushgateway: a push each interval, once
at stop, one group per process; a dead gateway is one warning and never holds training up."""

from __future__ import annotations

import socket
import time

import pytest
from export_servers import pushgateway, run_log, samples
from powercap import FakePowercap
from support import wait_for

from carbon_core import Tracker
from carbon_core.export.group import CLOSE_S


def _pushed(url: str, name: str) -> dict[str, float]:
    return {
        s.labels["device"]: s.value
        for s in samples(f"{url}/metrics", name)
        if s.labels.get("job") == "carbon-core"
    }


def test_pushes_each_interval_one_group_per_process(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys", sockets=1, dram=True)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    with pushgateway(tmp_path) as url:
        monkeypatch.setenv("CARBON_EXPORT", "pushgateway")
        monkeypatch.setenv("CARBON_PUSHGATEWAY_URL", url)
        tracker = Tracker(
            interval_s=0.05, intensity=250.0, meters=["rapl"], log_dir=tmp_path / "runs"
        ).start()
        tree.add("package-0", 3_600_000)
        tree.add("dram-0", 900_000)
        expected = {"cpu:package-0": 3.6, "cpu:dram-0": 0.9}
        assert wait_for(
            lambda: _pushed(url, "carbon_energy_joules_total") == expected, timeout=30
        )  # while running
        final = tracker.stop()
        energy = samples(f"{url}/metrics", "carbon_energy_joules_total")
        co2 = _pushed(url, "carbon_co2eq_grams_total")
    log = run_log(next((tmp_path / "runs").iterdir()))
    assert {s.labels["device"]: s.value for s in energy} == pytest.approx(
        log["intervals"][-1]["joules"], rel=1e-12
    )
    assert sum(co2.values()) == pytest.approx(final.co2eq_kg * 1000, rel=1e-9)
    for s in energy:  # one group per process: the pushgateway's job, and our run and rank
        assert s.labels["job"] == "carbon-core" and s.labels["run_id"] == log["header"]["run_id"]
        assert s.labels["rank"] == "0" and s.labels["host"] == log["header"]["host"]
    assert not [w for w in final.warnings if "pushgateway" in w]


def test_the_final_figures_are_pushed_at_stop(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys", sockets=1, dram=False)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    with pushgateway(tmp_path) as url:
        # no interval ends before stop (300 s): the push at start has zeros, only the one at stop the energy
        tracker = Tracker(
            interval_s=300, intensity=250.0, meters=["rapl"], export="pushgateway", pushgateway_url=url
        )
        tracker.start()
        assert wait_for(
            lambda: _pushed(url, "carbon_energy_joules_total") == {"cpu:package-0": 0.0}, timeout=30
        )
        tree.add("package-0", 7_200_000)
        final = tracker.stop()
        assert _pushed(url, "carbon_energy_joules_total") == {"cpu:package-0": 7.2}
        assert _pushed(url, "carbon_co2eq_grams_total") == {
            "cpu:package-0": pytest.approx(final.co2eq_kg * 1000)
        }
    assert final.intensity_gco2eq_per_kwh == 250.0 and final.co2eq_kg == pytest.approx(
        7.2 / 3.6e6 * 250 / 1000
    )


def test_a_dead_gateway_is_one_warning_and_training_is_not_held_up(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys")
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    tracker = Tracker(
        interval_s=0.01, meters=["rapl"], intensity=100, export=["pushgateway"], pushgateway_url=dead
    )
    tracker.start()
    tree.add("package-0", 3_600_000)
    assert wait_for(lambda: tracker.intervals >= 20, timeout=30)  # twenty failed pushes at least
    started = time.monotonic()
    final = tracker.stop()
    assert time.monotonic() - started < CLOSE_S  # a refused push fails at once: the bound is not even reached
    problems = [w for w in final.warnings if "pushgateway" in w]
    assert len(problems) == 1 and dead in problems[0], final.warnings
    assert final.energy_cpu_kwh == pytest.approx(1e-6)
