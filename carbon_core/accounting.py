"""Turns meter readings into energy and emissions, interval by interval.

Each sampler interval's energy is multiplied by the PUE and by the grid intensity in
force during that interval, so the emissions follow the intensity as a step function over
time (not one average for the run). Energy is kept per channel, in joules, cumulative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from carbon_core.meters.base import COMPONENTS, Channel
from carbon_core.snapshot import J_PER_KWH as J_PER_KWH  # where it has always been imported from
from carbon_core.snapshot import OTHER, Phase, add_phases

#: The most power one channel can plausibly draw, in W. The largest parts on sale in 2026
#: draw about 1.4 kW per GPU (NVIDIA B300, AMD MI355X: 1,400 W board power) and 500 W per CPU
#: socket (AMD EPYC 9965, Intel Xeon 6980P); a channel may cover several sockets or DIMM
#: banks. Each ceiling is at least twice the largest part, so only glitches exceed it.
MAX_POWER_W = {"gpu": 3000.0, "cpu": 5000.0, "ram": 2000.0}
#: A ceiling applies to at least this long a stretch: counters advance in steps (NVML's
#: energy counter about every 20-100 ms), so a very short interval may hold a whole step.
MIN_CEILING_S = 1.0


@dataclass(frozen=True)
class Interval:
    """One sampler interval, as the run log stores it."""

    t0: float  # seconds since start
    t1: float
    joules: Mapping[str, float]  # cumulative joules per channel at t1
    energy_j: float  # drawn during the interval (all channels)
    co2eq_g: float  # emitted during the interval, PUE included
    intensity: float  # gCO2eq/kWh in force during the interval
    intensity_source: str
    #: channels whose reading was rejected as implausible (not counted; see Accounting.add)
    rejected: tuple[str, ...] = ()

    @property
    def power_w(self) -> float:
        return self.energy_j / (self.t1 - self.t0) if self.t1 > self.t0 else 0.0


class Accounting:
    """Cumulative energy per channel and emissions; not thread-safe (the sampler owns it).

    Plausibility: a channel's reading that implies more than its component's ceiling
    (:data:`MAX_POWER_W`) over the interval is rejected: it adds no energy and the interval
    lists it. If the next reading is plausible from the last accepted one, the rejected one
    was a glitch; if it is plausible only from the rejected one, the meter's counter jumped
    for good, and counting goes on from there (the energy of the jump's interval is lost).
    """

    def __init__(self, pue: float = 1.0) -> None:
        self.pue = pue
        self.channels: dict[str, Channel] = {}
        self.joules: dict[str, float] = {}  # counted, cumulative
        self.co2eq_g = 0.0
        self.t = 0.0
        self._raw: dict[str, float] = {}  # the meter's reading last counted from
        self._rejected: dict[str, float] = {}  # a rejected reading, until the next one

    def add_channels(self, channels: tuple[Channel, ...]) -> None:
        for c in channels:
            self.channels[c.name] = c
            self.joules.setdefault(c.name, 0.0)
            self._raw.setdefault(c.name, 0.0)

    def add(self, t: float, readings: Mapping[str, float], intensity: float, source: str) -> Interval:
        """Account the readings taken at ``t`` (seconds since start; cumulative J per channel)."""
        energy, rejected = 0.0, []
        span = max(t - self.t, MIN_CEILING_S)
        for name, value in readings.items():
            channel = self.channels.get(name)
            limit = MAX_POWER_W.get(channel.component if channel else "", max(MAX_POWER_W.values())) * span
            before = self._raw.get(name, 0.0)
            jumped_from = self._rejected.pop(name, None)
            if value - before > limit:
                if jumped_from is None or not 0.0 <= value - jumped_from <= limit:
                    self._rejected[name] = value
                    rejected.append(name)
                    continue
                before = jumped_from  # the counter jumped and stayed: count on from there
            if value > before:  # meters never go back; a smaller value adds nothing
                energy += value - before
                self.joules[name] = self.joules.get(name, 0.0) + value - before
                self._raw[name] = value
            elif jumped_from is not None and before == jumped_from:
                self._raw[name] = value
        co2 = energy / J_PER_KWH * self.pue * intensity
        self.co2eq_g += co2
        interval = Interval(self.t, t, dict(self.joules), energy, co2, intensity, source, tuple(rejected))
        self.t = t
        return interval

    def kwh(self, component: str | None = None) -> float | None:
        """kWh of one component (None when nothing measures it), or of all."""
        names = [n for n, c in self.channels.items() if component in (None, c.component)]
        if component is not None and not names:
            return None
        return sum(self.joules[n] for n in names) / J_PER_KWH

    def methods(self) -> dict[str, str]:
        out: dict[str, str] = {n: c.method for n, c in sorted(self.channels.items())}
        measured = {c.component for c in self.channels.values()}
        out.update({comp: "not measured" for comp in COMPONENTS if comp not in measured})
        return out


@dataclass(frozen=True)
class Carry:
    """Totals of the part of a run before a checkpoint, that a resumed run continues from
    (see :meth:`carbon_core.Tracker.state_dict`). Added to every snapshot in one place: the
    energy and emissions, the units of work (``samples``, ``tokens``) and the phase split."""

    duration_s: float = 0.0
    energy_gpu_kwh: Optional[float] = None
    energy_cpu_kwh: Optional[float] = None
    energy_ram_kwh: Optional[float] = None
    co2eq_kg: float = 0.0
    samples: Optional[float] = None
    tokens: Optional[float] = None
    phases: Mapping[str, Phase] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Carry:
        """From a checkpoint's dict; values that are not finite numbers >= 0 are ignored."""
        kept: dict[str, Any] = {}
        phases: dict[str, dict[str, float]] = {}
        for key in state:
            value = _non_negative(state, key)
            if value is None:
                continue
            if key in _NUMBERS:
                kept[key] = value
            elif isinstance(key, str) and key.startswith(_PHASE):  # phase/<name>/<field>
                name, _, part = key[len(_PHASE) :].rpartition("/")
                if name and part in _PHASE_FIELDS:
                    phases.setdefault(name, {})[part] = value
        return cls(**kept, phases={n: Phase(**v) for n, v in phases.items()})

    @classmethod
    def of(cls, totals: Any) -> Carry:
        """The carried totals of a snapshot (any object with the same field names)."""
        return cls(**{f.name: getattr(totals, f.name) for f in fields(cls)})

    def state(self) -> dict[str, float]:
        """The JSON-serialisable dict a checkpoint keeps (components not measured left out;
        each phase as ``phase/<name>/energy_kwh``, ``.../co2eq_kg``, ``.../duration_s``)."""
        out = {n: float(v) for n in _NUMBERS if (v := getattr(self, n)) is not None}
        for name, phase in self.phases.items():
            out.update({f"{_PHASE}{name}/{f}": float(getattr(phase, f)) for f in _PHASE_FIELDS})
        return out

    def energy_kwh(self, component: str, measured: Optional[float]) -> Optional[float]:
        """``measured`` kWh of ``component`` plus the carried kWh (None when neither has any)."""
        before: Optional[float] = getattr(self, f"energy_{component}_kwh")
        return measured if before is None else (measured or 0.0) + before

    def units(self, name: str, counted: Optional[float]) -> Optional[float]:
        """``counted`` samples or tokens (``name``) plus the carried ones (None when neither has any)."""
        before: Optional[float] = getattr(self, name)
        return counted if before is None else (counted or 0.0) + before

    def with_phases(self, own: Mapping[str, Phase]) -> dict[str, Phase]:
        """``own`` phases plus the carried ones. A checkpoint without a phase split (written
        before there was one) counts its energy in ``other``, so the phases still add up."""
        before: Mapping[str, Phase] = self.phases
        kwh = sum(v for c in COMPONENTS if (v := getattr(self, f"energy_{c}_kwh")) is not None)
        if not before and (kwh > 0 or self.co2eq_kg > 0):
            before = {OTHER: Phase(kwh, self.co2eq_kg, self.duration_s)}
        return add_phases(before, own) if before else dict(own)


_NUMBERS = tuple(f.name for f in fields(Carry) if f.name != "phases")
_PHASE = "phase/"
_PHASE_FIELDS = tuple(f.name for f in fields(Phase))


def _non_negative(state: Mapping[str, Any], key: str) -> Optional[float]:
    value = state[key]
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number >= 0 else None
