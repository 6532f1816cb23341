"""What every exporter publishes: per-device energy, emissions and power, and who measured them.

The figures are the run log's, interval by interval (the run log stays the record of
truth): cumulative joules per channel as accounted, and the interval's emissions shared
among the channels by the energy each drew in it (so the devices' grams add up to the
run's, PUE and the intensity in force included, without computing emissions a second
way). They cover this run from its start; a resumed run's carried totals are not in them
(a new run is a new ``run_id``, whose counters start at zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from carbon_core.accounting import Interval
from carbon_core.meters.base import Channel


@dataclass(frozen=True)
class Labels:
    """Who measured: the same on every figure of one process (a label set, a resource)."""

    job_id: str  #: shared by every process of one job ("" when no launcher says)
    run_id: str
    host: str
    node_rank: int
    rank: int
    local_rank: int
    zone: str  #: the grid zone of the intensity ("" when unknown)


@dataclass(frozen=True)
class Device:
    """One channel (``gpu:0``, ``cpu:package-0``, ``cpu:dram-0``, ``ram``) at one interval's end."""

    channel: str
    component: str  #: gpu, cpu or ram
    method: str  #: counter, power-sampled or estimated
    energy_j: float  #: cumulative since the run started
    co2eq_g: float  #: cumulative, PUE included
    power_w: float  #: mean over the latest interval


@dataclass(frozen=True)
class Figures:
    t: float  #: seconds since the run started
    devices: tuple[Device, ...]
    intensity_gco2eq_per_kwh: float
    intensity_source: str


class Tally:
    """Turns the run's intervals into :class:`Figures` (the sampler thread's; not thread-safe)."""

    def __init__(self, channels: Mapping[str, Channel], intensity: float, source: str) -> None:
        self._channels = dict(sorted(channels.items()))
        self._joules = dict.fromkeys(self._channels, 0.0)
        self._grams = dict.fromkeys(self._channels, 0.0)
        self.latest = self._figures(0.0, {}, intensity, source)

    def add(self, interval: Interval) -> Figures:
        span = interval.t1 - interval.t0
        power: dict[str, float] = {}
        for name in self._channels:
            drawn = interval.joules.get(name, self._joules[name]) - self._joules[name]
            if interval.energy_j > 0:
                self._grams[name] += interval.co2eq_g * drawn / interval.energy_j
            self._joules[name] += drawn
            power[name] = drawn / span if span > 0 else 0.0
        self.latest = self._figures(interval.t1, power, interval.intensity, interval.intensity_source)
        return self.latest

    def _figures(self, t: float, power: Mapping[str, float], intensity: float, source: str) -> Figures:
        devices = tuple(
            Device(n, c.component, c.method, self._joules[n], self._grams[n], power.get(n, 0.0))
            for n, c in self._channels.items()
        )
        return Figures(t, devices, intensity, source)
