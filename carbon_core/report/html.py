"""The ``html`` report: one self-contained page a person reads, that opens with no network.

It holds the totals (energy per component with its method and band, emissions with their
band, the grid intensity and its source, the zone and how it was found, the PUE, the
duration), the compute statement (:mod:`.paper`), the logs and how they were combined, the
phase split when the run recorded one, the figure (:mod:`.figure`) embedded as a base64 PNG
(a note in its place without matplotlib), the model-card block and the warnings. No script,
no stylesheet, font or image from elsewhere; every text from the logs is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Optional

from carbon_core.meters.base import COMPONENTS
from carbon_core.report import facts, figure, model_card, paper, table
from carbon_core.runlog.merge import LoadedRun
from carbon_core.snapshot import J_PER_KWH
from carbon_core.summary import fmt_energy, fmt_grams, fmt_joules, fmt_mass

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1060px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.statement { background: #f4f7f4; border-left: 4px solid #2a7; padding: 0.6em 1em; }
pre { background: #f6f6f6; padding: 0.6em 1em; overflow-x: auto; }
.muted { color: #666; } img { max-width: 100%; border: 1px solid #eee; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{_e(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _totals(run: LoadedRun) -> str:
    snap = run.snapshot
    methods = facts.methods(snap)
    energy_of = snap.energy_by_component()
    rows = [
        [c.upper(), "not measured" if (v := energy_of[c]) is None else fmt_energy(v), methods[c]]
        for c in COMPONENTS
    ]
    rows.extend(["estimate assumed", "", line] for line in snap.assumed)
    rows.append(["total energy", facts.energy_band(snap), "sum of the measured components"])
    rows.append(["CO2eq", facts.co2_band(snap), f"energy x PUE {snap.pue:g} x grid intensity"])
    rows.append(["grid intensity", facts.intensity(snap), "its own uncertainty is not in the bands"])
    rows.append(["zone", facts.location(run), ""])
    rows.append(["duration", facts.duration(snap.duration_s), ""])
    hardware = facts.hardware(run)
    if hardware:
        rows.append(["hardware", ", ".join(hardware), ""])
    return _table(["", "figure", "method and band / source"], rows, numeric=(1,))


def _phases(run: LoadedRun) -> str:
    """The phase split, when the logs carry one (:attr:`LoadedRun.phases`), and the per-unit
    figures when the run counted samples or tokens."""
    snap = run.snapshot
    units = [
        f"per {unit}: {fmt_joules(snap.energy_kwh * J_PER_KWH / count)}, "
        f"{fmt_grams(snap.co2eq_kg * 1000.0 / count)} CO2eq ({count:,.0f} {unit}s)"
        for unit, count in (("sample", snap.samples), ("token", snap.tokens))
        if count
    ]
    per_unit = "".join(f"<p>{_e(line)}</p>" for line in units)
    phases = run.phases
    if not phases:
        return per_unit + '<p class="muted">No phase split: these logs record no phases.</p>'
    total = sum(p.energy_kwh for p in phases.values())
    rows = [
        [name, fmt_energy(p.energy_kwh), f"{p.energy_kwh / total * 100:.1f} %" if total > 0 else "-",
         fmt_mass(p.co2eq_kg), facts.duration(p.duration_s)]
        for name, p in sorted(phases.items(), key=lambda item: -item[1].energy_kwh)
    ]  # fmt: skip
    return per_unit + _table(["phase", "energy", "share", "CO2eq", "time"], rows, numeric=(1, 2, 3, 4))


def _plot(run: LoadedRun) -> str:
    try:
        data = figure.png(run)
    except figure.PlotUnavailable as exc:
        return f'<p class="muted">No figure: {_e(exc)}.</p>'
    encoded = base64.b64encode(data).decode("ascii")
    alt = "power per component and cumulative CO2eq over time"
    return f'<img alt="{alt}" width="1000" height="600" src="data:image/png;base64,{encoded}">'


def page(run: LoadedRun, *, training_type: Optional[str] = None) -> str:
    """The whole page, as one string."""
    snap = run.snapshot
    title = f"{fmt_energy(snap.energy_kwh)}, {fmt_mass(snap.co2eq_kg)} CO2eq"
    logs = _table(table.COLUMNS, table.rows(run), numeric=table.NUMERIC_COLUMNS)
    rules = "".join(f"<li>{_e(r)}</li>" for r in run.rules)
    warnings = "".join(f"<li>{_e(w)}</li>" for w in snap.warnings) or "<li>none</li>"
    incomplete = (
        ""
        if run.complete
        else '<p class="muted">A log has no final record (killed?): totalled to its last interval.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>carbon-core report: {_e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Footprint: {_e(title)}</h1>
<p class="muted">carbon-core {_e(facts.versions(run))}; {len(run.rows)} run log(s)</p>
{incomplete}
<p class="statement">{_e(paper.statement(run, width=0))}</p>
<h2>Totals</h2>
{_totals(run)}
<h2>Power and emissions over time</h2>
{_plot(run)}
<h2>Per unit and per phase</h2>
{_phases(run)}
<h2>Logs</h2>
{logs}
<h2>How the logs were combined</h2>
<ul>{rules}</ul>
<h2>Model card metadata</h2>
<pre>{_e(model_card.yaml_block(run, training_type))}</pre>
<h2>Warnings</h2>
<ul>{warnings}</ul>
</body>
</html>
"""
