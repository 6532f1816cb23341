"""RAM energy estimated from the memory the run actually holds.

Model: ``P = 0.375 W x GB in use``, where "in use" is the resident memory of the measured
processes (this process and its descendants by default), or, when ``source="cgroup"``,
the memory charged to this process's cgroup (``memory.current``, cgroup v2). Never the
host's total or used memory: in a container the host may show a terabyte it does not own.

The constant is the one CodeCarbon uses (3 W per 8 GB, from DDR4 module power figures in
Micron's DDR4 power calculator); real DIMMs draw 2-5 W per 8 GB depending on generation
and load, so the figure is an estimate (labelled ``estimated``) with a wide band.
Where RAPL exposes a ``dram`` domain, that counter replaces this estimate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, Meter, PowerIntegrator
from carbon_core.meters.processes import ProcessSelector, process_tree

WATTS_PER_GB = 0.375
_GB = 1024**3


def cgroup_memory_bytes(proc_self: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int:
    """Bytes charged to this process's cgroup v2 (``memory.current``)."""
    for line in Path(proc_self).read_text().splitlines():
        hierarchy, _, path = line.split(":", 2)
        if hierarchy == "0":
            return int((Path(root) / path.lstrip("/") / "memory.current").read_text())
    raise OSError("no cgroup v2 hierarchy for this process")


class RamEstimateMeter(Meter):
    """``ram``: 0.375 W per GB of memory the run holds, integrated over time."""

    name = "ram-estimate"

    def __init__(
        self,
        faults: FaultLog | None = None,
        processes: ProcessSelector | None = None,
        source: str = "processes",
    ) -> None:
        super().__init__(faults)
        if source not in ("processes", "cgroup"):
            raise ValueError(f"source must be 'processes' or 'cgroup', got {source!r}")
        self._source = source
        self._select = processes or process_tree()
        self._integrator = PowerIntegrator()
        self.channels = (Channel("ram", "ram", "estimated"),)
        self.info = {"watts_per_gb": WATTS_PER_GB, "source": source}
        self._integrator.add(self.power_w(), time.monotonic())

    def memory_bytes(self) -> int:
        if self._source == "cgroup":
            return cgroup_memory_bytes()
        total = 0
        for proc in self._select():
            try:
                total += proc.memory_info().rss
            except Exception:  # process gone: it stops counting
                continue
        return total

    def power_w(self) -> float:
        return WATTS_PER_GB * self.memory_bytes() / _GB

    def read(self) -> Mapping[str, float]:
        return {"ram": self._integrator.add(self.power_w(), time.monotonic())}
