"""The bundled yearly tables (``carbon_core/data``): loaded on first use, then cached.

Zone keys follow Electricity Maps where one exists: countries are ISO 3166-1 alpha-2
(``DE``), US states ISO 3166-2 (``US-CA``), Nordic bidding zones ``SE-SE3`` / ``NO-NO1``.
Cloud regions are looked up by their provider's name: Google Cloud regions have their
own figure (``europe-west1``); AWS and Azure regions (``eu-west-1``, ``westeurope``) map
to the grid zone they sit in. Any of them may carry a ``gcp:`` / ``aws:`` / ``azure:``
prefix.

A zone that no table holds resolves to its parent before anything else, and the source
says so: ``DK-DK1`` -> ``DK``, ``US-CAL-CISO`` -> ``US``, ``AUS-NSW`` -> ``AU`` (an ISO
alpha-3 prefix is read as its country).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from carbon_core import data
from carbon_core.intensity.values import Intensity

DATA_DIR = data.DATA_DIR

CLOUD_PROVIDERS = ("gcp", "aws", "azure")
ALIASES = {"UK": "GB"}


@dataclass(frozen=True)
class _Row:
    key: str
    name: str
    kind: str  # country | us-state | bidding-zone | gcp
    year: str
    value: float
    country: str  # ISO alpha-2 of the grid the row belongs to

    def source(self) -> str:
        if self.kind == "gcp":
            return f"table:gcp:{self.key}"
        return f"table:{self.kind}:{self.key}:{self.year}"


@dataclass(frozen=True)
class _Tables:
    grid: dict[str, _Row]  # countries, US states, bidding zones (upper-case keys)
    iso3: dict[str, str]  # alpha-3 -> alpha-2
    gcp: dict[str, _Row]  # region -> row
    cloud_location: dict[str, tuple[str, str]]  # region -> (provider, zone)


_lock = threading.Lock()
_cache: _Tables | None = None


def _read(name: str) -> list[dict[str, str]]:
    import csv

    with (DATA_DIR / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _load() -> _Tables:
    grid: dict[str, _Row] = {}
    iso3: dict[str, str] = {}
    for r in _read("grid_intensity_countries.csv"):
        key = r["iso2"].strip().upper()
        grid[key] = _Row(key, r["name"], "country", r["year"], float(r["gco2eq_per_kwh"]), key)
        iso3[r["iso3"].strip().upper()] = key
    for r in _read("grid_intensity_us_states.csv"):
        key = r["region"].strip().upper()
        grid[key] = _Row(key, r["name"], "us-state", r["year"], float(r["gco2eq_per_kwh"]), "US")
    for r in _read("grid_intensity_nordic_zones.csv"):
        key = r["zone"].strip().upper()
        country = key.split("-", 1)[0]
        grid[key] = _Row(
            key, r["description"], "bidding-zone", r["year"], float(r["gco2eq_per_kwh"]), country
        )
    gcp: dict[str, _Row] = {}
    for r in _read("cloud_regions_gcp.csv"):
        key = r["region"].strip().lower()
        country = iso3.get(r["country_iso3"].strip().upper(), "")
        gcp[key] = _Row(key, r["city"], "gcp", "", float(r["gco2eq_per_kwh"]), country)
    cloud_location: dict[str, tuple[str, str]] = {}
    for r in _read("cloud_regions_location.csv"):
        cloud_location[r["region"].strip().lower()] = (
            r["provider"].strip().lower(),
            r["location"].strip().upper(),
        )
    return _Tables(grid, iso3, gcp, cloud_location)


def _tables() -> _Tables:
    global _cache
    if _cache is None:
        with _lock:
            if _cache is None:
                _cache = _load()
    return _cache


def _strip_provider(name: str) -> tuple[str | None, str]:
    head, sep, tail = name.partition(":")
    if sep and head.strip().lower() in CLOUD_PROVIDERS:
        return head.strip().lower(), tail.strip()
    return None, name


def cloud_region(name: str) -> tuple[str, str] | None:
    """``(provider, region)`` when ``name`` is a known cloud region, else None."""
    provider, region = _strip_provider(name.strip())
    region = region.lower()
    t = _tables()
    if region in t.gcp and provider in (None, "gcp"):
        return "gcp", region
    hit = t.cloud_location.get(region)
    if hit is not None and provider in (None, hit[0]):
        return hit[0], region
    return None


def canonical(zone: str) -> str:
    """The key a zone is known by: a cloud region in lower case, any other zone upper."""
    z = zone.strip()
    hit = cloud_region(z)
    if hit is not None:
        return hit[1] if hit[0] == "gcp" else f"{hit[0]}:{hit[1]}"
    z = z.upper()
    return ALIASES.get(z, z)


def grid_zone(zone: str) -> str | None:
    """The grid (Electricity Maps style) zone key of ``zone``: a cloud region becomes the
    zone it sits in (a GCP region its country); other keys are returned canonical."""
    hit = cloud_region(zone)
    if hit is None:
        return canonical(zone)
    provider, region = hit
    t = _tables()
    if provider == "gcp":
        return t.gcp[region].country or None
    return t.cloud_location[region][1]


def _grid_lookup(key: str) -> tuple[_Row, bool] | None:
    """Row for ``key`` or its nearest parent; the flag says whether it was a parent."""
    t = _tables()
    key = ALIASES.get(key, key)
    if key in t.grid:
        return t.grid[key], False
    parts = key.split("-")
    while len(parts) > 1:
        parts.pop()
        parent = "-".join(parts)
        parent = t.iso3.get(parent, parent) if len(parts) == 1 else parent
        if parent in t.grid:
            return t.grid[parent], True
    return None


def lookup(zone: str) -> Intensity | None:
    """The bundled yearly figure for ``zone`` (parent fallback included), or None."""
    if not zone or not zone.strip():
        return None
    hit = cloud_region(zone)
    if hit is not None:
        provider, region = hit
        t = _tables()
        if provider == "gcp":
            row = t.gcp[region]
            return Intensity(row.value, row.source(), region)
        found = lookup(t.cloud_location[region][1])
        if found is None:
            return None
        return Intensity(found.gco2eq_per_kwh, f"{found.source} ({provider}:{region})", found.zone)
    key = canonical(zone)
    got = _grid_lookup(key)
    if got is None:
        return None
    row, is_parent = got
    source = row.source() + (f" (parent of {key})" if is_parent else "")
    return Intensity(row.value, source, key)


def zones(query: str | None = None) -> list[Intensity]:
    """Every bundled zone with its figure (countries, US states, bidding zones, GCP
    regions), optionally filtered by a case-insensitive substring of key or name."""
    t = _tables()
    q = query.strip().lower() if query else ""
    rows = sorted(t.grid.values(), key=lambda r: r.key) + sorted(t.gcp.values(), key=lambda r: r.key)
    return [
        Intensity(r.value, r.source(), r.key)
        for r in rows
        if not q or q in r.key.lower() or q in r.name.lower()
    ]
