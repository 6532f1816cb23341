"""Grid carbon intensity: where and when the energy was drawn.

Offline by default (bundled yearly tables, location from the environment and the system
time zone); live when asked (Electricity Maps, the UK Carbon Intensity API, Energi Data
Service), refreshed off the training thread and cached. Every figure carries its source.

Forecasts and advice: :func:`forecast` (the forecast a provider publishes for a zone, over the
network), :func:`best_start` (the start in a window with the lowest forecast emissions for a
job of a given length) and :func:`history` (recent figures);
:mod:`~carbon_core.intensity.forecasts` says which provider serves which zone.

The supported surface is the names below. The tracker's machinery lives in the
submodules: :mod:`~carbon_core.intensity.source` (the runtime source),
:mod:`~carbon_core.intensity.resolve` (configuration to source),
:mod:`~carbon_core.intensity.location`, :mod:`~carbon_core.intensity.values`.

Importing this package reads no file and imports no HTTP library.
"""

from carbon_core.intensity.forecasts import best_start, forecast, history
from carbon_core.intensity.tables import lookup, zones
from carbon_core.intensity.values import Intensity
from carbon_core.intensity.whatif import what_if

__all__ = ["Intensity", "best_start", "forecast", "history", "lookup", "what_if", "zones"]
