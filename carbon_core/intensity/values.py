"""The value every intensity source hands out, and the constants that bound it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: World electricity generation, 2023: 480 gCO2eq/kWh (Ember, Global Electricity Review
#: 2024). Used only when no zone can be found, always with a warning. See data/SOURCES.md.
WORLD_AVERAGE_GCO2_PER_KWH = 480.0

#: No grid on Earth averages anywhere near this (lignite plants emit ~1,100-1,200
#: gCO2eq/kWh over their life cycle). A figure above it is a unit or data error.
MAX_PLAUSIBLE_GCO2_PER_KWH = 2000.0

#: The basis of every figure unless its source names another: life-cycle emissions (what
#: Electricity Maps serves by default). ``DIRECT`` (at the power station only) is named at
#: the end of a source: ``table:us-state:US-VA:2023:direct``.
DEFAULT_BASIS = "lifecycle"
DIRECT = "direct"


@dataclass(frozen=True)
class Intensity:
    """A grid carbon intensity and where it came from.

    ``source`` names the origin of the figure, e.g. ``electricitymaps:DE``,
    ``uk-carbon-intensity:GB:direct``, ``energidataservice:DK-DK1:direct``,
    ``table:country:DE:2024``, ``table:electricitymaps:US-MIDA-PJM:2025 (aws:us-east-1)``,
    ``table:country:GB:2024 (parent of GB-13)``, ``table:gcp:europe-west1:2024:direct``,
    ``fixed``, ``world-average``. Figures are life-cycle emissions unless the source ends
    with another basis (``:direct``: at the power station only). ``zone`` is the zone the
    figure is for (None for the world average).
    """

    gco2eq_per_kwh: float
    source: str
    zone: Optional[str]


def is_plausible(value: float) -> bool:
    """True for a finite figure in [0, MAX_PLAUSIBLE_GCO2_PER_KWH]."""
    return value == value and 0.0 <= value <= MAX_PLAUSIBLE_GCO2_PER_KWH
