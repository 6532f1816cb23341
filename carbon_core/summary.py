"""The end-of-run summary a person reads: energy per component, kgCO2eq, and where each
figure comes from."""

from __future__ import annotations

from carbon_core.snapshot import NOT_MEASURED, Snapshot


def _method(snapshot: Snapshot, component: str) -> str:
    methods = sorted({m for ch, m in snapshot.methods.items() if ch == component or ch.startswith(f"{component}:")})
    return ", ".join(methods) or NOT_MEASURED


def render(snapshot: Snapshot) -> str:
    """A short multi-line summary of a (final) snapshot."""
    lines = [
        f"carbon-core: {snapshot.energy_kwh * 1000:.4f} Wh, {snapshot.co2eq_kg * 1000:.4f} gCO2eq "
        f"in {snapshot.duration_s:.1f} s",
    ]
    for comp in ("gpu", "cpu", "ram"):
        kwh = getattr(snapshot, f"energy_{comp}_kwh")
        figure = "not measured" if kwh is None else f"{kwh * 1000:.4f} Wh"
        lines.append(f"  {comp.upper():<4}{figure:>16}  ({_method(snapshot, comp)})")
    lines.append(
        f"  grid {snapshot.intensity_gco2eq_per_kwh:.1f} gCO2eq/kWh from {snapshot.intensity_source}"
        f" (zone {snapshot.zone or 'unknown'}), PUE {snapshot.pue:g}"
    )
    return "\n".join(lines)
