"""Units of work: the samples and tokens a run processed, so that its footprint can be put per
functional unit (the Software Carbon Intensity's ``R``), and the SCI block of the run log.

:class:`Units` is written on the training thread (a framework callback per step, or
:meth:`carbon_core.Tracker.count`) and read by the sampler, which puts the counts in each
snapshot beside the energy of the same moment: the per-unit figures (``energy_j_per_sample``
= the run's joules over its samples so far) then divide two numbers of one instant.

SCI: Software Carbon Intensity specification 1.1.0 (Green Software Foundation,
github.com/Green-Software-Foundation/sci, SPEC.md; published as ISO/IEC 21031:2024):
``SCI = ((E x I) + M) per R``, E the energy (kWh), I the grid intensity (gCO2eq/kWh), M the
embodied emissions of the hardware's share, R the functional unit.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

from carbon_core.faults import FaultLog
from carbon_core.snapshot import Snapshot

SCI_SPEC = (
    "Software Carbon Intensity 1.1.0, Green Software Foundation (github.com/Green-Software-Foundation/sci, "
    "SPEC.md); ISO/IEC 21031:2024"
)


class Units:
    """Samples and tokens counted so far (None: never counted). One writer: the training thread."""

    __slots__ = ("_faults", "samples", "tokens")

    def __init__(self, faults: FaultLog) -> None:
        self._faults = faults
        self.samples: Optional[float] = None
        self.tokens: Optional[float] = None

    def add(self, samples: Any = None, tokens: Any = None) -> None:
        """Add this step's ``samples`` and/or ``tokens``; a value that is not a positive finite
        number is ignored, with one warning."""
        if samples is not None and (n := self._checked("samples", samples)):
            self.samples = (self.samples or 0.0) + n
        if tokens is not None and (n := self._checked("tokens", tokens)):
            self.tokens = (self.tokens or 0.0) + n

    def _checked(self, name: str, value: Any) -> Optional[float]:
        if type(value) in (int, float) and 0 < value < math.inf:  # the usual case, at once
            return float(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):  # numpy scalars
            number = float(value)
            if 0 < number < math.inf:
                return number
        self._faults.warn(
            f"units:{name}",
            f"{name}={value!r} ignored: {name} must be a positive finite number (a plain int or float: "
            "use .item() on a tensor); later bad values are ignored without a word",
        )
        return None


def sci_block(snapshot: Snapshot, embodied_kg_per_hour: Optional[float] = None) -> dict[str, Any]:
    """The run log's ``sci`` block: SCI = (E x I + M) / R, with E the energy measured times
    the PUE, I the energy-weighted grid intensity (so E x I is the run's emissions), M the
    embodied emissions only when the user gave ``embodied_kg_per_hour`` (labelled as given,
    never estimated here) and R the tokens when known, else the samples (none: no score)."""
    energy_kwh = snapshot.energy_kwh * snapshot.pue
    operational_g = snapshot.co2eq_kg * 1000.0
    out: dict[str, Any] = {
        "formula": "(E x I + M) / R",
        "spec": SCI_SPEC,
        "E_kwh": energy_kwh,
        "E_method": "energy measured (all components) x PUE",
        "I_gco2eq_per_kwh": operational_g / energy_kwh
        if energy_kwh > 0
        else snapshot.intensity_gco2eq_per_kwh,
        "I_source": snapshot.intensity_source,
        "O_g": operational_g,
    }
    embodied_g = 0.0
    if embodied_kg_per_hour is not None:
        hours = snapshot.duration_s / 3600.0
        embodied_g = embodied_kg_per_hour * 1000.0 * hours
        out["M_g"] = embodied_g
        out["M_source"] = (
            f"given: embodied_kg_per_hour={embodied_kg_per_hour:g} x {hours:.6g} h (not measured)"
        )
    unit, count = ("token", snapshot.tokens) if snapshot.tokens else ("sample", snapshot.samples)
    out["R_unit"] = unit if count else None
    out["R"] = count if count else None
    out["sci_g_per_unit"] = (operational_g + embodied_g) / count if count else None
    for name, units in (("sample", snapshot.samples), ("token", snapshot.tokens)):
        if units:
            out[f"sci_g_per_{name}"] = (operational_g + embodied_g) / units
    return out
