"""The end-of-run summary a person reads: energy per component, kgCO2eq, and where each
figure comes from, with an honest uncertainty band.

The uncertainty bands, and why they are what they are, are in :mod:`carbon_core.bands`;
the grid intensity's own uncertainty is not in them, so the summary names its source.

Equivalent: km driven in an average new passenger car in the EU, 106.8 gCO2/km
(European Environment Agency, 2024; see ``carbon_core/data/SOURCES.md``).

What-if: the same energy and PUE in a few low-carbon grids from the bundled tables
(:data:`WHAT_IF_ZONES`), shown when they are cleaner than the run's grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from carbon_core.bands import component_band, component_methods, uncertainty
from carbon_core.budget import StopDecision
from carbon_core.meters.base import COMPONENTS
from carbon_core.snapshot import J_PER_KWH, NOT_MEASURED, Snapshot

#: average new passenger car, EU, 2024 (European Environment Agency), gCO2 per km
CAR_G_PER_KM = 106.8
CAR_SOURCE = "average new EU car, 106.8 gCO2/km, EEA 2024"
#: low-carbon grids for the what-if; a zone the tables hold only through a parent is skipped
WHAT_IF_ZONES: tuple[str, ...] = ("SE", "NO", "FR", "CA-QC")


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


def fmt_joules(joules: float) -> str:
    """An energy per unit: kWh .. Wh above an hour's joule, else J, mJ or uJ."""
    if joules >= 3600.0:
        return fmt_energy(joules / J_PER_KWH)
    if joules >= 1 or joules == 0:
        return f"{_sig(joules)} J"
    return f"{_sig(joules * 1000)} mJ" if joules >= 1e-3 else f"{_sig(joules * 1e6)} uJ"


def fmt_grams(grams: float) -> str:
    """Emissions per unit: as :func:`fmt_mass` down to a milligram, then ug and ng."""
    if grams >= 1e-3 or grams == 0:
        return fmt_mass(grams / 1000.0)
    return f"{_sig(grams * 1e6)} ug" if grams >= 1e-6 else f"{_sig(grams * 1e9)} ng"


def _count(units: float) -> str:
    return f"{units:,.0f}" if units >= 10 else f"{units:g}"


def efficiency_lines(snapshot: Snapshot) -> list[str]:
    """Per unit (sample, token) and per phase, in the summary's units; none without them."""
    lines = []
    for unit, count in (("sample", snapshot.samples), ("token", snapshot.tokens)):
        if count:
            joules, grams = snapshot.energy_kwh * J_PER_KWH / count, snapshot.co2eq_kg * 1000.0 / count
            lines.append(
                f"  per {unit}: {fmt_joules(joules)}, {fmt_grams(grams)} CO2eq ({_count(count)} {unit}s)"
            )
    if snapshot.phases:
        total = sum(p.energy_kwh for p in snapshot.phases.values())
        width = max(8, *(len(n) + 2 for n in snapshot.phases))
        lines.append(f"  {'phase':<{width}}{'energy':>14}{'share':>7}{'CO2eq':>14}{'time':>10}")
        for name, p in sorted(snapshot.phases.items(), key=lambda item: -item[1].energy_kwh):
            fraction = p.energy_kwh / total if total > 0 else 0.0
            share = "<1 %" if 0 < fraction < 0.005 else f"{fraction * 100:.0f} %"
            energy, mass, took = fmt_energy(p.energy_kwh), fmt_mass(p.co2eq_kg), f"{_sig(p.duration_s)} s"
            lines.append(f"  {name:<{width}}{energy:>14}{share:>7}{mass:>14}{took:>10}")
    return lines


def stop_line(decision: StopDecision, at: str = "") -> str:
    """One line, in the summary's units: what stopped training (``at``: where, in the
    framework's words, e.g. "step 120"), against which budget."""
    if not decision.stop or decision.budget_kg is None or decision.co2eq_kg is None:
        return decision.reason
    where = f" at {at}" if at else ""
    budget, spent = fmt_mass(decision.budget_kg), fmt_mass(decision.co2eq_kg)
    if decision.on == "predicted" and decision.predicted_kg is not None:
        return (
            f"training stopped by the carbon budget{where}: forecast {fmt_mass(decision.predicted_kg)} "
            f"CO2eq for the whole run > budget {budget} ({spent} spent so far)"
        )
    return f"training stopped by the carbon budget{where}: {spent} CO2eq spent >= budget {budget}"


def render(
    snapshot: Snapshot,
    *,
    warnings: bool = True,
    title: str = "carbon-core",
    shown_warnings: int = 0,
    stopped: str = "",
) -> str:
    """A multi-line summary of a (final) snapshot, with the bands of :mod:`carbon_core.bands`.

    ``warnings=False`` leaves out the run's warnings (for callers that showed them live);
    ``shown_warnings=N``: the first N were shown when measuring started, so they are counted,
    not repeated. ``stopped``: a line saying what stopped training (:func:`stop_line`).
    """
    zone = snapshot.zone or "unknown"
    lines = [f"{title}: {_sig(snapshot.duration_s)} s, zone {zone}, PUE {snapshot.pue:g}"]
    bands = uncertainty(snapshot)
    lines.append(f"  {'part':<6}{'energy':>14}  {'method':<24}band")
    energy_of = snapshot.energy_by_component()
    for comp in COMPONENTS:
        kwh = energy_of[comp]
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
    lines.extend(f"  estimated {line}" for line in snapshot.assumed)
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
    if snapshot.location:
        lines.append(f"        {snapshot.location}")
    lines.append(f"  like driving {car_distance(snapshot.co2eq_kg)} ({CAR_SOURCE})")
    cleaner = what_if(snapshot)
    if cleaner:
        lines.append(
            "  same energy elsewhere (bundled yearly tables): "
            + ", ".join(f"{z} {fmt_mass(kg)} ({g:g} g/kWh)" for z, kg, g in cleaner)
        )
    lines.extend(efficiency_lines(snapshot))
    if snapshot.predicted_co2eq_kg is not None:
        lines.append(f"  predicted for the whole run: {fmt_mass(snapshot.predicted_co2eq_kg)} CO2eq")
    if stopped:
        lines.append(f"  {stopped}")
    if warnings and snapshot.warnings:
        said = min(max(0, shown_warnings), len(snapshot.warnings))
        later = snapshot.warnings[said:]
        if later:
            lines.append(f"  warnings ({len(later)}{' more' if said else ''}):")
            lines.extend(f"    - {w}" for w in later)
        if said:
            lines.append(
                f"  {said} start-up message{'s' if said > 1 else ''} logged when measuring began "
                "(logger carbon_core), not repeated here"
            )
    return "\n".join(lines)
