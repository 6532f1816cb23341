"""The GB Carbon Intensity API (NESO), no token: national and regional figures.

Zones it serves (a mapping of our own; Electricity Maps has no GB regions):

- ``GB``: ``GET {base}/intensity`` -> ``{"data": [{"from", "to", "intensity":
  {"forecast": 266, "actual": 263, "index": "moderate"}}]}``; ``actual`` is used when
  not null, else ``forecast``.
- ``GB-1`` .. ``GB-17``: ``GET {base}/regional/regionid/N`` (NESO region ids: 1 North
  Scotland, 2 South Scotland, 3 North West England, 4 North East England, 5 Yorkshire,
  6 North Wales & Merseyside, 7 South Wales, 8 West Midlands, 9 East Midlands, 10 East
  England, 11 South West England, 12 South England, 13 London, 14 South East England,
  15 England, 16 Scotland, 17 Wales), and the ISO 3166-2 aliases ``GB-ENG`` (15),
  ``GB-SCT`` (16), ``GB-WLS`` (17). Answer: ``{"data": [{"regionid": 13, "shortname":
  ..., "data": [{"from", "to", "intensity": {"forecast": 180, "index": ...},
  "generationmix": [...]}]}]}``; regional figures are forecasts only. An object in place
  of the outer list (the window endpoints' shape) is accepted too.

Forecasts and recent history (:meth:`UkCarbonIntensity.forecast`, :meth:`~UkCarbonIntensity.history`):
``GET {base}/intensity/{from}/fw48h`` and ``/intensity/{from}/{to}`` (national: rows as above,
``actual`` null in the future), ``/regional/intensity/{from}/fw48h/regionid/N`` and
``/regional/intensity/{from}/{to}/regionid/N`` (one region: ``{"data": {"regionid": N, ...,
"data": [rows]}}``, a one-item list accepted too; forecasts only). Times are
``YYYY-MM-DDThh:mmZ`` (UTC); 30-minute rows, each with its own ``from`` and ``to``; the first
row is the half hour that ends at or contains ``from``.

Northern Ireland (``GB-NIR``) is not on this grid and is not served.
Errors come as ``{"error": {"code": "400 Bad Request", "message": "..."}}``.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from carbon_core.intensity.providers._parse import dig, intensity_value
from carbon_core.intensity.providers._series import Slot, iso_minute, parse_time, slots
from carbon_core.intensity.providers.base import HttpProvider
from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.values import DIRECT, Intensity

DEFAULT_URL = "https://api.carbonintensity.org.uk"
#: NESO's figures count the emissions at the power station only (no life cycle), so the
#: source names the basis: ``...:direct`` (see :data:`~carbon_core.intensity.values.DIRECT`)
BASIS = DIRECT

REGION_ALIASES = {"GB-ENG": 15, "GB-SCT": 16, "GB-WLS": 17}
_REGION = re.compile(r"^GB-(\d{1,2})$")


def region_id(zone: str) -> int | None:
    """The NESO region id of a regional GB zone key, else None."""
    z = zone.upper()
    if z in REGION_ALIASES:
        return REGION_ALIASES[z]
    m = _REGION.match(z)
    if m and 1 <= int(m.group(1)) <= 17:
        return int(m.group(1))
    return None


def covers(zone: str) -> bool:
    return zone.upper() == "GB" or region_id(zone) is not None


class UkCarbonIntensity(HttpProvider):
    name = "uk-carbon-intensity"
    label = "UK Carbon Intensity API"
    default_url = DEFAULT_URL
    basis = BASIS

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        rid = region_id(zone)
        if rid is None:
            if zone.upper() != "GB":
                raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
            data = self._http.get_json(f"{self.base_url}/intensity", None, stop)
            block = dig(data, self.label, "data", 0, "intensity")
            if not isinstance(block, dict):
                raise ProviderError("shape", f"{self.label}: data[0].intensity is not an object")
            raw: Any = block.get("actual")
            field = "data[0].intensity.actual"
            if raw is None:
                raw = dig(block, self.label, "forecast")
                field = "data[0].intensity.forecast"
            value = intensity_value(raw, self.label, field)
            return Intensity(value, f"{self.name}:GB:{BASIS}", "GB")
        data = self._http.get_json(f"{self.base_url}/regional/regionid/{rid}", None, stop)
        region = dig(data, self.label, "data")
        if isinstance(region, list):
            region = dig(region, self.label, 0)
        raw = dig(region, self.label, "data", 0, "intensity", "forecast")
        value = intensity_value(raw, self.label, "data[0].data[0].intensity.forecast")
        key = zone.upper()
        return Intensity(value, f"{self.name}:{key}:{BASIS}", key)

    def forecast(
        self, zone: str, now: float, stop: threading.Event | None = None, hours: float = 48
    ) -> list[Slot]:
        """The 48-hour forecast from the half hour holding ``now`` (epoch s)."""
        return self._window(zone, f"{iso_minute(now + 60)}/fw48h", stop)

    def history(self, zone: str, start: float, end: float, stop: threading.Event | None = None) -> list[Slot]:
        """The half hours from ``start`` to ``end``: actual where published, else forecast."""
        return self._window(zone, f"{iso_minute(start + 60)}/{iso_minute(end)}", stop)

    def _window(self, zone: str, span: str, stop: threading.Event | None) -> list[Slot]:
        rid = region_id(zone)
        if rid is None:
            if zone.upper() != "GB":
                raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
            rows = dig(
                self._http.get_json(f"{self.base_url}/intensity/{span}", None, stop), self.label, "data"
            )
        else:
            data = self._http.get_json(
                f"{self.base_url}/regional/intensity/{span}/regionid/{rid}", None, stop
            )
            region = dig(data, self.label, "data")
            if isinstance(region, list):
                region = dig(region, self.label, 0)
            got = dig(region, self.label, "regionid")
            if got != rid:
                raise ProviderError(
                    "zone",
                    f"{self.label}: asked for region {rid}, the answer is for region "
                    f"{str(got)[:12]!r}; ignored",
                )
            rows = dig(region, self.label, "data")
        if not isinstance(rows, list):
            raise ProviderError("shape", f"{self.label}: data is not a list of half hours")
        points = []
        for row in rows:
            block = dig(row, self.label, "intensity")
            raw = block.get("actual") if isinstance(block, dict) else None
            if raw is None:
                raw = dig(block, self.label, "forecast")
            start = parse_time(dig(row, self.label, "from"), self.label, "from")
            end = parse_time(dig(row, self.label, "to"), self.label, "to")
            points.append((start, raw, end))
        return slots(points, self.label, "intensity")
