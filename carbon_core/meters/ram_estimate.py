"""RAM energy estimated from the memory the run actually holds.

Model: ``P = 0.392 W x GB in use``, where "in use" is the proportional set size (PSS) of
the measured processes (this process and its descendants by default), summed. PSS splits
each resident page between the processes that share it, so the pages a forked data-loader
worker shares with its parent count once, not once per worker as in a sum of resident set
sizes (RSS: x2.6 with a torch DataLoader of 2 workers over a 200 MB dataset, x3.6 with 3).
Never the host's total or used memory: in a container the host may show a terabyte it does
not own.

PSS is read from ``/proc/<pid>/smaps_rollup``, which walks the page tables: about 0.1 ms
plus 8 ms per GB resident, against 10 µs for the RSS in ``statm`` (Linux 6.18). So PSS is
read at most ``pss_budget`` (1 %) of the time: after a read that took ``c`` seconds the
next waits ``c / pss_budget`` (2 ms for 200 MB: every sample at 1 s; 0.8 s for 100 GB:
every 80 s), and in between each process's RSS is scaled by its own PSS/RSS ratio at the
last read (a process not seen then, by the tree's). The start reads RSS only (the training
thread starting a tracker never waits for a walk); the first read's ratios scale it. Since
Linux 5.10 a walk yields the lock it holds when the process maps or unmaps memory, so it
never stalls training. Where ``smaps_rollup`` cannot be read (not Linux, a kernel before
4.14, no permission) RSS is summed, and the method says so.

The constant is Cloud Carbon Footprint's memory coefficient, 0.392 W per GB (its
methodology page, "Memory"): the mean of Crucial's rule of thumb for DDR3/DDR4, "3 watts of
power for every 8GB" (0.375 W/GB), and Micron's DDR4 power model (technical note TN-40-07,
about 408 mW per DRAM: 0.408 W/GB). CodeCarbon 3.x instead charges 5 W per memory module,
which needs the module count of the machine, not the memory a run holds. Real DIMMs draw
about 2-5 W per 8 GB depending on generation and load, so the figure is an estimate
(labelled ``estimated``) with a wide band.
Where RAPL exposes a ``dram`` domain, that counter replaces this estimate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, PowerIntegrator
from carbon_core.meters.processes import ProcessSelector, ProcessTreeMeter

WATTS_PER_GB = 0.392  #: Cloud Carbon Footprint, from Crucial (0.375) and Micron TN-40-07 (0.408)
PSS_BUDGET = 0.01  #: the share of the time reading smaps_rollup may take
_GB = 1024**3
PSS_METHOD = (
    f"{WATTS_PER_GB} W per GB (Cloud Carbon Footprint's memory coefficient) of "
    "proportional set size (PSS, /proc/<pid>/smaps_rollup) summed over the "
    "run's processes: a page shared by forked processes (data-loader workers) counts once, split "
    "between them; PSS is read at most {budget:g}% of the time, and in between each process's "
    "resident set size (RSS) is scaled by its PSS/RSS ratio at the last read"
)
RSS_METHOD = (
    f"{WATTS_PER_GB} W per GB (Cloud Carbon Footprint's memory coefficient) of "
    "resident set size (RSS) summed over the run's processes, because their "
    "proportional set size (PSS, /proc/<pid>/smaps_rollup) cannot be read here: a page shared by "
    "forked processes (data-loader workers) counts once per process, an over-estimate"
)


def _pid(proc: Any) -> int:
    return int(getattr(proc, "pid", id(proc)))


def _pss_readable(proc: Any) -> bool:
    probe = getattr(proc, "pss_readable", None)
    return bool(probe()) if callable(probe) else False


def _rss(procs: list[Any]) -> dict[int, int]:
    """pid -> resident bytes; a process gone or inaccessible is skipped."""
    out: dict[int, int] = {}
    for proc in procs:
        try:
            out[_pid(proc)] = int(proc.memory_info().rss)
        except Exception:
            continue
    return out


class RamEstimateMeter(ProcessTreeMeter):
    """``ram``: 0.392 W per GB of memory the run holds, integrated over time."""

    name = "ram-estimate"

    def __init__(
        self,
        faults: FaultLog | None = None,
        processes: ProcessSelector | None = None,
        pss_budget: float = PSS_BUDGET,
    ) -> None:
        super().__init__(faults, processes)
        if not 0 < pss_budget <= 1:
            raise ValueError(f"pss_budget must be a share of the time in (0, 1], got {pss_budget!r}")
        self._budget = pss_budget
        self._ratio: dict[int, float] = {}  # pid -> PSS / RSS at the last PSS read
        self._tree_ratio = 1.0
        self._next_pss = 0.0  # monotonic time from which PSS may be read again
        self._integrator = PowerIntegrator()
        self.channels = (Channel("ram", "ram", "estimated"),)
        procs = list(self._select())
        self._pss = any(_pss_readable(proc) for proc in procs)  # opens the files, walks nothing
        self.info = {
            "watts_per_gb": WATTS_PER_GB,
            "source": "processes",
            "memory": "pss" if self._pss else "rss",
            "method": PSS_METHOD.format(budget=pss_budget * 100) if self._pss else RSS_METHOD,
            "assumed": f"{WATTS_PER_GB} W per GB of memory the run's processes hold "
            f"({'PSS' if self._pss else 'RSS'}; Cloud Carbon Footprint's coefficient)",
        }
        # The first power figure: RSS now, scaled by the ratios the first read finds, so that
        # the training thread starting the tracker never waits for a walk of the page tables.
        self._first: tuple[dict[int, int], float] | None = (_rss(procs), time.monotonic())

    def memory_bytes(self) -> int:
        """Bytes the measured processes hold: PSS where it can be read, else RSS (see the module)."""
        procs = list(self._select())
        if self._pss and time.monotonic() >= self._next_pss:
            return self._read_pss(procs)
        return self._scaled(_rss(procs))

    def _scaled(self, rss: dict[int, int]) -> int:
        return int(sum(size * self._ratio.get(pid, self._tree_ratio) for pid, size in rss.items()))

    def _read_pss(self, procs: list[Any]) -> int:
        started = time.perf_counter()
        ratio: dict[int, float] = {}
        rss_sum = pss_sum = 0
        without: list[str] = []  # processes counted by RSS, with why
        for proc in procs:
            try:
                rss, pss = proc.memory_pss()
            except Exception as exc:
                try:
                    rss = pss = proc.memory_info().rss
                except Exception:  # gone or inaccessible: skipped
                    continue
                without.append(f"pid {_pid(proc)}: {exc}")
            ratio[_pid(proc)] = pss / rss if rss else 1.0
            rss_sum, pss_sum = rss_sum + rss, pss_sum + pss
        if without:
            self.faults.warn(
                "ram-estimate:rss",
                f"RAM estimate: the proportional set size of {len(without)} process(es) cannot be "
                f"read ({without[0]}); their resident set size is counted instead, so pages they "
                "share with other processes of the run may count twice",
            )
        self._ratio, self._tree_ratio = ratio, (pss_sum / rss_sum if rss_sum else 1.0)
        self._next_pss = time.monotonic() + (time.perf_counter() - started) / self._budget
        return pss_sum

    def power_w(self) -> float:
        return WATTS_PER_GB * self.memory_bytes() / _GB

    def read(self) -> Mapping[str, float]:
        watts = self.power_w()
        if self._first is not None:
            rss, started = self._first
            self._integrator.add(WATTS_PER_GB * self._scaled(rss) / _GB, started)
            self._first = None
        return {"ram": self._integrator.add(watts, time.monotonic())}
