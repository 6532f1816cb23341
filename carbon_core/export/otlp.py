"""OpenTelemetry metrics: the user's meter provider (the global one, if they set one up), else
one of our own that sends OTLP over HTTP where the standard ``OTEL_EXPORTER_OTLP_*``
variables say (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``..._METRICS_ENDPOINT``, headers, timeout;
``OTEL_METRIC_EXPORT_INTERVAL`` for the period; ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_SERVICE_NAME``).

Names and units follow the hardware semantic conventions where they fit: ``hw.energy``
(counter, J) and ``hw.power`` (gauge, W), with ``hw.id`` (the channel: ``gpu:0``,
``cpu:package-0``) and ``hw.type`` (``gpu``, ``cpu``, ``memory``); the rest is under
``carbon.*``: ``carbon.emissions`` (counter, g CO2-equivalent, PUE included) and
``carbon.grid.intensity`` (gauge, g/(kW.h)). Every point has ``carbon.method`` (counter,
power-sampled, estimated); the intensity has ``carbon.intensity.source``.

Who measured (``host.name``, ``carbon.job.id``, ``carbon.run.id``, ``carbon.node.rank``,
``carbon.rank``, ``carbon.zone``) is the resource of our own provider; with the user's
provider, whose resource is theirs, these are attributes of every point instead.

The instruments are asynchronous: the SDK reads the latest figures on its own thread when
it collects. Our provider is shut down at stop (its final export, on a thread of ours,
waited for a bounded time); the user's provider is theirs to flush and shut down.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any, Optional

from carbon_core.export.base import Exporter
from carbon_core.export.figures import Device, Figures, Labels
from carbon_core.faults import FaultLog

HW_TYPE = {"gpu": "gpu", "cpu": "cpu", "ram": "memory"}
METER = "carbon_core"
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
#: the SDK logs every failed export (and every retry); ours are reported once, as a fault
_SDK_LOGGER = "opentelemetry.exporter.otlp.proto.http.metric_exporter"
_quiet = threading.local()


class _WhileOurs(logging.Filter):
    """Drops the SDK exporter's records emitted inside our own exporter's ``export`` call."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "active", False)


_FILTER = _WhileOurs()


def identity(labels: Labels) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "host.name": labels.host,
        "carbon.run.id": labels.run_id,
        "carbon.node.rank": labels.node_rank,
        "carbon.rank": labels.rank,
    }
    if labels.job_id:
        attrs["carbon.job.id"] = labels.job_id
    if labels.zone:
        attrs["carbon.zone"] = labels.zone
    return attrs


def _user_provider() -> Optional[Any]:
    """The global meter provider if the program set one (not the API's proxy or no-op default)."""
    from opentelemetry import metrics

    provider = metrics.get_meter_provider()
    return None if type(provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider") else provider


class OtlpExporter(Exporter):
    name = "otlp"

    def __init__(self, labels: Labels, faults: FaultLog) -> None:
        self.labels, self.faults = labels, faults
        self.figures: Optional[Figures] = None
        self.own: Optional[Any] = None  # our MeterProvider, when the user has none
        self._points: dict[str, Any] = {}
        self._pid = os.getpid()

    def start(self) -> None:
        self._pid = os.getpid()
        provider = _user_provider()
        if provider is None:
            provider = self.own = self._own_provider()
        else:
            self._points = identity(self.labels)
        from carbon_core._version import __version__

        meter = provider.get_meter(METER, __version__)
        meter.create_observable_counter(
            "hw.energy", [self._energy], unit="J", description="Energy consumed by the component."
        )
        meter.create_observable_gauge(
            "hw.power",
            [self._power],
            unit="W",
            description="Power consumed by the component (mean over the latest interval).",
        )
        meter.create_observable_counter(
            "carbon.emissions", [self._emissions], unit="g",
            description="Emissions in g CO2-equivalent (PUE and the grid intensity in force included).",
        )  # fmt: skip
        meter.create_observable_gauge(
            "carbon.grid.intensity", [self._intensity], unit="g/(kW.h)",
            description="Grid carbon intensity in force, g CO2-equivalent per kWh.",
        )  # fmt: skip

    def publish(self, figures: Figures) -> None:
        self.figures = figures

    def close(self, figures: Figures, timeout_s: float) -> None:
        self.figures = figures
        own, self.own = self.own, None
        if own is None:
            return
        done = threading.Thread(
            target=own.shutdown,
            kwargs={"timeout_millis": timeout_s * 1000},
            name="carbon-core-otlp",
            daemon=True,
        )
        done.start()
        done.join(timeout_s)
        if done.is_alive():
            self.faults.warn(
                "export:otlp:close",
                f"otlp: the final export did not finish within {timeout_s:.1f} s; "
                "the run log holds the final figures",
            )

    # -- our own provider -------------------------------------------------------------------
    def _own_provider(self) -> Any:
        for variable in _PROTOCOLS:
            protocol = os.environ.get(variable, "").strip()
            if protocol and protocol != "http/protobuf":
                raise ValueError(f"{variable}={protocol!r}: carbon-core sends OTLP over http/protobuf only")
            if protocol:
                break
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        resource = Resource.create(identity(self.labels))
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "carbon-core"}))
        reader = PeriodicExportingMetricReader(_reporting_exporter(self.faults))
        # no exit hook of the SDK's: the tracker's own stops it, after the final figures
        return MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)

    # -- the callbacks, on the SDK's collecting thread ------------------------------------------
    def _latest(self) -> Optional[Figures]:
        """The figures to report; none in a forked child (the SDK restarts its reader thread
        there, but the figures are the parent's, which reports them itself)."""
        return self.figures if os.getpid() == self._pid else None

    def _observe(self, value: str) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        figures = self._latest()
        for d in figures.devices if figures is not None else ():
            yield Observation(getattr(d, value), self._device_attrs(d))

    def _device_attrs(self, d: Device) -> dict[str, Any]:
        return {
            **self._points,
            "hw.id": d.channel,
            "hw.type": HW_TYPE.get(d.component, d.component),
            "carbon.method": d.method,
        }

    def _energy(self, options: Any) -> Iterable[Any]:
        return list(self._observe("energy_j"))

    def _power(self, options: Any) -> Iterable[Any]:
        return list(self._observe("power_w"))

    def _emissions(self, options: Any) -> Iterable[Any]:
        return list(self._observe("co2eq_g"))

    def _intensity(self, options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        figures = self._latest()
        if figures is None:
            return []
        attrs = {**self._points, "carbon.intensity.source": figures.intensity_source}
        return [Observation(figures.intensity_gco2eq_per_kwh, attrs)]


def _reporting_exporter(faults: FaultLog) -> Any:
    """The SDK's OTLP/HTTP exporter, its failures one fault instead of a log line per try."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import MetricExportResult

    logger = logging.getLogger(_SDK_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)

    class Reporting(OTLPMetricExporter):  # type: ignore[misc,unused-ignore]  # Any without the SDK
        def export(self, metrics_data: Any, timeout_millis: Optional[float] = 10_000, **kwargs: Any) -> Any:
            _quiet.active = True
            try:
                result = super().export(metrics_data, timeout_millis, **kwargs)
            finally:
                _quiet.active = False
            if result != MetricExportResult.SUCCESS:
                faults.warn(
                    "export:otlp",
                    f"otlp: export to {getattr(self, '_endpoint', 'the OTLP endpoint')} failed; "
                    "measuring and the run log go on "
                    "(later failures are not reported again)",
                )
            return result

    return Reporting()
