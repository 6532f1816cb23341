"""The Prometheus pull endpoint, scraped by a real Prometheus server and queried through its
HTTP API; the figures it holds are the run log's. And the exporters' configuration."""

from __future__ import annotations

import re
import socket
import sys

import pytest
from export_servers import free_ports, prometheus, run_log, samples
from powercap import FakePowercap
from support import wait_for

from carbon_core import Tracker
from carbon_core.accounting import J_PER_KWH

OURS = {
    "carbon_energy_joules_total",
    "carbon_co2eq_grams_total",
    "carbon_power_watts",
    "carbon_grid_intensity_grams_per_kwh",
}


def _by_device(result: list[dict]) -> dict[str, float]:
    return {r["metric"]["device"]: r["value"] for r in result}


def test_a_real_prometheus_scrapes_the_run_logs_figures_with_their_labels(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys", sockets=1, dram=True)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    port = free_ports()
    with prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prom:
        tracker = Tracker(
            interval_s=0.05, zone="DE", intensity=400.0, pue=1.5, meters=["rapl"], log_dir=tmp_path / "runs",
            export=["prometheus"], prometheus_port=port,
        )  # fmt: skip
        tracker.start()
        tree.add("package-0", 3_600_000)  # 3.6 J
        tree.add("dram-0", 1_800_000)  # 1.8 J
        expected = {"cpu:package-0": 3.6, "cpu:dram-0": 1.8}
        assert wait_for(lambda: _by_device(prom.query("carbon_energy_joules_total")) == expected, timeout=60)
        energy = prom.query("carbon_energy_joules_total")
        co2 = prom.query("carbon_co2eq_grams_total")
        intensity = prom.query("carbon_grid_intensity_grams_per_kwh")
        names = {r["metric"]["__name__"] for r in prom.query('{job="carbon"}')}
        tracker.stop()
    log = run_log(next((tmp_path / "runs").iterdir()))
    header, last = log["header"], log["intervals"][-1]
    # the values are the run log's: cumulative joules per channel, and its emissions split by device
    assert _by_device(energy) == pytest.approx(last["joules"], rel=1e-12)
    assert sum(r["value"] for r in co2) == pytest.approx(
        sum(i["co2eq_g"] for i in log["intervals"]), rel=1e-9
    )
    for device, joules in expected.items():
        assert _by_device(co2)[device] == pytest.approx(joules / J_PER_KWH * 1.5 * 400.0, rel=1e-9)
    # labelled with who measured, and how
    for r in energy + co2:
        labels = r["metric"]
        assert labels["run_id"] == header["run_id"] and labels["host"] == header["host"]
        assert (labels["rank"], labels["node_rank"], labels["zone"]) == ("0", "0", "DE")
        assert labels["method"] == "counter" and "job_id" not in labels  # no launcher: empty, so absent
        assert labels["component"] == {"cpu:package-0": "cpu", "cpu:dram-0": "ram"}[labels["device"]]
    assert [(r["metric"]["source"], r["value"]) for r in intensity] == [("fixed", 400.0)]
    # nothing but our four families (and Prometheus' own per-target series): no process or platform collectors
    assert {n for n in names if n != "up" and not n.startswith("scrape_")} == OURS


def test_the_endpoint_listens_on_127_0_0_1_unless_an_address_is_named(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys")
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))

    def answers(host: str, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(5)
            return s.connect_ex((host, port)) == 0

    port = free_ports()
    with Tracker(
        interval_s=0.05, meters=["rapl"], intensity=100, export="prometheus", prometheus_port=str(port)
    ):
        assert answers("127.0.0.1", port) and not answers("127.0.0.2", port)
    assert not answers("127.0.0.1", port)  # closed at stop
    port = free_ports()
    tracker = Tracker(
        meters=["rapl"], intensity=100, export="prometheus", prometheus_port=f"127.0.0.2:{port}"
    )
    with tracker:
        assert answers("127.0.0.2", port) and not answers("127.0.0.1", port)
        assert samples(f"http://127.0.0.2:{port}/metrics", "carbon_energy_joules_total")


def test_a_port_in_use_is_one_warning_and_measuring_goes_on(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys")
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        tracker = Tracker(
            interval_s=0.02, meters=["rapl"], intensity=100, export="prometheus", prometheus_port=port
        )
        tracker.start()
        tree.add("package-0", 3_600_000)
        assert wait_for(lambda: tracker.snapshot().energy_cpu_kwh == pytest.approx(1e-6), timeout=30)
        final = tracker.stop()
    problems = [w for w in final.warnings if "prometheus" in w]
    assert len(problems) == 1 and f"127.0.0.1:{port}" in problems[0], final.warnings
    assert final.energy_cpu_kwh == pytest.approx(1e-6)


def test_each_local_rank_serves_on_its_own_port(tmp_path, monkeypatch):
    tree = FakePowercap(tmp_path / "sys")
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    port = free_ports(3)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with Tracker(meters=["rapl"], gpus="none", intensity=100, export="prometheus", prometheus_port=port):
        url = f"http://127.0.0.1:{port + 2}/metrics"
        ranks = {s.labels["rank"] for s in samples(url, "carbon_grid_intensity_grams_per_kwh")}
    assert ranks == {"2"}


# -- configuration: at construction, naming the parameter and the value ---------------------------


@pytest.mark.parametrize(
    ("kwargs", "env", "message"),
    [
        (
            {"export": ["promethues"]},
            {},
            "export=['promethues']: unknown exporter 'promethues'; known: prometheus",
        ),
        (
            {},
            {"CARBON_EXPORT": "prometheus,statsd"},
            "CARBON_EXPORT='prometheus,statsd': unknown exporter 'statsd'",
        ),
        ({"export": "prometheus"}, {}, "export='prometheus': the prometheus exporter needs a port"),
        (
            {},
            {"CARBON_EXPORT": "otlp,prometheus"},
            "CARBON_EXPORT='otlp,prometheus': the prometheus exporter",
        ),
        ({"export": ["otlp"], "prometheus_port": "99999"}, {}, "prometheus_port='99999': expected PORT"),
        ({}, {"CARBON_PROMETHEUS_PORT": "host:"}, "CARBON_PROMETHEUS_PORT='host:': expected PORT"),
        ({"pushgateway_url": "ftp://gw"}, {}, "pushgateway_url must be an http:// or https:// URL"),
        (
            {},
            {"CARBON_PUSHGATEWAY_URL": "http://u:p@gw"},
            "CARBON_PUSHGATEWAY_URL: credentials in the URL are not",
        ),
    ],
)
def test_bad_export_settings_fail_at_construction(monkeypatch, kwargs, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Tracker(**kwargs)


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("prometheus", "prometheus_client", "prometheus"), ("pushgateway", "prometheus_client", "prometheus"),
     ("otlp", "opentelemetry.sdk.metrics", "otel")],
)  # fmt: skip
def test_an_exporter_without_its_extra_says_what_to_install(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # how Python marks a module as not importable
    with pytest.raises(
        ValueError,
        match=rf"^export=\['{name}'\]: the {name} exporter needs .*pip install 'carbon-core\[{extra}\]'",
    ):
        Tracker(export=[name], prometheus_port=9)


def test_the_callbacks_and_the_cli_take_the_exporter_options():
    from carbon_core.callbacks.session import TRACKER_OPTIONS, CallbackSession
    from carbon_core.cli import _flagged

    assert {"export", "prometheus_port", "pushgateway_url"} <= set(TRACKER_OPTIONS)
    assert {"--export", "--prometheus-port", "--pushgateway-url"} <= {o.flag for o in _flagged()}
    session = CallbackSession({"export": "prometheus, pushgateway", "prometheus_port": "0.0.0.0:9"})
    config = session.tracker.config
    assert config.export == ("prometheus", "pushgateway") and config.prometheus_port == "0.0.0.0:9"
    with pytest.raises(ValueError, match=r"^export='otel': unknown exporter"):
        CallbackSession({"export": "otel"})
