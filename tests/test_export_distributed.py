"""A real two-rank Lightning DDP run (torchrun, gloo) exporting to a real Prometheus server and
an OTLP receiver: every rank's figures come back with its labels, equal to its run log's,
and the job total counts the host once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from export_servers import OtlpReceiver, free_ports, prometheus, run_log
from support import wait_for

pytest.importorskip("torch.distributed")
pytest.importorskip("opentelemetry.sdk.metrics")
from test_distributed import run_job  # the same job set-up: fake powercap and NVML, torchrun, 2 ranks

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

#: what each rank measures after step 5: the host (CPU, DRAM) on local rank 0 only, one GPU each
EXPECTED = {
    ("0", "cpu:package-0"): 3.6,
    ("0", "cpu:dram-0"): 1.8,
    ("0", "gpu:0"): 2.0,
    ("1", "gpu:1"): 5.0,
}


def _energy(result: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["metric"]["rank"], r["metric"]["device"]): r["value"] for r in result}


@pytest.mark.timeout(360)
def test_two_ranks_figures_come_back_from_prometheus_and_otlp(tmp_path, fake_nvml_lib, monkeypatch):
    port = free_ports(2)  # local rank N serves on port + N
    otlp = OtlpReceiver()
    env = {
        "CARBON_PROMETHEUS_PORT": str(port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    with (
        prometheus(tmp_path, [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]) as prom,
        ThreadPoolExecutor(1) as pool,
    ):
        job = pool.submit(run_job, "export_lightning_job.py", tmp_path, fake_nvml_lib, env, timeout=300)
        wait_for(
            lambda: job.done() or _energy(prom.query("carbon_energy_joules_total")) == EXPECTED, timeout=240
        )
        scraped = prom.query("carbon_energy_joules_total")
        total = prom.query("sum by (job_id) (carbon_energy_joules_total)")
        by_component = prom.query("sum by (component) (carbon_energy_joules_total)")
        co2_total = prom.query("sum by (job_id) (carbon_co2eq_grams_total)")
        (tmp_path / "release").write_text("seen")  # the job may end now
        ranks = job.result()
    otlp.close()
    assert _energy(scraped) == EXPECTED  # scraped while the job ran (it waits for "release")
    logs = {r: run_log(Path(ranks[r]["log"])) for r in (0, 1)}
    # every rank's figures, with its labels, equal to its own run log's
    for r in scraped:
        labels, log = r["metric"], logs[int(r["metric"]["rank"])]
        assert r["value"] == pytest.approx(log["intervals"][-1]["joules"][labels["device"]], rel=1e-12)
        assert labels["run_id"] == log["header"]["run_id"] and labels["host"] == log["header"]["host"]
        assert labels["job_id"] == log["header"]["job_id"] == logs[0]["header"]["job_id"] != ""
        assert labels["node_rank"] == "0" and labels["instance"] == f"127.0.0.1:{port + int(labels['rank'])}"
    # the job total: each rank exports only what it measures, so the sum counts the host once
    assert [r["value"] for r in total] == [pytest.approx(12.4)]
    assert {r["metric"]["component"]: r["value"] for r in by_component} == pytest.approx(
        {"cpu": 3.6, "ram": 1.8, "gpu": 7.0}
    )
    log_g = sum(i["co2eq_g"] for log in logs.values() for i in log["intervals"])
    assert (
        [r["value"] for r in co2_total] == [pytest.approx(log_g, rel=1e-9)] == [pytest.approx(12.4 / 3.6e3)]
    )
    # the OTLP receiver got the same, each rank as its own resource (final export at stop)
    final = {}
    for p in otlp.points("hw.energy"):
        final[(str(p["resource"]["carbon.rank"]), p["attrs"]["hw.id"])] = p["value"]
        assert p["resource"]["carbon.job.id"] == logs[0]["header"]["job_id"]
    assert final == pytest.approx(EXPECTED)
    for r in (0, 1):
        assert not [w for w in ranks[r]["final"]["warnings"] if "export" in w or "otlp" in w]
