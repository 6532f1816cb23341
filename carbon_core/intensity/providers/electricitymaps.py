"""Electricity Maps API v3: ``GET {base}/carbon-intensity/latest?zone=...``.

Needs a token, sent as the ``auth-token`` header; covers any Electricity Maps zone. The zone
sent is an Electricity Maps zone id (a cloud region is sent as the zone that supplies it,
:func:`carbon_core.intensity.tables.grid_zone`), with ``shouldUseFallbackCallerLookup=false``
so that the service never answers for the caller's IP location instead (the parameter's
name is Electricity Maps' documented one as reported in issue 15; no stored copy of the API
reference confirmed it). Answer (verified against a recorded fixture, aioelectricitymaps)::

    {"zone": "DE", "carbonIntensity": 216, "datetime": "2024-03-06T19:00:00.000Z",
     "updatedAt": "...", "emissionFactorType": "lifecycle", "isEstimated": true, ...}

``carbonIntensity`` (integer gCO2eq/kWh, life cycle by default) is the figure; ``zone`` must
be the zone asked for (an answer for another zone, or one that does not say, is a fault and
falls back like any other); an ``emissionFactorType`` other than ``lifecycle`` is named at
the end of the source (``electricitymaps:DE:direct``).

401 is either a bad token (``"error": "Invalid auth-token"``) or a zone or endpoint outside
the token's plan (``"error": "Request unauthorized for zoneKey=..."``): the warning says
which when the body tells, and that both are possible when it does not. 403 is an older
form of the second; 404 an unknown zone; 429 rate limited (``Retry-After`` honoured).

Forecast: ``GET {base}/carbon-intensity/forecast?zone=...&horizonHours=N`` -> ``{"zone":
"DK-DK2", "forecast": [{"carbonIntensity": 77, "datetime": "2026-08-22T17:00:00.000Z"}, ...],
"updatedAt": ...}`` (hourly rows from the current hour; ``horizonHours`` one of 6, 24, 48, 72;
a recorded v4 reply, maurobdata/electricity-grid-lab). Recent history:
``/carbon-intensity/history?zone=...`` -> ``{"zone", "history": [rows like latest]}``, the
last 24 hours, oldest first; a row's ``carbonIntensity`` may be null (skipped). Life cycle,
the service's default.
"""

from __future__ import annotations

import threading
from typing import Any

from carbon_core.intensity.providers._parse import dig, intensity_value
from carbon_core.intensity.providers._redact import excerpt
from carbon_core.intensity.providers._series import Slot, parse_time, slots
from carbon_core.intensity.providers.base import HttpProvider
from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.values import DIRECT, Intensity

DEFAULT_URL = "https://api.electricitymaps.com/v3"


class ElectricityMaps(HttpProvider):
    name = "electricitymaps"
    label = "Electricity Maps"
    default_url = DEFAULT_URL

    def __init__(self, token: str, *, base_url: str | None = None, timeout_s: float = 3.0) -> None:
        super().__init__(
            base_url=base_url, timeout_s=timeout_s, headers={"auth-token": token}, secrets=(token,)
        )
        self._secrets = (token,)

    def _get(self, path: str, zone: str, stop: threading.Event | None, **extra: str) -> Any:
        """The answer for ``zone`` at ``path``; an answer for another zone is a fault."""
        params = {"zone": zone, "shouldUseFallbackCallerLookup": "false", **extra}
        try:
            data = self._http.get_json(f"{self.base_url}/{path}", params, stop)
        except ProviderError as err:
            if err.kind == "auth":
                raise ProviderError("auth", _refused(err.message, zone)) from None
            raise
        answered = _zone_of(data, self.label)
        if answered.upper() != zone.upper():
            shown = excerpt(answered, self._secrets, limit=40)  # the server's words: no secret
            raise ProviderError(
                "zone", f"{self.label}: asked for zone {zone}, the answer is for zone {shown!r}; ignored"
            )
        return data

    def _rows(self, data: Any, key: str) -> list[Slot]:
        rows = dig(data, self.label, key)
        if not isinstance(rows, list):
            raise ProviderError("shape", f"{self.label}: {key} is not a list")
        points = [
            (parse_time(dig(r, self.label, "datetime"), self.label, "datetime"), r["carbonIntensity"], None)
            for r in rows
            if dig(r, self.label, "carbonIntensity") is not None
        ]
        return slots(points, self.label, "carbonIntensity", 3600.0)

    def forecast(
        self, zone: str, now: float, stop: threading.Event | None = None, hours: float = 24
    ) -> list[Slot]:
        """The forecast, ``hours`` ahead at least where the plan allows (6, 24, 48 or 72)."""
        horizon = next((h for h in (6, 24, 48, 72) if h >= hours), 72)
        return self._rows(
            self._get("carbon-intensity/forecast", zone, stop, horizonHours=str(horizon)), "forecast"
        )

    def history(self, zone: str, start: float, end: float, stop: threading.Event | None = None) -> list[Slot]:
        """The last 24 hours (all the free plan has)."""
        return self._rows(self._get("carbon-intensity/history", zone, stop), "history")

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        data = self._get("carbon-intensity/latest", zone, stop)
        value = intensity_value(dig(data, self.label, "carbonIntensity"), self.label, "carbonIntensity")
        tail = f":{DIRECT}" if data.get("emissionFactorType") == DIRECT else ""
        return Intensity(value, f"{self.name}:{zone}{tail}", zone)


def _zone_of(data: Any, label: str) -> str:
    answered = dig(data, label, "zone")
    if not isinstance(answered, str):
        raise ProviderError("shape", f"{label}: the answer's zone is {type(answered).__name__}, not text")
    return answered


def _refused(message: str, zone: str) -> str:
    """The warning for a 401/403, from the (scrubbed) message the HTTP client made."""
    if "Invalid auth-token" in message or "valid authentication header" in message:
        why = "the token is not valid (check CARBON_ELECTRICITYMAPS_TOKEN)"
    elif "unauthorized for zoneKey" in message or "do not have access" in message:
        why = f"the token is valid, but zone {zone} (or this endpoint) is outside its plan"
    else:
        why = f"the token may be invalid, or valid but with zone {zone} (or this endpoint) outside its plan"
    return f"{message}; {why}. A free plan covers one zone: see your zones at portal.electricitymaps.com"
