"""RAM energy estimated from the memory the run actually holds.

Model: ``P = 0.375 W x GB in use``, where "in use" is the resident memory of the measured
processes (this process and its descendants by default). Never the host's total or used
memory: in a container the host may show a terabyte it does not own.

The constant is the one CodeCarbon uses (3 W per 8 GB, from DDR4 module power figures in
Micron's DDR4 power calculator); real DIMMs draw 2-5 W per 8 GB depending on generation
and load, so the figure is an estimate (labelled ``estimated``) with a wide band.
Where RAPL exposes a ``dram`` domain, that counter replaces this estimate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, PowerIntegrator
from carbon_core.meters.processes import ProcessSelector, ProcessTreeMeter

WATTS_PER_GB = 0.375
_GB = 1024**3


class RamEstimateMeter(ProcessTreeMeter):
    """``ram``: 0.375 W per GB of memory the run holds, integrated over time."""

    name = "ram-estimate"

    def __init__(self, faults: FaultLog | None = None, processes: ProcessSelector | None = None) -> None:
        super().__init__(faults, processes)
        self._integrator = PowerIntegrator()
        self.channels = (Channel("ram", "ram", "estimated"),)
        self.info = {"watts_per_gb": WATTS_PER_GB, "source": "processes"}
        self._integrator.add(self.power_w(), time.monotonic())

    def memory_bytes(self) -> int:
        return int(self._total(lambda proc: proc.memory_info().rss))

    def power_w(self) -> float:
        return WATTS_PER_GB * self.memory_bytes() / _GB

    def read(self) -> Mapping[str, float]:
        return {"ram": self._integrator.add(self.power_w(), time.monotonic())}
