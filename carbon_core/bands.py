"""How far each energy figure may be from the truth: uncertainty bands by measurement method.

Bands (relative, on energy), by how a figure was measured:

* ``counter`` (RAPL ``energy_uj``, the NVML total-energy counter): -5 % / +5 %. The
  hardware integrates power itself; NVIDIA documents its power readings as accurate to
  within +/-5 % of the draw, and RAPL package/DRAM energy tracks wall-plug measurements
  of the same parts within a few per cent (Khan et al., "RAPL in Action", ACM TOMPECS
  2018). Power outside the measured parts (fans, disks, PSU losses) is not in any figure.
* ``power-sampled`` (NVML power when the GPU has no energy counter): -15 % / +15 %. The
  same +/-5 % sensor, plus what sampling misses: the driver averages power over a short
  window inside each sample period, so load that changes faster than the sampler is
  caught only in part (Yang et al., "Part-time Power Measurements: nvidia-smi's Lack of
  Attention", 2024, found errors of this size and more on short, bursty kernels).
* ``estimated`` (CPU: watts per busy thread from the run's CPU time; RAM: 0.392 W per GB
  held): -50 % / +100 %. The CPU estimate charges each busy thread the power it adds plus
  its share of the idle power, and nothing for threads the run leaves idle (a RAPL counter
  would show the whole package's idle power besides). Its rates are averages: per vCPU, the
  SPECpower full-load power per thread of the microarchitecture's servers (whole-server wall
  power, so memory, fans and power-supply losses are in it); on bare metal, TDP on a
  SPECpower-derived load curve, where a real package at full load draws from about half its
  TDP to above it (turbo power limits), against measured RAPL profiles (``benchmarks/
  ACCURACY.md``: within this band on every path measured). RAM power per GB varies about
  two-fold with the DIMM technology and load. The band is wide and lopsided on purpose: an
  estimate may be half the truth or double it.

A component measured by several methods gets the band of its least precise one. The band
of the total adds the components' bands linearly (the errors are treated as fully
correlated: the conservative choice). The kgCO2eq band is the energy band carried through;
it does **not** include the grid intensity's own uncertainty (a yearly average from a table
can differ from the hour's real intensity by tens of per cent), which the summary names
with its source instead. Components that are not measured are not in the total.

``Snapshot.methods`` is keyed by channel (``gpu:0``, ``cpu:package-0``, ``cpu:dram-0``) and,
for components not measured, by component; :func:`component_of` maps a channel to its
component.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from carbon_core.meters.base import COMPONENTS
from carbon_core.snapshot import NOT_MEASURED, Snapshot

#: relative (low, high) error of energy by measurement method, most precise first
BANDS: Mapping[str, tuple[float, float]] = {
    "counter": (-0.05, 0.05),
    "power-sampled": (-0.15, 0.15),
    "estimated": (-0.50, 1.00),
}


def component_of(channel: str) -> str:
    """The component a channel belongs to (RAPL ``cpu:dram-N`` counts as RAM)."""
    return "ram" if "dram" in channel else channel.split(":", 1)[0]


def _precision(method: str) -> int:
    """0 for the most precise method; an unknown method ranks below every known one."""
    order = list(BANDS)
    return order.index(method) if method in BANDS else len(order)


def least_precise(a: str, b: str) -> str:
    """The less precise of two methods (``a`` when they rank the same)."""
    return a if _precision(a) >= _precision(b) else b


def component_methods(snapshot: Snapshot, component: str) -> list[str]:
    """The measurement methods behind one component, most precise first."""
    found = {m for ch, m in snapshot.methods.items() if component_of(ch) == component and m != NOT_MEASURED}
    return sorted(found, key=_precision)


def component_band(snapshot: Snapshot, component: str) -> Optional[tuple[float, float]]:
    """The relative band of one component: that of its least precise method (None when
    not measured). An unknown method gets the estimate's band."""
    methods = component_methods(snapshot, component)
    if snapshot.energy_by_component().get(component) is None or not methods:
        return None
    lows, highs = zip(*(BANDS.get(m, BANDS["estimated"]) for m in methods))
    return min(lows), max(highs)


def uncertainty(snapshot: Snapshot) -> dict[str, Any]:
    """Absolute bands: ``{"energy_kwh": [lo, hi], "co2eq_kg": [lo, hi], "<comp>": {...}}``."""
    out: dict[str, Any] = {}
    low = high = 0.0
    energy_of = snapshot.energy_by_component()
    for comp in COMPONENTS:
        kwh = energy_of[comp]
        band = component_band(snapshot, comp)
        if kwh is None or band is None:
            continue
        out[comp] = {
            "energy_kwh": [kwh * (1 + band[0]), kwh * (1 + band[1])],
            "relative": list(band),
            "methods": component_methods(snapshot, comp),
        }
        low += kwh * (1 + band[0])
        high += kwh * (1 + band[1])
    energy = snapshot.energy_kwh
    out["energy_kwh"] = [low, high]
    scale = (low / energy, high / energy) if energy > 0 else (1.0, 1.0)
    out["co2eq_kg"] = [snapshot.co2eq_kg * scale[0], snapshot.co2eq_kg * scale[1]]
    return out
