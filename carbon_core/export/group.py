"""The exporters of one run: started with it, fed by its sampler, closed once at its stop.

Exporting never breaks or slows training. Every call into an exporter is guarded here: a
fault (a port in use, a dead endpoint, a library error) is one warning in the run's
:class:`~carbon_core.faults.FaultLog`, which the run log records, and the other exporters
go on. An exporter whose ``start`` failed is dropped. Closing waits at most
:data:`CLOSE_S` for all of them together (a final push to a hung endpoint is abandoned).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Optional, Union

from carbon_core.accounting import Interval
from carbon_core.export.base import Exporter
from carbon_core.export.figures import Figures, Labels, Tally
from carbon_core.export.names import listen_address
from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel

#: how long stop() waits for the final export of every exporter, together (s)
CLOSE_S = 5.0


def build(
    names: Sequence[str],
    labels: Labels,
    faults: FaultLog,
    *,
    prometheus_listen: Union[int, str, None] = None,
    pushgateway_url: Optional[str] = None,
) -> list[Exporter]:
    """The exporters ``names`` asks for (checked at construction by the configuration)."""
    out: list[Exporter] = []
    for name in names:
        if name in ("prometheus", "pushgateway"):
            from carbon_core.export import prometheus

            if name == "prometheus":
                where = listen_address(str(prometheus_listen))
                assert where is not None  # checked by the configuration, which requires it
                out.append(prometheus.PullEndpoint(labels, where))
            else:
                assert pushgateway_url is not None
                out.append(prometheus.Pushgateway(labels, pushgateway_url, faults))
        elif name == "otlp":
            from carbon_core.export import otlp

            out.append(otlp.OtlpExporter(labels, faults))
    return out


class Exporters:
    """Fans the run's intervals out to its exporters, each fault reported once."""

    def __init__(
        self, exporters: Sequence[Exporter], channels: Mapping[str, Channel], intensity: float,
        source: str, faults: FaultLog,
    ) -> None:  # fmt: skip
        self.faults = faults
        self.tally = Tally(channels, intensity, source)
        self._exporters = list(exporters)
        self._closed = False

    @property
    def latest(self) -> Figures:
        return self.tally.latest

    def start(self) -> None:
        for exporter in list(self._exporters):
            if not self._guard(exporter, "start"):
                self._exporters.remove(exporter)
                continue
            self._guard(exporter, "publish")  # the zeros: every series exists from the start

    def interval(self, interval: Interval) -> None:
        """On the sampler thread (and once at stop, the final reading): publish at once."""
        self.tally.add(interval)
        for exporter in self._exporters:
            self._guard(exporter, "publish")

    def close(self) -> None:
        """The final figures to every exporter, once; waits at most :data:`CLOSE_S` in all."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + CLOSE_S
        for exporter in self._exporters:
            self._guard(exporter, "close", max(0.0, deadline - time.monotonic()))

    def _guard(self, exporter: Exporter, step: str, timeout_s: float = 0.0) -> bool:
        try:
            if step == "start":
                exporter.start()
            elif step == "publish":
                exporter.publish(self.tally.latest)
            else:
                exporter.close(self.tally.latest, timeout_s)
        except Exception as exc:
            self.faults.warn(
                f"export:{exporter.name}",
                f"{exporter.name} export failed ({exc!r}); measuring and the run log go on",
            )
            return False
        return True
