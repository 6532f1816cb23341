"""The figure (``matplotlib``, the optional ``plot`` extra): two panels over the job's time,
mean power per component (all nodes added up) and cumulative emissions, with the marked
phases (validation, checkpoint, names given to ``Tracker.phase``) as shaded spans behind both
and each phase's share of the energy in the legend; 1000 x 600 px. Drawn on a bare
``Figure`` (no pyplot: no GUI backend, no global state)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from carbon_core.meters.base import COMPONENTS
from carbon_core.runlog.merge import LoadedRun
from carbon_core.summary import fmt_energy, fmt_mass

#: figure size in inches and resolution: the PNG is 1000 x 600 pixels
FIGSIZE = (10.0, 6.0)
DPI = 100


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def check_plot_available() -> None:
    """Raise :class:`PlotUnavailable` with the install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'carbon-core[plot]'") from None


def _time_unit(seconds: float) -> tuple[str, float]:
    if seconds >= 3 * 3600:
        return "h", 3600.0
    if seconds >= 600:
        return "min", 60.0
    return "s", 1.0


#: a shade per phase (matplotlib's tab10 colours, alpha 0.15), in the order the names first appear
SHADES = ("tab:orange", "tab:purple", "tab:cyan", "tab:olive", "tab:pink", "tab:brown", "tab:gray", "tab:red")


def _shade(run: LoadedRun, axes: Any, scale: float) -> None:
    """Each marked phase span as a shaded band on every axis; one legend entry per phase name,
    with its share of the run's energy when the split has it."""
    spans = run.spans()
    colours: dict[str, str] = {}
    for span in spans:
        colours.setdefault(span.name, SHADES[len(colours) % len(SHADES)])
    total = sum(p.energy_kwh for p in run.phases.values())
    for name, colour in colours.items():
        phase = run.phases.get(name)
        share = f" ({phase.energy_kwh / total * 100:.1f} % of the energy)" if phase and total > 0 else ""
        for i, span in enumerate(s for s in spans if s.name == name):
            for k, ax in enumerate(axes):
                label = f"{name}{share}" if i == 0 and k == 0 else None
                ax.axvspan(
                    span.t0 / scale, span.t1 / scale, color=colour, alpha=0.15, linewidth=0, label=label
                )


def figure(run: LoadedRun) -> Any:
    """The matplotlib ``Figure`` of power per component and cumulative CO2eq over time."""
    check_plot_available()
    from matplotlib.figure import Figure

    points = run.series()
    end = points[-1].t if points else 0.0
    unit, scale = _time_unit(end)
    times = [p.t / scale for p in points]
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    power_ax, co2_ax = fig.subplots(2, 1, sharex=True)
    _shade(run, (power_ax, co2_ax), scale)
    for comp in COMPONENTS:
        if not any(comp in p.power_w for p in points):
            continue
        watts = [p.power_w.get(comp, 0.0) for p in points]
        power_ax.step(times, watts, where="pre", label=comp.upper())
    total = [sum(p.power_w.values()) for p in points]
    power_ax.step(times, total, where="pre", label="total", color="black", linewidth=0.8, linestyle="--")
    power_ax.set_ylabel("power (W)")
    power_ax.legend(loc="best", fontsize="small")
    power_ax.grid(alpha=0.3)
    kg = [p.co2eq_kg for p in points]
    last = kg[-1] if kg else 0.0
    mass_unit, factor = ("kg", 1.0) if last >= 1 else ("g", 1e3) if last >= 1e-3 else ("mg", 1e6)
    co2_ax.plot(times, [v * factor for v in kg], color="tab:green")
    co2_ax.set_ylabel(f"cumulative {mass_unit} CO2eq")
    co2_ax.set_xlabel(f"time since start ({unit})")
    co2_ax.grid(alpha=0.3)
    snap = run.snapshot
    nodes = f", {len(run.nodes)} logs" if len(run.nodes) > 1 else ""
    fig.suptitle(
        f"carbon-core: {fmt_energy(snap.energy_kwh)}, {fmt_mass(snap.co2eq_kg)} CO2eq, zone "
        f"{snap.zone or 'unknown'} ({snap.intensity_gco2eq_per_kwh:.0f} gCO2eq/kWh){nodes}"
        + ("" if run.complete else " - incomplete log"),
    )
    return fig


def png(run: LoadedRun) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure(run).savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def plot(run: LoadedRun, out: str | Path) -> Path:
    """Write the figure as a PNG (1000 x 600 px) to ``out``."""
    path = Path(out)
    figure(run).savefig(path, format="png", dpi=DPI)
    return path
