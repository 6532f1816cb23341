"""The bundled yearly tables (``carbon_core/data``): loaded on first use, then cached.

Zone keys are Electricity Maps zone ids wherever one exists: countries are ISO 3166-1
alpha-2 (``DE``), grid regions Electricity Maps' ids (``US-MIDA-PJM``, ``CA-QC``,
``SE-SE3``, ``DK-DK1``); US states keep their ISO 3166-2 keys (``US-CA``). Cloud regions
are looked up by their provider's name: Google Cloud regions have their own figure
(``europe-west1``), published by Google; AWS and Azure regions (``eu-west-1``,
``westeurope``) map to the grid zone that supplies them. Any of them may carry a ``gcp:`` /
``aws:`` / ``azure:`` prefix.

One default basis, life cycle (what Electricity Maps serves by default): a figure on
another basis says so at the end of its source (``table:us-state:US-VA:2023:direct``,
``table:gcp:us-east4:2024:direct``). The tables, in the order they are read (a later one
wins for the same key):

- ``grid_intensity_countries.csv`` (``table:country:DE:2024``): Ember / Our World in Data,
  life cycle, production based;
- ``grid_intensity_us_states.csv`` (``table:us-state:US-VA:2023:direct``): eGRID, direct;
- ``grid_intensity_electricitymaps.csv`` (``table:electricitymaps:US-MIDA-PJM:2025``):
  Electricity Maps' yearly life-cycle figures for the grid regions of the US, Canada,
  Sweden, Norway and Denmark, and for those five countries themselves, so that a country
  and its zones come from one source and one method (``SE`` is then the mean of
  ``SE-SE1``..``SE-SE4``, not a figure from another method above all four);
- ``cloud_regions_gcp.csv`` (``table:gcp:europe-west1:2024:direct``): Google's figures.

A zone that no table holds resolves to its parent before anything else, and the source
says so: ``GB-13`` -> ``GB``, ``JP-TK`` -> ``JP``, ``AUS-NSW`` -> ``AU`` (an ISO alpha-3
prefix is read as its country). See ``carbon_core/data/SOURCES.md``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from carbon_core import data
from carbon_core.intensity.values import DEFAULT_BASIS, DIRECT, Intensity

DATA_DIR = data.DATA_DIR

CLOUD_PROVIDERS = ("gcp", "aws", "azure")
ALIASES = {"UK": "GB"}


@dataclass(frozen=True)
class _Row:
    key: str
    name: str
    kind: str  # country | us-state | electricitymaps | gcp
    year: str
    value: float
    country: str  # ISO alpha-2 of the grid the row belongs to
    basis: str = DEFAULT_BASIS
    zone: str = ""  # gcp: the grid zone (Electricity Maps id) the region sits in

    def source(self) -> str:
        tail = "" if self.basis == DEFAULT_BASIS else f":{self.basis}"
        return f"table:{self.kind}:{self.key}:{self.year}{tail}"


@dataclass(frozen=True)
class _Tables:
    grid: dict[str, _Row]  # countries, US states, grid regions (upper-case keys)
    iso3: dict[str, str]  # alpha-3 -> alpha-2
    gcp: dict[str, _Row]  # region -> row
    cloud_location: dict[str, tuple[str, str]]  # region -> (provider, zone)


_lock = threading.Lock()
_cache: _Tables | None = None


def _read(name: str) -> list[dict[str, str]]:
    """The rows of one table; every value is kept as the text it is (``NA`` is Namibia)."""
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
        value = float(r["gco2eq_per_kwh"])
        grid[key] = _Row(key, r["name"], "us-state", r["year"], value, "US", DIRECT)
    for r in _read("grid_intensity_electricitymaps.csv"):
        key = r["zone"].strip().upper()
        value = float(r["gco2eq_per_kwh"])
        grid[key] = _Row(key, r["name"], "electricitymaps", r["year"], value, r["country"].strip().upper())
    gcp: dict[str, _Row] = {}
    for r in _read("cloud_regions_gcp.csv"):
        key = r["region"].strip().lower()
        country = iso3.get(r["country_iso3"].strip().upper(), "")
        value = float(r["gco2eq_per_kwh"])
        zone = r["zone"].strip().upper()
        gcp[key] = _Row(key, r["city"], "gcp", r["year"], value, country, r["basis"].strip(), zone)
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
    """The grid zone (an Electricity Maps zone id) of ``zone``: a cloud region becomes the
    zone that supplies it (``aws:us-east-1`` -> ``US-MIDA-PJM``, ``asia-east2`` -> ``HK``);
    other keys are returned canonical."""
    hit = cloud_region(zone)
    if hit is None:
        return canonical(zone)
    provider, region = hit
    t = _tables()
    if provider == "gcp":
        row = t.gcp[region]
        return row.zone or row.country or None
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
    """Every bundled zone with its figure (countries, US states, grid regions, GCP
    regions), optionally filtered by a case-insensitive substring of key or name."""
    t = _tables()
    q = query.strip().lower() if query else ""
    rows = sorted(t.grid.values(), key=lambda r: r.key) + sorted(t.gcp.values(), key=lambda r: r.key)
    return [
        Intensity(r.value, r.source(), r.key)
        for r in rows
        if not q or q in r.key.lower() or q in r.name.lower()
    ]
