"""Energy-Charts (Fraunhofer ISE), no token: measured and forecast gCO2eq/kWh for European countries.

``GET {base}/co2eq?country=de[&start=...&end=...]`` -> parallel arrays::

    {"unix_seconds": [1791064800, 1791065700, ...],   # slot starts, epoch s (UTC)
     "co2eq": [64.8, 64.7, ..., null, ...],          # measured, null in the future
     "co2eq_forecast": [null, ..., 49.4, ...],        # forecast, null where measured
     "deprecated": false}

(a reply recorded for ``country=fr`` on 2026-10-04, smymuna/gridshift
``tests/fixtures/co2eq_fr.json``). Slots are 15 minutes in 2026; the step is read from the
data. With no ``start``/``end`` the reply covers two local days from local midnight, measured
up to about now (less the publication lag) and forecast to about the end of the local day.
An unknown country is a 400 in plain text (``'xx' is not the code for an available country``):
the answer never names its country, so that 400 is the only wrong-zone signal there is.

The live figure is the newest measured value, and it must be recent (:data:`MAX_AGE_S`).

Zones: the countries in :data:`COUNTRIES`, those that answered ``/co2eq`` when a client
checked all of Europe against the live API on 2026-10-06 (smymuna/gridshift
``apps/api/src/gridshift/zones.py``; Romania and the UK did not). The zone key is the
ISO 3166-1 alpha-2 code; bidding zones (``DK-DK1``, ``SE-SE3``) are not served.

Basis: not stated in any source read. The figures are named CO2-equivalent and sit where
life-cycle figures do (France 49-65 g in the recorded reply, October 2026; Ember's life-cycle
France, 44 g for 2024, against RTE's direct ``taux_co2`` of 15-30 g for the same grid), so
they are read as life cycle (no suffix in the source: ``energy-charts:DE``). Licence: CC BY 4.0
for most Energy-Charts series; credit Energy-Charts / Fraunhofer ISE.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from carbon_core.intensity.providers._parse import dig
from carbon_core.intensity.providers._series import Slot, iso_minute, slots
from carbon_core.intensity.providers.base import HttpProvider
from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.values import Intensity

DEFAULT_URL = "https://api.energy-charts.info"
#: a measured value older than this is not "live" (the service publishes with some lag)
MAX_AGE_S = 6 * 3600.0
#: the slot length in 2026 (read from the data when it holds two slots or more)
STEP_S = 900.0
COUNTRIES: dict[str, str] = {
    "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "CH": "Switzerland", "CZ": "Czechia",
    "DE": "Germany", "DK": "Denmark", "EE": "Estonia", "ES": "Spain", "FI": "Finland",
    "FR": "France", "GR": "Greece", "HR": "Croatia", "HU": "Hungary", "IE": "Ireland",
    "IT": "Italy", "LT": "Lithuania", "LU": "Luxembourg", "LV": "Latvia", "NL": "Netherlands",
    "NO": "Norway", "PL": "Poland", "PT": "Portugal", "SE": "Sweden", "SI": "Slovenia",
    "SK": "Slovakia",
}  # fmt: skip


def covers(zone: str) -> bool:
    return zone.upper() in COUNTRIES


class EnergyCharts(HttpProvider):
    name = "energy-charts"
    label = "Energy-Charts"
    default_url = DEFAULT_URL

    def _series(
        self, zone: str, stop: threading.Event | None, start: float | None = None, end: float | None = None
    ) -> tuple[list[Slot], list[Slot]]:
        """(measured, measured then forecast) slots of ``zone``."""
        key = zone.upper()
        if key not in COUNTRIES:
            raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
        params = {"country": key.lower()}
        if start is not None and end is not None:
            params.update(start=iso_minute(start), end=iso_minute(end))
        try:
            data = self._http.get_json(f"{self.base_url}/co2eq", params, stop)
        except ProviderError as err:
            if err.kind == "http" and "not the code for an available country" in err.message:
                raise ProviderError("zone", f"{self.label}: has no data for country {key}") from None
            raise
        times = dig(data, self.label, "unix_seconds")
        measured = dig(data, self.label, "co2eq")
        forecast: Any = data.get("co2eq_forecast")  # dig: data is an object
        if forecast is None and isinstance(times, list):
            forecast = [None] * len(times)
        if not (isinstance(times, list) and isinstance(measured, list) and isinstance(forecast, list)):
            raise ProviderError("shape", f"{self.label}: unix_seconds, co2eq, co2eq_forecast are not lists")
        if not len(times) == len(measured) == len(forecast):
            raise ProviderError(
                "shape", f"{self.label}: unix_seconds, co2eq, co2eq_forecast differ in length"
            )
        for t in times:
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                raise ProviderError(
                    "shape", f"{self.label}: unix_seconds holds {type(t).__name__}, not a number"
                )
        rows = list(zip((float(t) for t in times), measured, forecast))
        # the step is read from every slot; then each series keeps its own rows
        grid = slots(((t, 0.0, None) for t, _, _ in rows), self.label, "unix_seconds", STEP_S)
        ends = {s.start: s.end for s in grid}
        got = slots(((t, m, ends[t]) for t, m, _ in rows if m is not None), self.label, "co2eq")
        both = ((t, m if m is not None else f, ends[t]) for t, m, f in rows if m is not None or f is not None)
        return got, slots(both, self.label, "co2eq_forecast")

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        measured, _ = self._series(zone, stop)
        if not measured:
            raise ProviderError("shape", f"{self.label}: no measured value in the answer")
        newest = measured[-1]
        age = time.time() - newest.end
        if age > MAX_AGE_S:
            raise ProviderError("stale", f"{self.label}: the newest measured value is {age / 3600:.1f} h old")
        key = zone.upper()
        return Intensity(newest.gco2eq_per_kwh, f"{self.name}:{key}", key)

    def forecast(
        self, zone: str, now: float, stop: threading.Event | None = None, hours: float = 24
    ) -> list[Slot]:
        """The published forecast, after the measured slots it follows (so "now", which the
        measured values may not reach yet, is covered)."""
        return self._series(zone, stop)[1]

    def history(self, zone: str, start: float, end: float, stop: threading.Event | None = None) -> list[Slot]:
        """Measured slots between ``start`` and ``end`` (epoch s)."""
        return self._series(zone, stop, start, end)[0]
