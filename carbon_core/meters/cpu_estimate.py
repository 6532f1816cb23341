"""CPU energy estimated from the run's CPU time, where RAPL is unavailable.

Each sampler interval, the run's CPU seconds over the interval's wall seconds are its busy
threads; :mod:`~carbon_core.meters.cpu_power` turns them into watts (per busy vCPU on a
virtual machine, on a measured load curve on bare metal, capped at the container's CPU
quota), and watts x seconds add up. What the model assumed (the machine, the path, the
watts per busy thread, the quota) is the meter's ``info["method"]``, kept in the run log and
given once as a note in the summary. The figure is labelled ``estimated`` everywhere.

CPU seconds are counted process by process (:class:`CpuLedger`): each process, known by pid
and start time, adds what it used since it was last seen. A process that leaves the tree
(it ended, or it was orphaned and re-parented outside) keeps what it used, and the others'
later work counts at once. A summed total with a high-water mark would, instead, go down
when a process leaves and then ignore the others' work until it climbed back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel
from carbon_core.meters.cpu_model import read_cpuinfo
from carbon_core.meters.cpu_power import lookup_tdp, normalise_model, power_model, tdp_table
from carbon_core.meters.cpu_quota import cpu_allowance
from carbon_core.meters.processes import (
    CpuReading,
    ProcessSelector,
    ProcessTreeMeter,
    cpu_reading,
    still_running,
)

__all__ = ["CpuEstimateMeter", "CpuLedger", "lookup_tdp", "normalise_model", "tdp_table"]


class _Seen(NamedTuple):
    proc: Any
    reading: CpuReading


class CpuLedger:
    """CPU seconds the measured processes used since the ledger began, counted per process.

    A child that ends and is waited for by a measured parent moves its time into the
    parent's ``reaped`` seconds: what the ledger had counted of it is owed back by the
    parent (``_credit``), so only the part not seen yet counts. A child waited for by a
    process outside the tree (an orphan re-parented to init) keeps what it had used, and a
    process first seen at a later refresh of the list counts all its time since birth.
    """

    def __init__(self, select: ProcessSelector) -> None:
        self._select = select
        self._seen: dict[tuple[int, float], _Seen] = {}
        self._credit: dict[tuple[int, float], float] = {}
        self.update(count=False)  # baseline: time used before the start is not counted

    def update(self, count: bool = True) -> float:
        """CPU seconds used since the last update; a process gone or inaccessible is skipped."""
        now: dict[tuple[int, float], _Seen] = {}
        for proc in self._select():
            try:
                reading = cpu_reading(proc)
            except Exception:
                continue
            now[reading.key] = _Seen(proc, reading)
        self._settle_departed(now)
        added = 0.0
        for key, seen in now.items():
            new, old = seen.reading, self._seen.get(key)
            if old is None:  # new since the start: all its time
                added += (new.own + new.reaped) if count else 0.0
                self._seen[key] = seen
                continue
            own = max(0.0, new.own - old.reading.own)  # a reading never counts back
            reaped = max(0.0, new.reaped - old.reading.reaped)
            owed = min(self._credit.get(key, 0.0), reaped)  # children already counted
            if owed:
                self._credit[key] -= owed
            added += own + reaped - owed
            high = new._replace(own=max(new.own, old.reading.own), reaped=max(new.reaped, old.reading.reaped))
            self._seen[key] = _Seen(seen.proc, high)
        return added

    def _settle_departed(self, now: dict[tuple[int, float], _Seen]) -> None:
        """Forget the processes no longer listed; one that ended owes its time to its parent."""
        parents = {key[0]: key for key in now}
        for key in self._seen.keys() - now.keys():
            gone = self._seen.pop(key)
            self._credit.pop(key, None)
            parent = parents.get(gone.reading.ppid)
            if parent is not None and not still_running(gone.proc, key):
                self._credit[parent] = self._credit.get(parent, 0.0) + gone.reading.own + gone.reading.reaped


class CpuEstimateMeter(ProcessTreeMeter):
    """``cpu:estimate``: the power of the run's busy threads, integrated (see :mod:`.cpu_power`).

    ``model``/``sockets`` replace what ``/proc/cpuinfo`` says; ``cpuinfo`` and ``cgroup_root``
    replace ``CARBON_CPUINFO`` and ``CARBON_CGROUP_ROOT``.
    """

    name = "cpu-estimate"

    def __init__(
        self,
        faults: FaultLog | None = None,
        processes: ProcessSelector | None = None,
        model: str | None = None,
        sockets: int | None = None,
        cpuinfo: str | None = None,
        cgroup_root: str | None = None,
    ) -> None:
        super().__init__(faults, processes)
        if sockets is not None and (isinstance(sockets, bool) or not isinstance(sockets, int) or sockets < 1):
            raise ValueError(f"sockets must be a whole number of sockets, 1 or more, got {sockets!r}")
        cpu = read_cpuinfo(cpuinfo)
        self.power, warnings = power_model(cpu, cpu_allowance(cgroup_root), model, sockets)
        self.model = model or cpu.model_name
        for message in warnings:
            self.faults.warn("cpu-estimate:unknown-model", message)
        self.channels = (Channel("cpu:estimate", "cpu", "estimated"),)
        self.info = dict(self.power.info)
        self.cpu_seconds = 0.0  #: CPU seconds of the measured processes since the start
        self._joules = 0.0
        self._start_t = self._last_t = time.monotonic()
        self._ledger = CpuLedger(self._select)

    def read(self) -> Mapping[str, float]:
        now = time.monotonic()
        used = self._ledger.update()
        dt, self._last_t = now - self._last_t, now
        self.cpu_seconds += used
        power = self.power
        if dt > 0:
            busy = used / dt
            self._joules += power.watts(busy) * dt
            if busy > power.limit:  # CPU time counted late (a child reaped now): at the average rate
                self._joules += (used - power.limit * dt) * power.watts(power.limit) / power.limit
        else:
            self._joules += used * power.per_thread_w
        # never more than the CPUs the run may use, all busy, since the start
        self._joules = min(self._joules, power.watts(power.limit) * (now - self._start_t))
        return {"cpu:estimate": self._joules}
