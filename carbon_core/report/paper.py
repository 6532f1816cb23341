"""The ``paper`` report: a short compute and emissions statement to paste into a paper.

It states the energy and the kgCO2eq with their bands, the hardware, the duration, the grid
zone (and how it was found) with the intensity and its source, how each component was
measured, the PUE, the tool and its version, and, for several logs, how they were combined.
"""

from __future__ import annotations

import textwrap

from carbon_core.bands import uncertainty
from carbon_core.meters.base import COMPONENTS
from carbon_core.report import facts
from carbon_core.runlog.merge import ONE_LOG, LoadedRun

WIDTH = 100


def _kg(value: float) -> str:
    return f"{value:.3g}"


def statement(run: LoadedRun, *, width: int = WIDTH) -> str:
    """The statement, wrapped at ``width`` columns (0: one line)."""
    snap = run.snapshot
    lo, hi = uncertainty(snap)["co2eq_kg"]
    hardware = facts.hardware(run)
    on = f" on {', '.join(hardware)}" if hardware else ""
    measured = facts.methods(snap)
    how = "; ".join(f"{c.upper()} {m}" for c, m in measured.items() if m != "not measured")
    missing = [c.upper() for c in COMPONENTS if measured[c] == "not measured"]
    parts = [
        f"Training used {facts.energy_band(snap)} of electricity over {facts.duration(snap.duration_s)}{on},",
        f"measured with {facts.TOOL} {facts.versions(run)} ({how}"
        + (f"; {' and '.join(missing)} not measured" if missing else "")
        + ").",
        f"At a PUE of {snap.pue:g} and a grid intensity of {facts.intensity(snap)},",
        f"{facts.location(run)}, this corresponds to {_kg(snap.co2eq_kg)} kgCO2eq",
        f"({_kg(lo)} to {_kg(hi)} kgCO2eq).",
        "The bands cover the measurement methods only, not the uncertainty of the grid intensity.",
        *(f"Estimate, {line}." for line in snap.assumed),
    ]
    rules = [r for r in run.rules if r != ONE_LOG]
    if rules:
        parts.append(f"From {len(run.rows)} run log(s): " + "; ".join(rules) + ".")
    text = " ".join(parts)
    return textwrap.fill(text, width) if width else text
