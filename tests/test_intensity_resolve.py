"""resolve_source: from a checked configuration to an intensity source. Pure: no network, no
thread (nothing is started), no detection (every case gives a zone or a fixed figure)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from carbon_core.config import load
from carbon_core.faults import FaultLog
from carbon_core.intensity.providers.electricitymaps import DEFAULT_URL as EM_URL
from carbon_core.intensity.resolve import resolve_source
from carbon_core.intensity.source import IntensitySource

#: detection would read this (and the host's time zone): no case here gets that far
NO_ENV: dict[str, str] = {}


def source(
    env: dict[str, str] | None = None, faults: FaultLog | None = None, **kwargs: Any
) -> IntensitySource:
    env = NO_ENV if env is None else env
    return resolve_source(load(kwargs, env), FaultLog() if faults is None else faults, env)


@pytest.mark.parametrize(
    ("zone", "token", "provider", "asked"),
    [
        ("GB", None, "uk-carbon-intensity", "GB"),
        ("GB-13", None, "uk-carbon-intensity", "GB-13"),
        ("gb-sct", "tok", "uk-carbon-intensity", "GB-SCT"),  # regional: only the UK API has it
        ("GB", "tok", "electricitymaps", "GB"),
        ("DK-DK1", None, "energidataservice", "DK-DK1"),
        ("dk-dk2", None, "energidataservice", "DK-DK2"),
        ("DK-DK2", "tok", "electricitymaps", "DK-DK2"),
        ("DE", "tok", "electricitymaps", "DE"),
        ("europe-west1", "tok", "electricitymaps", "BE"),  # a cloud region: its grid zone
        ("eu-west-1", "tok", "electricitymaps", "IE"),
        # Electricity Maps zone ids, never a US state, Canada for Quebec or China for Hong Kong
        ("aws:us-east-1", "tok", "electricitymaps", "US-MIDA-PJM"),
        ("azure:eastus", "tok", "electricitymaps", "US-MIDA-PJM"),
        ("us-west-2", "tok", "electricitymaps", "US-NW-BPAT"),
        ("azure:westus2", "tok", "electricitymaps", "US-NW-GCPD"),
        ("ca-central-1", "tok", "electricitymaps", "CA-QC"),
        ("northamerica-northeast1", "tok", "electricitymaps", "CA-QC"),
        ("asia-east2", "tok", "electricitymaps", "HK"),
        ("us-east4", "tok", "electricitymaps", "US-MIDA-PJM"),
        ("azure:denmarkeast", None, "energidataservice", "DK-DK2"),
        ("europe-west2", None, "uk-carbon-intensity", "GB"),  # a GCP region in GB
        ("DE", None, "energy-charts", "DE"),
        ("europe-west3", None, "energy-charts", "DE"),  # Frankfurt
        ("FR", None, "eco2mix", "FR"),
        ("FR", "tok", "electricitymaps", "FR"),
    ],
)
def test_provider_choice(zone: str, token: str | None, provider: str, asked: str) -> None:
    chain = source(zone=zone, live=True, electricitymaps_token=token)
    assert chain.provider is not None and chain.provider.name == provider
    assert chain.provider_zone == asked


def test_live_from_env_and_token_implies_live() -> None:
    assert source({"CARBON_LIVE": "1"}, zone="GB").provider is not None
    assert source({"CARBON_LIVE": "1"}, zone="GB", live=False).provider is None
    assert source({"CARBON_LIVE": "none"}, zone="GB").provider is None  # "none" is off
    assert source(zone="GB").provider is None  # offline by default
    chain = source({"CARBON_ELECTRICITYMAPS_TOKEN": "tok"}, zone="DE")
    assert chain.provider is not None and chain.provider.name == "electricitymaps"


def test_live_without_covering_provider_warns_once_and_uses_table() -> None:
    faults = FaultLog()
    chain = source(faults=faults, zone="JP", live=True)
    assert chain.provider is None
    assert chain.current().source == "table:country:JP:2024"
    assert len(faults) == 1
    assert "CARBON_ELECTRICITYMAPS_TOKEN" in faults.messages[0]


def test_fixed_intensity_wins_over_live_and_token(caplog: pytest.LogCaptureFixture) -> None:
    faults = FaultLog()
    with caplog.at_level(logging.INFO, logger="carbon_core"):
        chain = source(faults=faults, zone="DE", intensity=42.0, live=True, electricitymaps_token="tok")
    assert chain.provider is None and chain.fixed is not None
    assert (chain.current().gco2eq_per_kwh, chain.current().source, chain.zone) == (42.0, "fixed", "DE")
    assert chain.table.source == "table:country:DE:2024"  # still known, never used
    assert len(faults) == 0
    assert any("fixed intensity is set" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "env", "named"),
    [
        ({"zone": "XX"}, {}, "zone='XX'"),
        ({"zone": " xx-nowhere "}, {}, "zone='xx-nowhere'"),
        ({}, {"CARBON_ZONE": "Atlantis"}, "CARBON_ZONE='Atlantis'"),
        ({"live": True}, {"CARBON_ZONE": "Atlantis"}, "CARBON_ZONE='Atlantis'"),
    ],
)
def test_unknown_zone_is_an_error_naming_where_it_came_from(
    kwargs: dict[str, Any], env: dict[str, str], named: str
) -> None:
    with pytest.raises(ValueError, match="is not a zone") as info:
        source(env, **kwargs)
    assert str(info.value).startswith(named)


def test_unknown_zone_allowed_with_token() -> None:
    faults = FaultLog()
    chain = source(faults=faults, zone="XX-NOWHERE", electricitymaps_token="tok")
    assert chain.provider is not None and chain.zone == "XX-NOWHERE"
    assert chain.provider_zone == "XX-NOWHERE"
    assert chain.current().source == "world-average"
    assert len(faults) == 1 and "XX-NOWHERE" in faults.messages[0]


def test_unknown_zone_allowed_with_fixed_intensity() -> None:
    faults = FaultLog()
    chain = source(faults=faults, zone="XX", intensity=10.0)
    assert chain.current().source == "fixed" and chain.zone == "XX"
    assert len(faults) == 0  # the zone is only a label


@pytest.mark.parametrize(
    ("env", "how"),
    [({}, "argument"), ({"CARBON_ZONE": "FR"}, "argument")],  # the argument wins
)
def test_location_source_of_a_given_zone(env: dict[str, str], how: str) -> None:
    chain = source(env, zone="de")
    assert (chain.zone, chain.location_source) == ("DE", how)
    chain = source({"CARBON_ZONE": "de"})
    assert (chain.zone, chain.location_source) == ("DE", "env:CARBON_ZONE")


def test_base_urls_and_timing_come_from_the_config() -> None:
    env = {
        "CARBON_UK_URL": "http://127.0.0.1:9/uk/",
        "CARBON_REFRESH_S": "60",
        "CARBON_TIMEOUT_S": "0.5",
    }
    chain = source(env, zone="GB", live=True)
    assert repr(chain.provider) == "UkCarbonIntensity(base_url='http://127.0.0.1:9/uk')"
    assert chain.refresh_s == 60.0 and chain.max_age_s == 3600.0
    chain = source(zone="DE", electricitymaps_token="tok", refresh_s=1800)
    assert repr(chain.provider) == f"ElectricityMaps(base_url={EM_URL!r}, token=***)"
    assert chain.refresh_s == 1800.0 and chain.max_age_s == 7200.0
    assert source(zone="DE").refresh_s == 900.0  # the default


def test_nothing_starts_until_asked() -> None:
    chain = source(zone="GB", live=True)
    assert chain.refresh_count == 0
    assert chain.current().source == "table:country:GB:2024"
