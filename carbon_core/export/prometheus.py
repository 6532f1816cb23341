"""Prometheus, both ways: a pull endpoint (``/metrics``) and a pushgateway target.

Both expose one private registry holding one collector of the run's figures: nothing else
(no process or platform collectors, nothing from the global registry). The names follow
Prometheus' conventions, base units in the name, counters for what accumulates:

- ``carbon_energy_joules_total`` and ``carbon_co2eq_grams_total`` (counters, per device);
- ``carbon_power_watts`` (gauge, per device: the mean over the latest interval);
- ``carbon_grid_intensity_grams_per_kwh`` (gauge: gCO2eq/kWh in force, label ``source``).

Every series has ``job_id``, ``run_id``, ``host``, ``node_rank``, ``rank`` and ``zone``; the
per-device ones add ``component`` (gpu, cpu, ram), ``device`` (the channel: ``gpu:0``,
``cpu:package-0``) and ``method`` (counter, power-sampled, estimated). A rank exports only
what it measures, so host meters (CPU, RAM, on local rank 0 of each node) appear once per
node and ``sum by (job_id) (...)`` is the job's total.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from socketserver import ThreadingMixIn
from typing import Any, Callable, Optional
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, push_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from carbon_core.export.base import Exporter, Sender
from carbon_core.export.figures import Figures, Labels
from carbon_core.faults import FaultLog

COMMON = ("job_id", "run_id", "host", "node_rank", "rank", "zone")
PER_DEVICE = ("component", "device", "method")
#: the pushgateway's job label (the grouping key adds run_id and rank: one group per process)
PUSH_JOB = "carbon-core"
PUSH_TIMEOUT_S = 5.0


class FiguresCollector:
    """The latest figures as metric families; ``figures`` is replaced in one assignment."""

    def __init__(self, labels: Labels) -> None:
        self.common = [
            labels.job_id,
            labels.run_id,
            labels.host,
            str(labels.node_rank),
            str(labels.rank),
            labels.zone,
        ]
        self.figures: Optional[Figures] = None

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        if figures is None:
            return
        names = [*COMMON, *PER_DEVICE]
        energy = CounterMetricFamily(
            "carbon_energy_joules", "Energy drawn since the run started, per device (J).", labels=names
        )
        co2 = CounterMetricFamily(
            "carbon_co2eq_grams",
            "Emissions since the run started, per device (g CO2-equivalent; PUE and the grid "
            "intensity in force at each interval included).",
            labels=names,
        )
        power = GaugeMetricFamily(
            "carbon_power_watts", "Mean power over the latest interval, per device (W).", labels=names
        )
        for d in figures.devices:
            values = [*self.common, d.component, d.channel, d.method]
            energy.add_metric(values, d.energy_j)
            co2.add_metric(values, d.co2eq_g)
            power.add_metric(values, d.power_w)
        intensity = GaugeMetricFamily(
            "carbon_grid_intensity_grams_per_kwh",
            "Grid carbon intensity in force (g CO2-equivalent per kWh); source: where it comes from.",
            labels=[*COMMON, "source"],
        )
        intensity.add_metric([*self.common, figures.intensity_source], figures.intensity_gco2eq_per_kwh)
        yield from (energy, co2, power, intensity)


def _registry(collector: FiguresCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # a collector by its collect()
    return registry


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # no line per scrape on stderr
        pass


class PullEndpoint(Exporter):
    """``/metrics`` on ``address:port + local rank`` (each rank of a node on its own port)."""

    name = "prometheus"

    def __init__(self, labels: Labels, listen: tuple[str, int]) -> None:
        self.collector = FiguresCollector(labels)
        self.address, self.port = listen[0], listen[1] + labels.local_rank
        self._server: Optional[WSGIServer] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        server_class = type("_Endpoint", (_Server,), {"address_family": family})
        app = make_wsgi_app(_registry(self.collector))
        try:
            server: WSGIServer = make_server(
                self.address, self.port, app, server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise OSError(
                f"cannot serve /metrics on {self.address}:{self.port}: {exc.strerror or exc}"
            ) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="carbon-core-prometheus",
            daemon=True,
        )
        self._thread.start()

    def publish(self, figures: Figures) -> None:
        self.collector.figures = figures

    def close(self, figures: Figures, timeout_s: float) -> None:
        """The final figures stay on show until the endpoint closes, here (a later start binds again)."""
        self.collector.figures = figures
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # at most one poll interval (50 ms)
            server.server_close()


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _handler(loopback: bool) -> Callable[..., Callable[[], None]]:
    """prometheus_client's push handler, but a loopback gateway is never reached through a proxy."""

    def handler(
        url: str, method: str, timeout: Optional[float], headers: Sequence[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        def send() -> None:
            request = urllib.request.Request(url, data=data, method=method)
            for key, value in headers:
                request.add_header(key, value)
            handlers = [urllib.request.ProxyHandler({})] if loopback else []
            with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as response:
                if response.status >= 400:
                    raise OSError(f"pushgateway answered {response.status} {response.reason}")

        return send

    return handler


class Pushgateway(Exporter):
    """A push (PUT: the group holds exactly this process's figures) after every interval, on a
    thread of its own, and once at stop. Group: ``job="carbon-core"``, ``run_id``, ``rank``."""

    name = "pushgateway"

    def __init__(self, labels: Labels, url: str, faults: FaultLog) -> None:
        self.url, self.faults = url, faults
        self.collector = FiguresCollector(labels)
        self._registry = _registry(self.collector)
        self._grouping = {"run_id": labels.run_id, "rank": str(labels.rank)}
        self._handler = _handler(_loopback(url))
        self._sender: Optional[Sender] = None

    def start(self) -> None:
        self._sender = Sender("pushgateway", self._push, self._failed)

    def publish(self, figures: Figures) -> None:
        if self._sender is not None:
            self._sender.offer(figures)

    def close(self, figures: Figures, timeout_s: float) -> None:
        sender, self._sender = self._sender, None
        if sender is not None and not sender.close(figures, timeout_s):
            self.faults.warn(
                "export:pushgateway:close",
                f"pushgateway {self.url}: the final push did not finish within {timeout_s:.1f} s; "
                "the run log holds the final figures",
            )

    def _push(self, figures: Figures) -> None:
        self.collector.figures = figures
        push_to_gateway(
            self.url, job=PUSH_JOB, registry=self._registry, grouping_key=self._grouping,
            timeout=PUSH_TIMEOUT_S, handler=self._handler,
        )  # fmt: skip

    def _failed(self, exc: BaseException) -> None:
        self.faults.warn(
            "export:pushgateway",
            f"pushgateway {self.url}: push failed ({exc!r}); measuring and the run log go on "
            "(later failures are not reported again)",
        )
