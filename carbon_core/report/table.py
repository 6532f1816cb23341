"""The ``text`` report: a table with one row per log (what it adds to the total), a subtotal
per run when there are several, the total, the merge rules applied, and the summary
(:func:`carbon_core.summary.render`) of the total. ``rich`` draws the table when it is
installed and the output is a terminal; plain text otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Optional

from carbon_core.meters.base import COMPONENTS
from carbon_core.runlog.merge import ONE_LOG, LoadedRun
from carbon_core.snapshot import Snapshot
from carbon_core.summary import fmt_energy, fmt_mass, render

COLUMNS = ("log", "duration", "GPU", "CPU", "RAM", "total", "CO2eq", "final")
#: the table's columns that hold numbers (right-aligned)
NUMERIC_COLUMNS = range(1, 7)


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
    """The table's rows: one per log (a resumed part from its checkpoint on when the part
    before it is given too), a subtotal per run when there are several, then the total."""
    if not run.rows:  # figures without a log
        return [_row("total", run.snapshot, None)]
    out: list[list[str]] = []
    several = len(run.runs) > 1
    for k, group in enumerate(run.runs):
        mine = [r for r in run.rows if r.run == k]
        for r in mine:
            label = r.label + (" from checkpoint" if r.subtracted.duration_s > 0 else "")
            out.append(_row(label, r.snapshot, r.node.complete))
        if several and len(mine) > 1:
            out.append(_row(f"run {k + 1} total", group.snapshot, all(r.node.complete for r in mine)))
    if len(run.rows) > 1:
        out.append(_row("total", run.snapshot, run.complete))
    return out


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


def rules_text(run: LoadedRun) -> str:
    """The merge rules applied, one ``merge:`` line each (none for a single log)."""
    shown = [r for r in run.rules if r != ONE_LOG]
    return "".join(f"merge: {r}\n" for r in shown)


def text(run: LoadedRun, *, fancy: bool = False) -> str:
    """The table, the merge rules and the total's summary (``fancy``: rich when installed)."""
    table = rows(run)
    drawn = _rich_table(table) if fancy else None
    rules = rules_text(run)
    return f"{drawn or plain_table(table)}\n\n{rules + chr(10) if rules else ''}{render(run.snapshot)}"
