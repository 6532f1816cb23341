"""Energi Data Service (Energinet, Denmark), no token: ``DK-DK1`` and ``DK-DK2``.

``GET {base}/dataset/CO2Emis?filter={"PriceArea":["DK1"]}&sort=Minutes5UTC DESC&limit=1``
-> ``{"total": ..., "dataset": "CO2Emis", "records": [{"Minutes5UTC":
"2026-01-20T16:30:00", "Minutes5DK": "...", "PriceArea": "DK1", "CO2Emission": 160.0}]}``.
The newest record of the asked price area is used (``CO2Emission``, g/kWh, 5-minute
resolution, updated hourly); records of another area are ignored even if sent.
"""

from __future__ import annotations

import threading

from carbon_core.intensity.providers._parse import dig, intensity_value
from carbon_core.intensity.providers.base import HttpProvider
from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.values import DIRECT, Intensity

DEFAULT_URL = "https://api.energidataservice.dk"
DATASET = "CO2Emis"
AREAS = {"DK-DK1": "DK1", "DK-DK2": "DK2"}
#: ``CO2Emission`` counts what generation emits (no life cycle), so the
#: source names the basis: ``...:direct`` (see :data:`~carbon_core.intensity.values.DIRECT`)
BASIS = DIRECT


def covers(zone: str) -> bool:
    return zone.upper() in AREAS


class EnergiDataService(HttpProvider):
    name = "energidataservice"
    label = "Energi Data Service"
    default_url = DEFAULT_URL

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        key = zone.upper()
        area = AREAS.get(key)
        if area is None:
            raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
        import json

        params = {
            "filter": json.dumps({"PriceArea": [area]}, separators=(",", ":")),
            "sort": "Minutes5UTC DESC",
            "limit": "1",
        }
        data = self._http.get_json(f"{self.base_url}/dataset/{DATASET}", params, stop)
        records = dig(data, self.label, "records")
        if not isinstance(records, list):
            raise ProviderError("shape", f"{self.label}: records is not a list")
        mine = [r for r in records if isinstance(r, dict) and r.get("PriceArea") == area]
        if not mine:
            raise ProviderError("shape", f"{self.label}: no record for price area {area}")
        newest = max(mine, key=lambda r: str(r.get("Minutes5UTC", "")))
        value = intensity_value(dig(newest, self.label, "CO2Emission"), self.label, "CO2Emission")
        return Intensity(value, f"{self.name}:{key}:{BASIS}", key)
