"""Energi Data Service (Energinet, Denmark), no token: ``DK-DK1`` and ``DK-DK2``.

``GET {base}/dataset/CO2Emis?filter={"PriceArea":["DK1"]}&sort=Minutes5UTC DESC&limit=1``
-> ``{"total": ..., "dataset": "CO2Emis", "records": [{"Minutes5UTC":
"2026-01-20T16:30:00", "Minutes5DK": "...", "PriceArea": "DK1", "CO2Emission": 160.0}]}``.
The newest record of the asked price area is used (``CO2Emission``, g/kWh, 5-minute
resolution, updated hourly); records of another area are ignored even if sent.

Forecast: dataset ``CO2EmisProg`` (same row shape; the prognosis, updated every 15 minutes,
at least 9 hours ahead), its newest :data:`FORECAST_ROWS` rows of the area (sorted newest
first: no local-time ``start`` to compute). Recent history: ``CO2Emis`` the same way. A
timestamp is the start of a 5-minute slot, in UTC without an offset (``Minutes5UTC``).
Rate limit: one request per dataset per minute per IP (429 with ``Retry-After`` beyond).
"""

from __future__ import annotations

import threading
from typing import Any

from carbon_core.intensity.providers._parse import dig, intensity_value
from carbon_core.intensity.providers._series import Slot, parse_time, slots
from carbon_core.intensity.providers.base import HttpProvider
from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.values import DIRECT, Intensity

DEFAULT_URL = "https://api.energidataservice.dk"
DATASET = "CO2Emis"
FORECAST_DATASET = "CO2EmisProg"
#: 50 hours of 5-minute rows: the whole prognosis ahead and the hours just past
FORECAST_ROWS = 600
#: the most history rows asked for (a week of 5-minute rows)
MAX_HISTORY_ROWS = 2016
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
    basis = BASIS

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        key = zone.upper()
        area = AREAS.get(key)
        if area is None:
            raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
        mine = self._records(DATASET, area, 1, stop)
        newest = max(mine, key=lambda r: str(r.get("Minutes5UTC", "")))
        value = intensity_value(dig(newest, self.label, "CO2Emission"), self.label, "CO2Emission")
        return Intensity(value, f"{self.name}:{key}:{BASIS}", key)

    def _records(
        self, dataset: str, area: str, limit: int, stop: threading.Event | None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` records of ``area`` (records of another area dropped)."""
        import json

        params = {
            "filter": json.dumps({"PriceArea": [area]}, separators=(",", ":")),
            "sort": "Minutes5UTC DESC",
            "limit": str(limit),
        }
        data = self._http.get_json(f"{self.base_url}/dataset/{dataset}", params, stop)
        records = dig(data, self.label, "records")
        if not isinstance(records, list):
            raise ProviderError("shape", f"{self.label}: records is not a list")
        mine = [r for r in records if isinstance(r, dict) and r.get("PriceArea") == area]
        if not mine:
            raise ProviderError("shape", f"{self.label}: no record for price area {area}")
        return mine

    def _slots(self, zone: str, dataset: str, limit: int, stop: threading.Event | None) -> list[Slot]:
        area = AREAS.get(zone.upper())
        if area is None:
            raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
        rows = self._records(dataset, area, limit, stop)
        points = [
            (parse_time(dig(r, self.label, "Minutes5UTC"), self.label, "Minutes5UTC", naive_utc=True),
             dig(r, self.label, "CO2Emission"), None)
            for r in rows
        ]  # fmt: skip
        return slots(points, self.label, "CO2Emission", 300.0)

    def forecast(
        self, zone: str, now: float, stop: threading.Event | None = None, hours: float = 24
    ) -> list[Slot]:
        """The prognosis (``CO2EmisProg``): its newest rows, past ones included."""
        return self._slots(zone, FORECAST_DATASET, FORECAST_ROWS, stop)

    def history(self, zone: str, start: float, end: float, stop: threading.Event | None = None) -> list[Slot]:
        """``CO2Emis`` rows back to ``start`` (the newest rows, enough of them to reach it)."""
        rows = min(MAX_HISTORY_ROWS, int((end - start) // 300) + 24)  # end: about now
        return [s for s in self._slots(zone, DATASET, max(rows, 1), stop) if s.end > start and s.start < end]
