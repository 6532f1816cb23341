"""The power a run's busy CPU threads draw, where no counter measures it.

One rule on every machine: **a busy thread is charged the power it adds plus its share of
the idle power** (the machine's idle power over its hardware threads); threads the run
leaves idle are charged nothing (their idle power belongs to whatever else the machine
runs). A RAPL counter, where readable, measures the whole package instead, idle included.
``busy`` is the run's CPU seconds per wall second, capped at the CPUs it may use (the
container's cgroup quota and cpuset, :mod:`~carbon_core.meters.cpu_quota`).

Three paths, by what ``/proc/cpuinfo`` says (:mod:`~carbon_core.meters.cpu_model`):

* **virtual machine** (the ``hypervisor`` flag): the visible vCPUs are a slice of a host
  socket. Each busy vCPU is charged the SPECpower-measured full-load power per hardware
  thread of servers of its microarchitecture (``cpu_microarch_watts.csv``: Cloud Carbon
  Footprint's coefficients). Linear: the host is shared, so the package is awake anyway and
  the average thread is the marginal one.
* **bare metal, the whole machine**: the rated power (TDP, ``cpu_tdp_watts.csv``, x sockets)
  on a measured load curve: package power is 12 % of TDP idle, 32 % at 10 % load, 75 % at
  50 %, 102 % at 100 % (Teads' averages over SPECpower results, as published by Boavizta).
  A run of ``n`` busy threads out of ``T`` is charged ``TDP x (0.12 n/T + curve(n/T) -
  0.12)``: the first busy thread wakes the package (about 2 x TDP/T, against TDP/T under a
  straight line), later ones add less.
* **bare metal, a slice** (a quota or cpuset smaller than the machine): the rest of the
  machine is someone else's, so each busy thread is charged the average at full load,
  ``1.02 x TDP / T``.

A model the TDP table does not know takes the full-load power per thread of its
microarchitecture (or, unknown too, the median over all of them, as Cloud Carbon Footprint
does) in place of ``1.02 x TDP / T``, with a warning.
"""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from carbon_core.data import read_text
from carbon_core.meters.cpu_model import CpuInfo
from carbon_core.meters.cpu_quota import CpuAllowance

#: (load, package power as a share of TDP): Teads' SPECpower-derived averages (Boavizta)
LOAD_CURVE: tuple[tuple[float, float], ...] = ((0.0, 0.12), (0.1, 0.32), (0.5, 0.75), (1.0, 1.02))
CURVE_SOURCE = "Teads' SPECpower-derived TDP curve (Boavizta)"
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
    """``(watts, known)`` for a CPU model name as /proc/cpuinfo prints it (unknown: the
    median of the same vendor's models, never used for power by the estimate)."""
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
    vendor = "AMD" if "AMD" in model.upper() else "Intel" if "INTEL" in model.upper() else ""
    same = [w for k, w in table.items() if vendor and k.upper().startswith(vendor.upper())]
    return statistics.median(same or table.values()), False


class ArchWatts(NamedTuple):
    """SPECpower-measured server power per hardware thread, idle and at full load."""

    name: str
    idle_w: float
    full_w: float
    results: int  # SPECpower results averaged (0: the median over microarchitectures)


@lru_cache(maxsize=1)
def arch_table() -> dict[str, ArchWatts]:
    """Microarchitecture -> per-thread watts, from ``cpu_microarch_watts.csv``."""
    table: dict[str, ArchWatts] = {}
    for line in read_text("cpu_microarch_watts.csv").splitlines()[1:]:
        name, _vendor, _ccf, idle, full, results = line.split(",")
        table[name] = ArchWatts(name, float(idle), float(full), int(results))
    return table


def arch_watts(arch: str | None) -> tuple[ArchWatts, bool]:
    """``(watts, known)``: the microarchitecture's row, else the median over all rows."""
    table = arch_table()
    if arch in table:
        return table[arch], True
    rows = table.values()
    median = ArchWatts(
        "median of all microarchitectures",
        statistics.median(r.idle_w for r in rows),
        statistics.median(r.full_w for r in rows),
        0,
    )
    return median, False


def load_share(load: float) -> float:
    """Package power as a share of TDP at ``load`` (0..1): :data:`LOAD_CURVE`, linear between points."""
    load = min(max(load, 0.0), 1.0)
    for (x0, y0), (x1, y1) in zip(LOAD_CURVE, LOAD_CURVE[1:]):
        if load <= x1:
            return y0 + (y1 - y0) * (load - x0) / (x1 - x0)
    return LOAD_CURVE[-1][1]


@dataclass(frozen=True)
class PowerModel:
    """Watts for a number of busy threads, and the words that say what was assumed."""

    path: str  # "virtual machine", "bare metal", "bare metal, a slice"
    threads: int  # hardware threads the machine (VM: the VM) shows
    limit: float  # the most busy threads charged at once
    rated_w: float  # power of all ``threads`` at full load
    curve: bool  # the load curve (whole bare-metal machine) or linear per thread
    method: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def per_thread_w(self) -> float:
        """Watts per busy thread at full load (what a linear model charges per thread)."""
        return self.rated_w / self.threads

    def watts(self, busy: float) -> float:
        """Power charged for ``busy`` threads kept busy on average (capped at :attr:`limit`)."""
        n = min(max(busy, 0.0), self.limit)
        if not self.curve:
            return n * self.per_thread_w
        idle = LOAD_CURVE[0][1]
        u = n / self.threads
        return self.rated_w / LOAD_CURVE[-1][1] * (idle * u + load_share(u) - idle)


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.0f}"


def _article(word: str) -> str:
    return "an" if word[:1].upper() in "AEIOU8" else "a"


def power_model(
    cpu: CpuInfo, allowance: CpuAllowance, model: str | None = None, sockets: int | None = None
) -> tuple[PowerModel, list[str]]:
    """The power model of this machine, and the warnings to give (unknown model or microarchitecture)."""
    name = normalise_model(model or cpu.model_name) or "unknown CPU"
    threads = cpu.logical_cpus or os.cpu_count() or 1
    limit_found = allowance.limit()
    limit = float(threads) if limit_found is None else min(float(threads), limit_found)
    arch = cpu.microarchitecture
    warnings: list[str] = []
    bound = ""
    if limit < threads:
        what = "cgroup quota" if allowance.quota_cpus == limit_found else "cgroup cpuset"
        bound = f"; at most {_fmt(limit)} busy at once ({what})"
    info: dict[str, Any] = {
        "model": model or cpu.model_name,
        "microarchitecture": arch,
        "virtual_machine": cpu.virtual,
        "logical_cpus": threads,
        "cpu_limit": limit,
        "quota_cpus": allowance.quota_cpus,
        "cpuset_cpus": allowance.cpuset_cpus,
        "cpuinfo": cpu.source,
    }
    per_arch, arch_known = arch_watts(arch)
    arch_words = (
        f"SPECpower: full-load server power per hardware thread, mean of {per_arch.results} {arch} results, "
        "Cloud Carbon Footprint's coefficients"
        if arch_known
        else "SPECpower: full-load server power per hardware thread, median over microarchitectures, "
        "Cloud Carbon Footprint's coefficients"
    )
    share = f"{_fmt(limit)} of {threads}" if limit < threads else f"{threads}"
    if cpu.virtual:
        rated = per_arch.full_w * threads
        method = (
            f"{share} vCPUs of {_article(name)} {name} (virtual "
            f"machine, {arch or 'microarchitecture unknown'}): "
            f"{per_arch.full_w:.2f} W per busy vCPU ({arch_words}); each busy vCPU carries its share of the "
            f"idle power, idle vCPUs are charged nothing{bound}"
        )
        if not arch_known:
            warnings.append(
                f"CPU estimate: the microarchitecture of {name!r} (family {cpu.family}, model {cpu.model}) "
                f"is not known; each busy vCPU is charged the median over microarchitectures, "
                f"{per_arch.full_w:.2f} W"
            )
        pm = PowerModel("virtual machine", threads, limit, rated, False, method, info)
        info.update(path=pm.path, watts_per_busy_thread=pm.per_thread_w, method=method)
        return pm, warnings
    tdp, known = lookup_tdp(name)
    socket_count = sockets or cpu.sockets
    if known:
        rated = tdp * socket_count * LOAD_CURVE[-1][1]
        rating = f"TDP {socket_count} x {tdp:g} W" if socket_count > 1 else f"TDP {tdp:g} W"
    else:
        rated = per_arch.full_w * threads
        rating = f"not in the TDP table: {per_arch.full_w:.2f} W per thread at full load, {arch_words}"
        warnings.append(
            f"CPU model {name!r} is not in the bundled TDP table; the CPU estimate uses the full-load "
            f"power per thread of SPECpower servers of its microarchitecture ({arch or 'unknown'}), "
            f"{per_arch.full_w:.2f} W"
        )
    whole = limit >= threads
    path = "bare metal" if whole else "bare metal, a slice"
    pm = PowerModel(path, threads, limit, rated, whole, "", info)
    if whole:
        method = (
            f"{threads} threads of {_article(name)} {name} (bare metal, {rating}): package power by load on "
            f"{CURVE_SOURCE}: 12 % of TDP idle, 32 % at 10 % load, 75 % at 50 %, 102 % at 100 %; a busy "
            f"thread is charged the power it adds plus 1/{threads} "
            f"of the idle power: {pm.watts(1):.3g} W for "
            f"the first, {pm.per_thread_w:.3g} W each when all are busy; idle threads are not charged"
        )
    else:
        method = (
            f"{share} threads of {_article(name)} {name} (bare metal, {rating}): "
            f"{pm.per_thread_w:.3g} W per busy thread, the power at full load over the threads "
            f"(the rest of the machine is shared: its idle power is not charged){bound}"
        )
    pm = PowerModel(path, threads, limit, rated, whole, method, info)
    info.update(
        path=path,
        tdp_w=tdp * socket_count if known else None,
        tdp_known=known,
        watts_per_busy_thread=pm.per_thread_w,
        first_thread_w=pm.watts(1),
        method=method,
    )
    return pm, warnings
