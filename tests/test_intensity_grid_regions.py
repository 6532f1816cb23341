"""Grid intensity where the data centres are, as a user sees it: the figure a tracker uses
for a cloud region is the one of the grid that supplies it, every figure names its source and
basis, and the summary and the run log say where the zone came from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from carbon_core import Tracker
from carbon_core.intensity import lookup, zones
from carbon_core.intensity.tables import _tables, grid_zone
from carbon_core.summary import render

#: A country and its grid zones come from one source and one method (see SOURCES.md).
FAMILIES = ("US", "CA", "SE", "NO", "DK")


def used_by(zone: str, **kwargs: object) -> tuple[float, str, str | None]:
    """(g/kWh, source, zone) of the figure a tracker built with ``zone`` uses."""
    snap = Tracker(zone=zone, gpus="none", log_dir="off", **kwargs).snapshot()  # type: ignore[arg-type]
    return snap.intensity_gco2eq_per_kwh, snap.intensity_source, snap.zone


@pytest.mark.parametrize(
    ("region", "zone", "value"),
    [
        # Canada: provinces, not the national 174.8 g
        ("aws:ca-central-1", "CA-QC", 41.0),  # Montreal
        ("azure:canadaeast", "CA-QC", 41.0),  # Quebec City
        ("aws:ca-west-1", "CA-AB", 385.0),  # Calgary
        ("azure:canadacentral", "CA-ON", 111.0),  # Toronto
        # US: the grid (balancing area) that supplies the region, not the state's generation
        ("aws:us-east-1", "US-MIDA-PJM", 418.0),  # Northern Virginia
        ("azure:eastus", "US-MIDA-PJM", 418.0),
        ("aws:us-east-2", "US-MIDA-PJM", 418.0),  # Ohio
        ("aws:us-west-1", "US-CAL-CISO", 208.0),  # Northern California
        ("aws:us-west-2", "US-NW-BPAT", 129.0),  # Oregon
        ("azure:southcentralus", "US-TEX-ERCO", 363.0),  # Texas
        ("azure:centralus", "US-MIDW-MISO", 501.0),  # Iowa
    ],
)
def test_a_cloud_region_gets_the_grid_that_supplies_it(region: str, zone: str, value: float) -> None:
    got, source, where = used_by(region)
    assert (got, where) == (value, zone)
    assert source == f"table:electricitymaps:{zone}:2025 ({region})"


@pytest.mark.parametrize(
    ("region", "country"),
    [
        ("aws:mx-central-1", "MX"),
        ("aws:ap-east-2", "TW"),
        ("aws:ap-southeast-5", "MY"),
        ("aws:ap-southeast-6", "NZ"),
        ("aws:ap-southeast-7", "TH"),
        ("azure:mexicocentral", "MX"),
        ("azure:chilecentral", "CL"),
        ("azure:newzealandnorth", "NZ"),
        ("azure:indonesiacentral", "ID"),
        ("azure:malaysiawest", "MY"),
        ("azure:austriaeast", "AT"),
        ("azure:belgiumcentral", "BE"),
        ("azure:southafricawest", "ZA"),
        ("azure:jioindiawest", "IN"),
        ("azure:uaecentral", "AE"),
        ("azure:norwaywest", "NO"),
        ("azure:denmarkeast", "DK"),
        ("azure:germanynorth", "DE"),
    ],
)
def test_newer_regions_no_longer_fall_to_the_world_average(region: str, country: str) -> None:
    found = lookup(region)
    assert found is not None, region
    assert found.source.startswith("table:") and found.source.endswith(f"({region})")
    country_figure = lookup(country)
    assert country_figure is not None
    assert found.zone is not None and found.zone.split("-")[0] == country
    if "parent of" in found.source:  # a grid zone the tables know only through its country
        assert found.gco2eq_per_kwh == country_figure.gco2eq_per_kwh


@pytest.mark.parametrize(
    ("region", "value"),
    [
        ("europe-west6", 15.05),  # Zurich, 59 in the 2023 file
        ("europe-west9", 16.30),  # Paris, 34
        ("me-central1", 366.0),  # Doha, 575
        ("southamerica-west1", 238.0),  # Santiago, 138
        ("europe-north2", 2.73),  # Stockholm: not in the 2023 file
        ("northamerica-south1", 305.0),  # Mexico
        ("us-central2", 372.23),  # Oklahoma
        ("us-east2", 340.42),  # Georgia
    ],
)
def test_google_regions_carry_googles_2024_figures(region: str, value: float) -> None:
    got, source, _ = used_by(f"gcp:{region}")
    assert got == value
    assert source == f"table:gcp:{region}:2024:direct"  # Google publishes operational figures


def test_namibia_is_a_zone() -> None:
    """``NA`` is Namibia's code, not a missing value: about 48 g, not the world's 480."""
    got, source, zone = used_by("NA")
    assert (got, source, zone) == (47.6, "table:country:NA:2023", "NA")
    for sub in ("NA-XX", "NAM-XX"):  # a zone within Namibia, by its alpha-2 or alpha-3 code
        found = lookup(sub)
        assert found is not None and found.source == f"table:country:NA:2023 (parent of {sub})"


def test_namibia_from_carbon_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_ZONE", "na")
    snap = Tracker(gpus="none", log_dir="off").snapshot()
    assert (snap.zone, snap.intensity_gco2eq_per_kwh) == ("NA", 47.6)
    assert snap.location == "zone NA, from CARBON_ZONE"


def test_no_cloud_region_is_sent_as_a_zone_electricity_maps_does_not_have() -> None:
    """Not a US state (``US-VA``), not Canada for Montreal, not China for Hong Kong."""
    t = _tables()
    regions = [f"{p}:{r}" for r, (p, _) in t.cloud_location.items()] + [f"gcp:{r}" for r in t.gcp]
    for region in regions:
        zone = grid_zone(region)
        assert zone is not None, region
        assert not re.fullmatch(r"US-[A-Z]{2}", zone), (region, zone)
        assert zone not in ("US", "CA", "CN"), (region, zone)
        assert lookup(zone) is not None, (region, zone)
    assert grid_zone("gcp:asia-east2") == "HK"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_country_and_its_zones_agree(family: str) -> None:
    """The country's figure lies within the range of its zones' figures, from the same
    source and year: Sweden is no longer above every Swedish bidding zone."""
    country = lookup(family)
    assert country is not None
    parts = [
        z for z in zones() if z.zone and z.zone.startswith(f"{family}-") and "electricitymaps" in z.source
    ]
    assert len(parts) >= 3
    values = [z.gco2eq_per_kwh for z in parts]
    assert min(values) <= country.gco2eq_per_kwh <= max(values)
    for z in [country, *parts]:
        _, kind, _, year = z.source.split(":")
        assert (kind, year) == ("electricitymaps", "2025"), z.source


def test_a_figure_not_on_the_life_cycle_basis_names_its_basis() -> None:
    """Life cycle is the default basis; any other is the last part of the source."""
    for z in zones():
        kind = z.source.split(":")[1]
        if kind in ("us-state", "gcp"):  # eGRID and Google publish direct (operational) figures
            assert z.source.endswith(":direct"), z.source
        else:
            assert kind in ("country", "electricitymaps") and not z.source.endswith(":direct"), z.source


def test_summary_and_run_log_say_where_the_zone_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    with Tracker(gpus="none", log_dir=str(tmp_path)) as tracker:
        pass
    said = "zone CA-QC, from the cloud region ca-central-1 in AWS_REGION; set CARBON_ZONE to change it"
    assert said in render(tracker.snapshot())
    (log,) = tmp_path.glob("*.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["type"] == "header" and records[0]["location"] == said
    final = [r for r in records if r["type"] == "final"]
    assert final and final[0]["snapshot"]["location"] == said
