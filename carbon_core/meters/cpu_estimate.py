"""CPU energy estimated as TDP x this run's share of CPU time, where RAPL is unavailable.

Model: ``P = TDP_total x (cpu_seconds of the measured processes / (wall seconds x logical
CPUs))``. ``TDP_total`` is the thermal design power of this CPU model (from the bundled
``cpu_tdp_watts.csv``) times the number of sockets. The figure attributes to the run its
share of the package's rated power; it ignores idle power and turbo above TDP, so it is an
estimate (labelled ``estimated`` everywhere) with a wide uncertainty band. Where the model
is not in the table the fallback is the median TDP of the table's models of the same vendor
(all models when the vendor is unknown), with a warning that names the model.

CPU seconds are counted process by process (:class:`CpuLedger`): each process, known by pid
and start time, adds what it used since it was last seen. A process that leaves the tree
(it ended, or it was orphaned and re-parented outside) keeps what it used, and the others'
later work counts at once. A summed total with a high-water mark would, instead, go down
when a process leaves and then ignore the others' work until it climbed back.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from carbon_core.data import read_text
from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel
from carbon_core.meters.processes import (
    CpuReading,
    ProcessSelector,
    ProcessTreeMeter,
    cpu_reading,
    still_running,
)

METHOD = (
    "TDP x the run's share of the logical CPUs: user + system CPU seconds of its processes, "
    "counted per process (pid and start time) with ended children through the parent that "
    "waited for them; idle power and turbo above TDP are not counted"
)
_NOISE = re.compile(
    r"\((?:R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|@.*$|\b\d+-Core\b|\bwith Radeon.*$|\s+Graphics\b",
)


@lru_cache(maxsize=1)
def tdp_table() -> dict[str, float]:
    """Model -> TDP in watts, from the bundled two-column CSV (``model,tdp_w``).

    Split by hand rather than by the ``csv`` module (3x faster, and this runs as a tracker
    starts): the figure is after the last comma, a model holding a comma is quoted.
    """
    table: dict[str, float] = {}
    for line in read_text("cpu_tdp_watts.csv").splitlines()[1:]:
        model, _, watts = line.rpartition(",")
        if len(model) > 1 and model[0] == model[-1] == '"':
            model = model[1:-1].replace('""', '"')
        try:
            table[model.strip()] = float(watts)
        except ValueError:  # a malformed figure in the source: the model is treated as unknown
            continue
    return table


def normalise_model(name: str) -> str:
    return " ".join(_NOISE.sub(" ", name).split())


def lookup_tdp(model: str) -> tuple[float, bool]:
    """``(watts, known)`` for a CPU model name as /proc/cpuinfo prints it."""
    table = tdp_table()
    clean = normalise_model(model)
    if clean in table:
        return table[clean], True
    lowered = f" {clean.lower()} "
    best = ""
    for key in table:
        k = key.lower()
        # the longest key of 4+ characters, digits among them, that is whole words of the model
        # (``k in lowered`` first: a quick test that rejects almost every key)
        if (
            k in lowered
            and len(k) > len(best)
            and len(k) >= 4
            and f" {k} " in lowered
            and any(c.isdigit() for c in k)
        ):
            best = key
    if best:
        return table[best], True
    import statistics  # only for a model the table does not know

    vendor = "AMD" if "AMD" in model.upper() else "Intel" if "INTEL" in model.upper() else ""
    same = [w for k, w in table.items() if vendor and k.upper().startswith(vendor.upper())]
    return statistics.median(same or table.values()), False


def cpu_info(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> tuple[str, int]:
    """``(model name, number of sockets)`` of this machine."""
    model, sockets = "", set()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "physical id":
                sockets.add(value.strip())
    except OSError:
        pass
    if not model:
        import platform

        model = platform.processor() or "unknown CPU"
    return model, max(1, len(sockets))


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
    """``cpu:estimate``: TDP x CPU-time share of the measured processes, integrated."""

    name = "cpu-estimate"

    def __init__(
        self,
        faults: FaultLog | None = None,
        processes: ProcessSelector | None = None,
        model: str | None = None,
        sockets: int | None = None,
    ) -> None:
        super().__init__(faults, processes)
        found_model, found_sockets = cpu_info()
        self.model = model or found_model
        tdp, known = lookup_tdp(self.model)
        self.tdp_w = tdp * (sockets or found_sockets)
        if not known:
            self.faults.warn(
                "cpu-estimate:unknown-model",
                f"CPU model {self.model!r} is not in the bundled TDP table; the CPU estimate "
                f"uses the median TDP of similar models, {tdp:.0f} W per socket",
            )
        self._ncpu = os.cpu_count() or 1
        self._joules = 0.0
        self.channels = (Channel("cpu:estimate", "cpu", "estimated"),)
        self.info = {
            "model": self.model,
            "tdp_w": self.tdp_w,
            "tdp_known": known,
            "logical_cpus": self._ncpu,
            "method": METHOD,
        }
        self._start_t = time.monotonic()
        self._ledger = CpuLedger(self._select)

    def read(self) -> Mapping[str, float]:
        # energy = TDP x (CPU seconds / logical CPUs): power x dt with the interval's share
        self._joules += self.tdp_w * self._ledger.update() / self._ncpu
        # never more than the whole package at its TDP since the start
        self._joules = min(self._joules, self.tdp_w * (time.monotonic() - self._start_t))
        return {"cpu:estimate": self._joules}
