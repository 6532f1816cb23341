"""Optional RAPL backend through ``pyRAPL``, for users who already rely on it.

Selected by name (``meters=("pyrapl", ...)``). pyRAPL reads the same powercap files as
:mod:`carbon_core.meters.rapl` but always under ``/sys/class/powercap`` and without the
counter range, so a decrease is counted as a counter reset (nothing for that interval,
one warning) rather than unwrapped. Prefer the built-in ``rapl`` meter unless you need
pyRAPL's exact behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, Meter, MeterUnavailable


class PyRaplMeter(Meter):
    """Package (``cpu``) and DRAM (``ram``) energy per socket from ``pyRAPL.Sensor``."""

    name = "pyrapl"

    def __init__(self, faults: FaultLog | None = None) -> None:
        super().__init__(faults)
        try:
            from pyRAPL.sensor import Sensor
        except ImportError as exc:
            raise MeterUnavailable("pyRAPL is not installed: pip install 'carbon-core[pyrapl]'") from exc
        try:
            self._sensor = Sensor()
            start = list(self._sensor.energy())
        except Exception as exc:
            raise MeterUnavailable(f"pyRAPL cannot read RAPL here ({type(exc).__name__}: {exc})") from exc
        # energy() lists (package socket 0, dram socket 0, package socket 1, ...); -1 = absent
        self._slots = [i for i, v in enumerate(start) if v >= 0]
        self._last = {i: float(start[i]) for i in self._slots}
        self._joules = {i: 0.0 for i in self._slots}
        self.channels = tuple(self._channel(i) for i in self._slots)

    @staticmethod
    def _channel(slot: int) -> Channel:
        socket, is_dram = divmod(slot, 2)
        if is_dram:
            return Channel(f"cpu:dram-{socket}", "ram", "counter")
        return Channel(f"cpu:package-{socket}", "cpu", "counter")

    def read(self) -> Mapping[str, float]:
        now = self._sensor.energy()
        for i in self._slots:
            delta = now[i] - self._last[i]
            if delta < 0:
                self.faults.warn(
                    f"pyrapl:reset:{i}",
                    f"pyRAPL counter {self._channel(i).name} went backwards; interval not counted",
                )
                delta = 0
            self._last[i] = float(now[i])
            self._joules[i] += delta / 1e6
        return {self._channel(i).name: self._joules[i] for i in self._slots}
