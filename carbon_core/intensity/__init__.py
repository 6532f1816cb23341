"""Grid carbon intensity: where and when the energy was drawn.

Offline by default (bundled yearly tables, location from the environment and the system
time zone); live when asked (Electricity Maps, the UK Carbon Intensity API, Energi Data
Service), refreshed off the training thread and cached. Every figure carries its source.

The supported surface is the four names below. The tracker's machinery lives in the
submodules: :mod:`~carbon_core.intensity.source` (the runtime source),
:mod:`~carbon_core.intensity.resolve` (configuration to source),
:mod:`~carbon_core.intensity.location`, :mod:`~carbon_core.intensity.values`.

Importing this package reads no file and imports no HTTP library.
"""

from carbon_core.intensity.tables import lookup, zones
from carbon_core.intensity.values import Intensity
from carbon_core.intensity.whatif import what_if

__all__ = ["Intensity", "lookup", "what_if", "zones"]
