"""What the same energy would have emitted elsewhere (bundled yearly tables)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from carbon_core.intensity.tables import lookup
from carbon_core.intensity.values import Intensity


def what_if(energy_kwh: float, zones: Sequence[str], pue: float = 1.0) -> list[tuple[str, float, Intensity]]:
    """``(zone, kg CO2eq, intensity)`` for ``energy_kwh`` drawn in each zone, in the order
    given: ``kg = energy_kwh * pue * g/kWh / 1000``. ``ValueError`` for a negative energy,
    a PUE below 1, or a zone no table (nor a parent) knows."""
    if not math.isfinite(energy_kwh) or energy_kwh < 0:
        raise ValueError(f"energy_kwh must be a non-negative number; got {energy_kwh!r}")
    if not math.isfinite(pue) or pue < 1.0:
        raise ValueError(f"pue must be a number >= 1; got {pue!r}")
    if isinstance(zones, str):
        zones = [zones]
    out: list[tuple[str, float, Intensity]] = []
    for z in zones:
        found = lookup(z)
        if found is None:
            raise ValueError(f"zones: unknown zone {z!r} (see `carbon-core zones`)")
        out.append((z, energy_kwh * pue * found.gco2eq_per_kwh / 1000.0, found))
    return out
