"""RTE éCO2mix through ODRÉ (Opendatasoft Explore v2.1), no token: France, ``FR``.

``GET {base}/api/explore/v2.1/catalog/datasets/eco2mix-national-tr/records`` with
``where=taux_co2 is not null``, ``order_by=date_heure desc``, ``limit=1`` (the newest row; the
dataset holds future rows pre-filled with null, hence the filter) ->
``{"total_count": 1, "results": [{"perimetre": "France", "date_heure":
"2026-06-14T19:00:00+00:00", "taux_co2": 15, ...}]}`` (a reply recorded 2026-06-14,
Kovelt/carbon-fr ``crates/adapter-odre/src/dto.rs``). ``taux_co2`` is g CO2/kWh of French
generation: emissions at the power stations over production, imports left out, so a direct
figure (source ``eco2mix:FR:direct``). Rows are 15 minutes, published about 30 minutes late;
numbers may come as strings, parsed leniently; a row whose ``perimetre`` is not France is an
answer for another zone. Recent history (for what an earlier start would have emitted) is a
range query, 100 rows a page (the API's most). éCO2mix publishes no CO2 forecast.

Quota: 50,000 calls a month per dataset and client IP. Licence: not confirmed in the sources
read (the ODRÉ dataset page was not among them); see the README.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from carbon_core.intensity.providers._parse import dig, intensity_value
from carbon_core.intensity.providers._redact import excerpt
from carbon_core.intensity.providers._series import Slot, iso_minute, number, parse_time, slots
from carbon_core.intensity.providers.base import HttpProvider
from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.values import DIRECT, Intensity

DEFAULT_URL = "https://odre.opendatasoft.com"
RECORDS = "/api/explore/v2.1/catalog/datasets/eco2mix-national-tr/records"
BASIS = DIRECT
#: a newest row older than this is not "live" (an outage: ODRÉ failed for days in 2026)
MAX_AGE_S = 6 * 3600.0
PAGE = 100
MAX_PAGES = 10
FIELDS = "date_heure,taux_co2,perimetre"


def covers(zone: str) -> bool:
    return zone.upper() == "FR"


class Eco2mix(HttpProvider):
    name = "eco2mix"
    label = "RTE eCO2mix (ODRE)"
    default_url = DEFAULT_URL
    basis = BASIS

    def _rows(self, params: dict[str, str], stop: threading.Event | None) -> tuple[list[dict[str, Any]], int]:
        data = self._http.get_json(f"{self.base_url}{RECORDS}", params, stop)
        results = dig(data, self.label, "results")
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise ProviderError("shape", f"{self.label}: results is not a list of rows")
        for r in results:
            where = r.get("perimetre", "France")
            if where != "France":
                shown = excerpt(str(where), (), limit=40)
                raise ProviderError(
                    "zone", f"{self.label}: asked for France, a row is for {shown!r}; ignored"
                )
        total = data.get("total_count")
        return results, total if isinstance(total, int) and not isinstance(total, bool) else len(results)

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        if not covers(zone):
            raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
        params = {
            "where": "taux_co2 is not null",
            "order_by": "date_heure desc",
            "limit": "1",
            "select": FIELDS,
        }
        rows, _ = self._rows(params, stop)
        if not rows:
            raise ProviderError("shape", f"{self.label}: no row with taux_co2")
        row = rows[0]
        when = parse_time(dig(row, self.label, "date_heure"), self.label, "date_heure")
        value = intensity_value(number(dig(row, self.label, "taux_co2")), self.label, "taux_co2")
        age = time.time() - when
        if age > MAX_AGE_S:
            raise ProviderError("stale", f"{self.label}: the newest row is {age / 3600:.1f} h old")
        return Intensity(value, f"{self.name}:FR:{BASIS}", "FR")

    def history(self, zone: str, start: float, end: float, stop: threading.Event | None = None) -> list[Slot]:
        """The rows from ``start`` to ``end`` (epoch s), a page at a time."""
        if not covers(zone):
            raise ProviderError("not-found", f"{self.label}: does not serve zone {zone}")
        lo, hi = (iso_minute(t).replace("Z", ":00+00:00") for t in (start, end))
        where = f"date_heure >= '{lo}' and date_heure < '{hi}' and taux_co2 is not null"
        rows: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            params = {"where": where, "order_by": "date_heure asc", "limit": str(PAGE),
                      "offset": str(page * PAGE), "select": FIELDS}  # fmt: skip
            got, total = self._rows(params, stop)
            rows += got
            if len(got) < PAGE or len(rows) >= total:
                break
        points = [
            (parse_time(dig(r, self.label, "date_heure"), self.label, "date_heure"), r.get("taux_co2"), None)
            for r in rows
        ]
        return slots(points, self.label, "taux_co2", 900.0)
