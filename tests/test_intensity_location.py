"""Location without the network, each rule in isolation; configuration errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from carbon_core.config import load
from carbon_core.faults import FaultLog
from carbon_core.intensity import location
from carbon_core.intensity.location import detect_zone
from carbon_core.intensity.resolve import resolve_source
from carbon_core.intensity.source import IntensitySource

ZONE_TAB = """# tz zone.tab (excerpt)
DK\t+5540+01235\tEurope/Copenhagen
DE\t+5230+01322\tEurope/Berlin
FR\t+4852+00220\tEurope/Paris
US\t+340308-1181434\tAmerica/Los_Angeles
GB\t+513030-0000731\tEurope/London
NA\t-2234+01706\tAfrica/Windhoek
"""
TZDATA_ZI = "# version test\nL America/Los_Angeles US/Pacific\nL Europe/London GB\n"


@pytest.fixture
def fake_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private zoneinfo dir and no /etc/localtime, /etc/timezone: nothing leaks in."""
    zi = tmp_path / "share" / "zoneinfo"
    (zi / "Europe").mkdir(parents=True)
    (zi / "zone.tab").write_text(ZONE_TAB)
    (zi / "tzdata.zi").write_text(TZDATA_ZI)
    for name in ("Copenhagen", "Berlin", "Paris"):
        (zi / "Europe" / name).write_bytes(b"TZif")
    monkeypatch.setattr(location, "ZONEINFO_DIRS", (zi,))
    monkeypatch.setattr(location, "LOCALTIME", tmp_path / "etc" / "localtime")
    monkeypatch.setattr(location, "TIMEZONE_FILE", tmp_path / "etc" / "timezone")
    (tmp_path / "etc").mkdir()
    return tmp_path


def source(env: dict[str, str], faults: FaultLog | None = None, **kwargs: Any) -> IntensitySource:
    """The source a tracker would build from these arguments and this environment."""
    return resolve_source(load(kwargs, env), FaultLog() if faults is None else faults, env)


def test_nothing_known_is_world_average(fake_system: Path) -> None:
    assert detect_zone({}) == (None, "world-average")


def test_carbon_zone(fake_system: Path) -> None:
    found = source({"CARBON_ZONE": "se-se3"})
    assert (found.zone, found.location_source) == ("SE-SE3", "env:CARBON_ZONE")


@pytest.mark.parametrize(
    ("var", "value", "zone"),
    [
        ("AWS_REGION", "eu-west-1", "IE"),
        ("AWS_DEFAULT_REGION", "us-west-2", "US-NW-BPAT"),
        ("AWS_REGION", "ca-central-1", "CA-QC"),
        ("AWS_REGION", "mx-central-1", "MX"),
        ("GOOGLE_CLOUD_REGION", "europe-west1", "europe-west1"),
        ("CLOUD_ML_REGION", "us-central1", "us-central1"),
        ("CLOUDSDK_COMPUTE_REGION", "europe-north1", "europe-north1"),
        ("CLOUDSDK_COMPUTE_ZONE", "europe-west4-b", "europe-west4"),
        ("FUNCTION_REGION", "asia-northeast1", "asia-northeast1"),
        ("REGION_NAME", "West Europe", "NL"),
        ("REGION_NAME", "swedencentral", "SE-SE3"),
        ("AZURE_REGION", "uksouth", "GB"),
        ("AZURE_LOCATION", "norwayeast", "NO-NO1"),
    ],
)
def test_cloud_region_env(fake_system: Path, var: str, value: str, zone: str) -> None:
    assert detect_zone({var: value}) == (zone, f"env:{var}={value}")


def test_unknown_cloud_region_is_skipped(fake_system: Path) -> None:
    env = {"AWS_REGION": "mars-north-1", "GOOGLE_CLOUD_REGION": "europe-west9"}
    assert detect_zone(env) == ("europe-west9", "env:GOOGLE_CLOUD_REGION=europe-west9")


def test_order_carbon_zone_then_cloud_then_tz(fake_system: Path) -> None:
    env = {"CARBON_ZONE": "DE", "AWS_REGION": "eu-west-3", "TZ": "Europe/Copenhagen"}
    assert source(env).zone == "DE"
    assert source(env, zone="SE-SE3").zone == "SE-SE3"  # the argument before the variable
    del env["CARBON_ZONE"]
    assert source(env).zone == "FR"
    assert detect_zone(env)[0] == "FR"
    del env["AWS_REGION"]
    assert detect_zone(env) == ("DK", "timezone:Europe/Copenhagen->DK")


@pytest.mark.parametrize(
    ("tz", "zone"),
    [
        ("Europe/Copenhagen", "DK"),
        (":Europe/Berlin", "DE"),
        ("/usr/share/zoneinfo/Europe/Paris", "FR"),
        ("US/Pacific", "US"),  # a link, followed through tzdata.zi
        ("Africa/Windhoek", "NA"),  # Namibia: "NA" is a country code, not a missing value
    ],
)
def test_tz_env(fake_system: Path, tz: str, zone: str) -> None:
    got, how = detect_zone({"TZ": tz})
    assert got == zone
    assert how.startswith("timezone:") and how.endswith(f"->{zone}")


@pytest.mark.parametrize("tz", ["UTC", "Etc/UTC", "Nowhere/Atlantis", ""])
def test_tz_without_country(fake_system: Path, tz: str) -> None:
    assert detect_zone({"TZ": tz}) == (None, "world-average")


def test_tz_env_wins_over_localtime(fake_system: Path) -> None:
    (fake_system / "etc" / "localtime").symlink_to(fake_system / "share" / "zoneinfo" / "Europe" / "Berlin")
    assert detect_zone({"TZ": "Etc/UTC"}) == (None, "world-average")
    assert detect_zone({})[0] == "DE"


def test_localtime_symlink(fake_system: Path) -> None:
    (fake_system / "etc" / "localtime").symlink_to(fake_system / "share" / "zoneinfo" / "Europe" / "Paris")
    assert detect_zone({}) == ("FR", "timezone:Europe/Paris->FR")


def test_etc_timezone(fake_system: Path) -> None:
    (fake_system / "etc" / "timezone").write_text("Europe/Copenhagen\n")
    assert detect_zone({}) == ("DK", "timezone:Europe/Copenhagen->DK")


def test_no_zone_tab(fake_system: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(location, "ZONEINFO_DIRS", (fake_system / "missing",))
    assert detect_zone({"TZ": "Europe/Copenhagen"}) == (None, "world-average")


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/zone.tab").exists(), reason="no system tz database")
def test_system_tz_database() -> None:
    assert detect_zone({"TZ": "Europe/Copenhagen"})[0] == "DK"
    assert detect_zone({"TZ": "America/Los_Angeles"})[0] == "US"


# -- resolve_source: location and configuration ------------------------------------------


def test_world_average_warning_says_how_to_set_zone(
    fake_system: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faults = FaultLog()
    with caplog.at_level(logging.WARNING, logger="carbon_core"):
        chain = source({}, faults)
    assert chain.zone is None and chain.location_source == "world-average"
    cur = chain.current()
    assert (cur.gco2eq_per_kwh, cur.source) == (480.0, "world-average")
    assert len(faults) == 1
    msg = faults.messages[0]
    assert "CARBON_ZONE" in msg and "zone=" in msg and "480" in msg
    assert [r.getMessage() for r in caplog.records] == [msg]


def test_tz_located_chain(fake_system: Path) -> None:
    faults = FaultLog()
    chain = source({"TZ": "Europe/Copenhagen"}, faults)
    assert chain.location_source == "timezone:Europe/Copenhagen->DK"
    assert chain.current().source == "table:electricitymaps:DK:2025"
    assert len(faults) == 0


def test_cloud_located_chain(fake_system: Path) -> None:
    chain = source({"AWS_REGION": "us-west-1"})
    assert (chain.zone, chain.location_source) == ("US-CAL-CISO", "env:AWS_REGION=us-west-1")
    assert chain.current().source == "table:electricitymaps:US-CAL-CISO:2025"


@pytest.mark.parametrize(
    ("env", "kwargs", "said"),
    [
        (
            {"TZ": "Europe/Copenhagen"},
            {},
            "zone DK, from the time zone Europe/Copenhagen; set CARBON_ZONE to change it",
        ),
        (
            {"AWS_REGION": "us-east-1"},
            {},
            "zone US-MIDA-PJM, from the cloud region us-east-1 in AWS_REGION; set CARBON_ZONE to change it",
        ),
        ({"CARBON_ZONE": "na"}, {}, "zone NA, from CARBON_ZONE"),
        ({}, {"zone": "aws:ca-central-1"}, "zone aws:ca-central-1 (grid zone CA-QC), from the zone argument"),
        ({}, {"zone": "DE"}, "zone DE, from the zone argument"),
    ],
)
def test_the_source_says_where_the_zone_came_from(
    fake_system: Path, env: dict[str, str], kwargs: dict[str, Any], said: str
) -> None:
    assert source(env, **kwargs).location == said


def test_an_unknown_place_says_how_to_set_it(fake_system: Path) -> None:
    said = source({}).location
    assert said.startswith("zone unknown") and "world average" in said and "CARBON_ZONE" in said


def test_fixed_intensity(fake_system: Path) -> None:
    faults = FaultLog()
    chain = source({}, faults, intensity=123.0)
    assert chain.current().gco2eq_per_kwh == 123.0
    assert chain.current().source == "fixed"
    assert len(faults) == 0  # a fixed figure needs no location
    chain = source({"CARBON_INTENSITY": "55.5", "CARBON_ZONE": "DE"})
    assert (chain.current().gco2eq_per_kwh, chain.current().zone) == (55.5, "DE")


@pytest.mark.parametrize(
    ("kwargs", "env", "words"),
    [
        ({"zone": "XX"}, {}, ["zone", "'XX'"]),
        ({"zone": ""}, {}, ["zone"]),
        ({}, {"CARBON_ZONE": "Atlantis"}, ["CARBON_ZONE", "'Atlantis'"]),
        ({"intensity": -1.0}, {}, ["intensity", "-1.0"]),
        ({"intensity": 5000.0}, {}, ["intensity", "5000"]),
        ({"intensity": float("nan")}, {}, ["intensity", "nan"]),
        ({}, {"CARBON_INTENSITY": "lots"}, ["CARBON_INTENSITY", "'lots'"]),
        ({}, {"CARBON_LIVE": "maybe"}, ["CARBON_LIVE", "'maybe'"]),
        ({"refresh_s": 0.0}, {}, ["refresh_s", "0.0"]),
        ({"timeout_s": -3.0}, {}, ["timeout_s", "-3.0"]),
        ({"zone": "GB", "live": True}, {"CARBON_UK_URL": "ftp://x"}, ["CARBON_UK_URL"]),
    ],
)
def test_bad_configuration_names_parameter(
    fake_system: Path,
    kwargs: dict[str, Any],
    env: dict[str, str],
    words: list[str],
) -> None:
    with pytest.raises(ValueError) as info:
        source(env, **kwargs)
    for w in words:
        assert w in str(info.value)


def test_live_without_a_zone_warns_once_and_uses_the_world_average(fake_system: Path) -> None:
    faults = FaultLog()
    chain = source({}, faults, live=True)
    assert chain.provider is None and chain.current().source == "world-average"
    assert [m for m in faults.messages if "live intensity needs a zone" in m]
