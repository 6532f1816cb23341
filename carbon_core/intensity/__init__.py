"""Grid carbon intensity: where and when the energy was drawn.

Offline by default (bundled yearly tables, location from the environment and the system
time zone); live when asked (Electricity Maps, the UK Carbon Intensity API, Energi Data
Service), refreshed off the training thread and cached. Every figure carries its source.

Importing this package reads no file and imports no HTTP library.
"""

from carbon_core.intensity.chain import IntensityChain, build_chain
from carbon_core.intensity.location import detect_zone
from carbon_core.intensity.tables import lookup, zones
from carbon_core.intensity.values import (
    MAX_PLAUSIBLE_GCO2_PER_KWH,
    WORLD_AVERAGE_GCO2_PER_KWH,
    Intensity,
)
from carbon_core.intensity.whatif import what_if

__all__ = [
    "MAX_PLAUSIBLE_GCO2_PER_KWH",
    "WORLD_AVERAGE_GCO2_PER_KWH",
    "Intensity",
    "IntensityChain",
    "build_chain",
    "detect_zone",
    "lookup",
    "what_if",
    "zones",
]
