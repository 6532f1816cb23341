"""OpenTelemetry: our own provider sending OTLP/HTTP to a local receiver (decoded with the
opentelemetry-proto classes), and the user's own meter provider read through the SDK's
in-memory reader; hardware semantic conventions and the carbon.* namespace."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from export_servers import OtlpReceiver, run_log
from powercap import FakePowercap
from support import wait_for

from carbon_core import Tracker
from carbon_core.accounting import J_PER_KWH

pytest.importorskip("opentelemetry.sdk.metrics")


@pytest.fixture
def receiver(monkeypatch):
    server = OtlpReceiver()
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")  # ms
    yield server
    server.close()


def _latest(points: list[dict]) -> dict[str, dict]:
    return {p["attrs"]["hw.id"]: p for p in points}  # requests arrive in order: the last one wins


def test_otlp_receiver_gets_hw_energy_and_carbon_emissions_with_job_and_rank(tmp_path, monkeypatch, receiver):
    tree = FakePowercap(tmp_path / "sys", sockets=1, dram=True)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    tracker = Tracker(
        interval_s=0.05, zone="FR", intensity=50.0, pue=1.2, meters=["rapl"], log_dir=tmp_path / "runs",
        export="otlp",
    )  # fmt: skip
    tracker.start()
    tree.add("package-0", 3_600_000)
    tree.add("dram-0", 1_800_000)
    expected = {"cpu:package-0": 3.6, "cpu:dram-0": 1.8}
    # periodic exports while running (not only at stop)
    assert wait_for(
        lambda: {k: p["value"] for k, p in _latest(receiver.points("hw.energy")).items()} == expected, 30
    )
    tree.add("package-0", 360_000)
    final = tracker.stop()  # shuts our provider down: its last export has the final figures
    log = run_log(next((tmp_path / "runs").iterdir()))
    header, last = log["header"], log["intervals"][-1]
    energy, co2 = _latest(receiver.points("hw.energy")), _latest(receiver.points("carbon.emissions"))
    assert {k: p["value"] for k, p in energy.items()} == pytest.approx(last["joules"], rel=1e-12)
    assert energy["cpu:package-0"]["value"] == pytest.approx(3.96)
    assert sum(p["value"] for p in co2.values()) == pytest.approx(final.co2eq_kg * 1000, rel=1e-9)
    assert co2["cpu:dram-0"]["value"] == pytest.approx(1.8 / J_PER_KWH * 1.2 * 50.0, rel=1e-9)
    for p in [*energy.values(), *co2.values()]:
        assert p["kind"] == "sum" and p["monotonic"] is True and p["scope"] == "carbon_core"
        assert p["attrs"]["hw.type"] == {"cpu:package-0": "cpu", "cpu:dram-0": "memory"}[p["attrs"]["hw.id"]]
        assert p["attrs"]["carbon.method"] == "counter"
        assert (
            p["resource"]["carbon.run.id"] == header["run_id"]
            and p["resource"]["host.name"] == header["host"]
        )
        assert p["resource"]["carbon.job.id"] == header["job_id"] == "slurm_job_id:4242"
        assert (p["resource"]["carbon.rank"], p["resource"]["carbon.node.rank"]) == (0, 0)
        assert p["resource"]["carbon.zone"] == "FR" and p["resource"]["deployment.environment"] == "test"
        assert p["resource"]["service.name"] == "carbon-core"
    assert {p["unit"] for p in energy.values()} == {"J"} and {p["unit"] for p in co2.values()} == {"g"}
    power = receiver.points("hw.power")
    assert power and {p["unit"] for p in power} == {"W"} and {p["kind"] for p in power} == {"gauge"}
    intensity = receiver.points("carbon.grid.intensity")[-1]
    assert (intensity["value"], intensity["unit"], intensity["attrs"]["carbon.intensity.source"]) == (
        50.0,
        "g/(kW.h)",
        "fixed",
    )
    assert set(receiver.paths) == {"/v1/metrics"}
    assert not [w for w in final.warnings if "otlp" in w]


def test_a_dead_collector_is_one_warning_and_stop_is_bounded(tmp_path, monkeypatch, caplog):
    tree = FakePowercap(tmp_path / "sys")
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", dead)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "20")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    tracker = Tracker(interval_s=0.02, meters=["rapl"], intensity=100, export=["otlp"]).start()
    tree.add("package-0", 3_600_000)
    assert wait_for(lambda: any("otlp" in w for w in tracker.snapshot().warnings), timeout=30)
    final = tracker.stop()
    problems = [w for w in final.warnings if "otlp" in w]
    assert len(problems) == 1 and dead in problems[0], final.warnings
    # the SDK's own line per failed try is not repeated on top of ours
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert final.energy_cpu_kwh == pytest.approx(1e-6)


def test_an_unsupported_otlp_protocol_is_one_warning(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with Tracker(meters=["cpu-estimate"], intensity=100, export="otlp") as tracker:
        pass
    assert [w for w in tracker.snapshot().warnings if "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'" in w]
    assert receiver.requests == []


USER_PROVIDER = textwrap.dedent(
    """
    import json, os, sys
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    sys.path.insert(0, os.environ["TESTS"])
    from powercap import FakePowercap
    from carbon_core import Tracker

    reader = InMemoryMetricReader()
    mine = MeterProvider(metric_readers=[reader], resource=Resource({"service.name": "mine"}))
    metrics.set_meter_provider(mine)
    tree = FakePowercap.attach(os.environ["POWERCAP_BASE"])
    tracker = Tracker(interval_s=0.05, intensity=100.0, meters=["rapl"], export=["otlp"]).start()
    tree.add("package-0", 3_600_000)
    final = tracker.stop()
    out = []
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    out.append({"name": m.name, "unit": m.unit, "value": p.value, "attrs": dict(p.attributes),
                                "resource": dict(rm.resource.attributes)})
    print(json.dumps({"points": out, "run_id": tracker.run_id, "warnings": final.warnings}))
    """
)


def test_the_users_own_meter_provider_is_used_with_job_and_rank_on_every_point(tmp_path):
    # in a process of its own: a global meter provider can be set once per process
    tree = FakePowercap(tmp_path / "sys", dram=False)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CARBON_"))},
        "TESTS": str(Path(__file__).parent), "POWERCAP_BASE": str(tree.base),
        "CARBON_POWERCAP_ROOT": str(tree.root),
        "CARBON_LOG_DIR": "off", "TORCHELASTIC_RUN_ID": "job-7", "RANK": "0", "WORLD_SIZE": "1",
    }  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", USER_PROVIDER], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    energy = [p for p in result["points"] if p["name"] == "hw.energy"]
    assert [(p["attrs"]["hw.id"], p["value"], p["unit"]) for p in energy] == [("cpu:package-0", 3.6, "J")]
    point = energy[0]
    assert point["resource"]["service.name"] == "mine"  # the user's resource, untouched
    assert point["attrs"]["carbon.job.id"] == "torchelastic_run_id:job-7"
    assert (point["attrs"]["carbon.rank"], point["attrs"]["carbon.run.id"]) == (0, result["run_id"])
    assert {p["name"] for p in result["points"]} == {
        "hw.energy",
        "hw.power",
        "carbon.emissions",
        "carbon.grid.intensity",
    }
    assert result["warnings"] == []
