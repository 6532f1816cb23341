"""A job read back from its run log(s), as a terminal table, JSON, or a figure.

The table has one row per log (node) and a total row for a multi-node job, followed by
the summary (:func:`carbon_core.summary.render`) of the job's totals. ``rich`` draws the
table when it is installed and the output is a terminal; plain text otherwise.

The figure (``matplotlib``, the optional ``plot`` extra) has two panels over the job's
time: mean power per component (all nodes added up), and cumulative emissions.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from carbon_core.bands import uncertainty
from carbon_core.meters.base import COMPONENTS
from carbon_core.runlog.merge import LoadedRun
from carbon_core.runlog.reader import NodeRun
from carbon_core.snapshot import Snapshot
from carbon_core.summary import fmt_energy, fmt_mass, render

#: figure size in inches and resolution: the PNG is 1000 x 600 pixels
FIGSIZE = (10.0, 6.0)
DPI = 100
COLUMNS = ("log", "duration", "GPU", "CPU", "RAM", "total", "CO2eq", "final")


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def _row(label: str, snap: Snapshot, complete: Optional[bool]) -> list[str]:
    energy_of = snap.energy_by_component()
    parts = ["-" if (v := energy_of[c]) is None else fmt_energy(v) for c in COMPONENTS]
    final = "" if complete is None else ("yes" if complete else "no (killed?)")
    return [
        label,
        f"{snap.duration_s:.1f} s",
        *parts,
        fmt_energy(snap.energy_kwh),
        fmt_mass(snap.co2eq_kg),
        final,
    ]


def rows(run: LoadedRun) -> list[list[str]]:
    """The table's rows: one per node, then the job's total when there are several."""
    out = [_row(f"{n.label} ({n.run_id})", n.snapshot, n.complete) for n in run.nodes]
    if len(run.nodes) > 1:
        out.append(_row("total", run.snapshot, run.complete))
    return out


#: the table's columns that hold numbers (right-aligned)
NUMERIC_COLUMNS = range(1, 7)


def plain_table(
    table: Sequence[Sequence[str]], header: Sequence[str] = COLUMNS, right: Sequence[int] = NUMERIC_COLUMNS
) -> str:
    """A plain-text table; the columns in ``right`` are right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in table)])


def _rich_table(table: Sequence[Sequence[str]]) -> Optional[str]:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return None
    t = Table(title="carbon-core run log")
    for i, name in enumerate(COLUMNS):
        t.add_column(name, justify="right" if i in NUMERIC_COLUMNS else "left", no_wrap=i in NUMERIC_COLUMNS)
    for r in table:
        t.add_row(*r)
    console = Console(file=sys.stdout)
    with console.capture() as cap:
        console.print(t)
    return str(cap.get()).rstrip("\n")


def text(run: LoadedRun, *, fancy: bool = False) -> str:
    """The table and the job's summary, as text (``fancy``: with rich when installed)."""
    table = rows(run)
    drawn = _rich_table(table) if fancy else None
    return f"{drawn or plain_table(table)}\n\n{render(run.snapshot)}"


def _node_json(n: NodeRun) -> dict[str, Any]:
    return {
        "path": str(n.path),
        "run_id": n.run_id,
        "host": n.header.get("host"),
        "node_rank": n.header.get("node_rank"),
        "started_at": n.header.get("started_at"),
        "complete": n.complete,
        "snapshot": n.snapshot.to_dict(),
    }


def as_json(run: LoadedRun) -> dict[str, Any]:
    """The job's totals (the snapshot's fields), completeness, bands and per-node detail."""
    return {
        **run.snapshot.to_dict(),
        "complete": run.complete,
        "uncertainty": uncertainty(run.snapshot),
        "nodes": [_node_json(n) for n in run.nodes],
    }


def _time_unit(seconds: float) -> tuple[str, float]:
    if seconds >= 3 * 3600:
        return "h", 3600.0
    if seconds >= 600:
        return "min", 60.0
    return "s", 1.0


def check_plot_available() -> None:
    """Raise :class:`PlotUnavailable` with the install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'carbon-core[plot]'") from None


def plot(run: LoadedRun, out: str | Path) -> Path:
    """Write a PNG (1000 x 600 px) of power per component and cumulative CO2eq over time."""
    check_plot_available()
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    points = run.series()
    end = points[-1].t if points else 0.0
    unit, scale = _time_unit(end)
    times = [p.t / scale for p in points]
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    power_ax, co2_ax = fig.subplots(2, 1, sharex=True)
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
    nodes = f", {len(run.nodes)} nodes" if len(run.nodes) > 1 else ""
    fig.suptitle(
        f"carbon-core: {fmt_energy(snap.energy_kwh)}, {fmt_mass(snap.co2eq_kg)} CO2eq, zone "
        f"{snap.zone or 'unknown'} ({snap.intensity_gco2eq_per_kwh:.0f} gCO2eq/kWh){nodes}"
        + ("" if run.complete else " - incomplete log"),
    )
    path = Path(out)
    fig.savefig(path, format="png", dpi=DPI)
    return path
