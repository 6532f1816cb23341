"""The end-of-run summary a person reads: energy per component, kgCO2eq, and where each
figure comes from, with an honest uncertainty band.

Uncertainty bands (relative, on energy), by how a figure was measured:

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
* ``estimated`` (CPU: TDP x CPU-time share; RAM: 0.375 W per GB in use): -50 % / +100 %.
  TDP is a thermal rating, not a measurement: a busy CPU may draw well under it (light
  vector load, idle cores) or above it for a while (turbo power limits), and idle power
  is not proportional to CPU time; RAM power per GB varies about two-fold with the DIMM
  technology. The band is wide and lopsided on purpose: an estimate may be half the truth
  or double it.

The band of the total adds the components' bands linearly (the errors are treated as
fully correlated: the conservative choice). The kgCO2eq band is the energy band carried
through; it does **not** include the grid intensity's own uncertainty (a yearly average
from a table can differ from the hour's real intensity by tens of per cent), which the
summary names with its source instead. Components that are not measured are not in the
total and say so.

Equivalent: km driven in an average new passenger car in the EU, 106.8 gCO2/km
(European Environment Agency, 2024; see ``carbon_core/data/SOURCES.md``).

What-if: the same energy and PUE in a few low-carbon grids from the bundled tables
(:data:`WHAT_IF_ZONES`), shown when they are cleaner than the run's grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from carbon_core.snapshot import NOT_MEASURED, Snapshot

#: relative (low, high) error of energy by measurement method; see the module docstring
BANDS: Mapping[str, tuple[float, float]] = {
    "counter": (-0.05, 0.05),
    "power-sampled": (-0.15, 0.15),
    "estimated": (-0.50, 1.00),
}
#: average new passenger car, EU, 2024 (European Environment Agency), gCO2 per km
CAR_G_PER_KM = 106.8
CAR_SOURCE = "average new EU car, 106.8 gCO2/km, EEA 2024"
#: low-carbon grids for the what-if; a zone the tables hold only through a parent is skipped
WHAT_IF_ZONES: tuple[str, ...] = ("SE", "NO", "FR", "CA-QC")
COMPONENTS = ("gpu", "cpu", "ram")


def component_of(channel: str) -> str:
    """The component a channel belongs to (RAPL ``cpu:dram-N`` counts as RAM, DESIGN.md)."""
    return "ram" if "dram" in channel else channel.split(":", 1)[0]


def component_methods(snapshot: Snapshot, component: str) -> list[str]:
    """The measurement methods behind one component, most precise first."""
    order = {m: i for i, m in enumerate(BANDS)}
    found = {m for ch, m in snapshot.methods.items() if component_of(ch) == component and m != NOT_MEASURED}
    return sorted(found, key=lambda m: order.get(m, len(order)))


def component_band(snapshot: Snapshot, component: str) -> Optional[tuple[float, float]]:
    """The relative band of one component: that of its least precise method (None when
    not measured). An unknown method gets the estimate's band."""
    methods = component_methods(snapshot, component)
    if getattr(snapshot, f"energy_{component}_kwh") is None or not methods:
        return None
    lows, highs = zip(*(BANDS.get(m, BANDS["estimated"]) for m in methods))
    return min(lows), max(highs)


def uncertainty(snapshot: Snapshot) -> dict[str, Any]:
    """Absolute bands: ``{"energy_kwh": [lo, hi], "co2eq_kg": [lo, hi], "<comp>": {...}}``."""
    out: dict[str, Any] = {}
    low = high = 0.0
    for comp in COMPONENTS:
        kwh = getattr(snapshot, f"energy_{comp}_kwh")
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


def _sig(value: float, digits: int = 3) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def fmt_energy(kwh: float) -> str:
    if kwh >= 1:
        return f"{_sig(kwh)} kWh"
    return f"{_sig(kwh * 1000)} Wh" if kwh >= 1e-4 else f"{_sig(kwh * 1e6)} mWh"


def fmt_mass(kg: float) -> str:
    if kg >= 1:
        return f"{_sig(kg)} kg"
    return f"{_sig(kg * 1000)} g" if kg >= 0.001 else f"{_sig(kg * 1e6)} mg"


def fmt_band(band: tuple[float, float]) -> str:
    return f"{band[0] * 100:+.0f} % / {band[1] * 100:+.0f} %"


def car_distance(co2eq_kg: float) -> str:
    km = co2eq_kg * 1000.0 / CAR_G_PER_KM
    return f"{_sig(km)} km" if km >= 1 else f"{_sig(km * 1000)} m"


def intensity_kind(source: str) -> str:
    if source.startswith("table:"):
        return "bundled yearly average"
    if source == "fixed":
        return "fixed value you gave"
    if source.startswith("world-average"):
        return "world average: the zone is unknown"
    return "live"


def what_if(snapshot: Snapshot, zones: Sequence[str] = WHAT_IF_ZONES) -> list[tuple[str, float, float]]:
    """``(zone, kg, gCO2eq/kWh)`` for the zones among ``zones`` cleaner than the run's grid
    (zones the tables know only through their parent country are left out)."""
    from carbon_core.intensity import what_if as same_energy_in

    current = (snapshot.zone or "").upper()
    out: list[tuple[str, float, float]] = []
    for zone, kg, found in same_energy_in(snapshot.energy_kwh, zones, snapshot.pue):
        if "parent of" in found.source or zone.upper() == current:
            continue
        if snapshot.intensity_gco2eq_per_kwh and found.gco2eq_per_kwh >= snapshot.intensity_gco2eq_per_kwh:
            continue
        out.append((zone, kg, found.gco2eq_per_kwh))
    return out


def render(snapshot: Snapshot, *, warnings: bool = True, title: str = "carbon-core") -> str:
    """A multi-line summary of a (final) snapshot; see the module docstring for the bands.

    ``warnings=False`` leaves out the run's warnings (for callers that showed them live).
    """
    zone = snapshot.zone or "unknown"
    lines = [f"{title}: {_sig(snapshot.duration_s)} s, zone {zone}, PUE {snapshot.pue:g}"]
    bands = uncertainty(snapshot)
    lines.append(f"  {'part':<6}{'energy':>14}  {'method':<24}band")
    for comp in COMPONENTS:
        kwh = getattr(snapshot, f"energy_{comp}_kwh")
        band = component_band(snapshot, comp)
        if kwh is None:
            lines.append(f"  {comp.upper():<6}{NOT_MEASURED:>14}  {'-':<24}not in the total")
            continue
        method = ", ".join(component_methods(snapshot, comp)) or "unknown"
        shown = fmt_band(band) if band else "-"
        lines.append(f"  {comp.upper():<6}{fmt_energy(kwh):>14}  {method:<24}{shown}")
    lo, hi = bands["energy_kwh"]
    total = fmt_energy(snapshot.energy_kwh)
    lines.append(f"  {'total':<6}{total:>14}  {'':<24}{fmt_energy(lo)} .. {fmt_energy(hi)}")
    clo, chi = bands["co2eq_kg"]
    now = snapshot.intensity_gco2eq_per_kwh
    grid = f"{now:.1f} gCO2eq/kWh"
    if snapshot.energy_kwh > 0:  # the intensity changed during the run: show its energy-weighted mean
        mean = snapshot.co2eq_kg * 1000.0 / (snapshot.energy_kwh * snapshot.pue)
        if abs(mean - now) > 0.01 * max(now, 1.0):
            grid = f"{mean:.1f} gCO2eq/kWh on average (latest {now:.1f})"
    lines.append(
        f"  CO2eq {fmt_mass(snapshot.co2eq_kg)} ({fmt_mass(clo)} .. {fmt_mass(chi)}) = energy x PUE "
        f"{snapshot.pue:g} x {grid}"
    )
    source = snapshot.intensity_source or "unknown"
    lines.append(f"        grid intensity from {source} ({intensity_kind(source)}; not in the band)")
    lines.append(f"  like driving {car_distance(snapshot.co2eq_kg)} ({CAR_SOURCE})")
    cleaner = what_if(snapshot)
    if cleaner:
        lines.append(
            "  same energy elsewhere (bundled yearly tables): "
            + ", ".join(f"{z} {fmt_mass(kg)} ({g:g} g/kWh)" for z, kg, g in cleaner)
        )
    if snapshot.predicted_co2eq_kg is not None:
        lines.append(f"  predicted for the whole run: {fmt_mass(snapshot.predicted_co2eq_kg)} CO2eq")
    if warnings and snapshot.warnings:
        lines.append(f"  warnings ({len(snapshot.warnings)}):")
        lines.extend(f"    - {w}" for w in snapshot.warnings)
    return "\n".join(lines)
