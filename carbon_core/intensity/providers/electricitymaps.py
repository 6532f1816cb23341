"""Electricity Maps API v3: ``GET {base}/carbon-intensity/latest?zone=...``.

Needs a token, sent as the ``auth-token`` header; covers any Electricity Maps zone.
Answer (verified against a recorded fixture, aioelectricitymaps)::

    {"zone": "DE", "carbonIntensity": 216, "datetime": "2024-03-06T19:00:00.000Z",
     "updatedAt": "...", "emissionFactorType": "lifecycle", "isEstimated": true, ...}

``carbonIntensity`` (integer gCO2eq/kWh, life-cycle by default) is the only field read.
401 means a bad token; 403 a zone outside the plan (status unconfirmed); 404 an unknown
zone; 429 rate limited (``Retry-After`` unconfirmed, honoured when sent).
"""

from __future__ import annotations

import threading

from carbon_core.intensity.providers._parse import dig, intensity_value
from carbon_core.intensity.providers.base import HttpProvider
from carbon_core.intensity.values import Intensity

DEFAULT_URL = "https://api.electricitymaps.com/v3"


class ElectricityMaps(HttpProvider):
    name = "electricitymaps"
    label = "Electricity Maps"
    default_url = DEFAULT_URL

    def __init__(self, token: str, *, base_url: str | None = None, timeout_s: float = 3.0) -> None:
        super().__init__(
            base_url=base_url, timeout_s=timeout_s, headers={"auth-token": token}, secrets=(token,)
        )

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        data = self._http.get_json(f"{self.base_url}/carbon-intensity/latest", {"zone": zone}, stop)
        value = intensity_value(dig(data, self.label, "carbonIntensity"), self.label, "carbonIntensity")
        return Intensity(value, f"{self.name}:{zone}", zone)
