"""Bundled tables, parent fallback, zones() and what_if()."""

from __future__ import annotations

import subprocess
import sys

import pytest

import carbon_core.intensity
from carbon_core.config import load
from carbon_core.faults import FaultLog
from carbon_core.intensity import Intensity, lookup, what_if, zones
from carbon_core.intensity.resolve import resolve_source
from carbon_core.intensity.values import WORLD_AVERAGE_GCO2_PER_KWH


@pytest.mark.parametrize(
    ("zone", "value", "source", "resolved"),
    [
        ("DE", 344.1, "table:country:DE:2024", "DE"),
        ("de", 344.1, "table:country:DE:2024", "DE"),
        ("US-CA", 179.1, "table:us-state:US-CA:2023:direct", "US-CA"),  # eGRID: direct
        ("SE-SE3", 20.0, "table:electricitymaps:SE-SE3:2025", "SE-SE3"),
        ("NO-NO4", 49.0, "table:electricitymaps:NO-NO4:2025", "NO-NO4"),
        ("US-MIDA-PJM", 418.0, "table:electricitymaps:US-MIDA-PJM:2025", "US-MIDA-PJM"),
        ("CA-AB", 385.0, "table:electricitymaps:CA-AB:2025", "CA-AB"),
        ("europe-west1", 103.37, "table:gcp:europe-west1:2024:direct", "europe-west1"),
        ("gcp:us-west1", 79.23, "table:gcp:us-west1:2024:direct", "us-west1"),
        ("eu-west-1", 279.7, "table:country:IE:2024 (aws:eu-west-1)", "IE"),
        ("aws:us-west-1", 208.0, "table:electricitymaps:US-CAL-CISO:2025 (aws:us-west-1)", "US-CAL-CISO"),
        ("westeurope", 253.3, "table:country:NL:2024 (azure:westeurope)", "NL"),
        ("eu-north-1", 20.0, "table:electricitymaps:SE-SE3:2025 (aws:eu-north-1)", "SE-SE3"),
        ("UK", 210.9, "table:country:GB:2024", "GB"),
    ],
)
def test_lookup_tables(zone: str, value: float, source: str, resolved: str) -> None:
    assert lookup(zone) == Intensity(value, source, resolved)


@pytest.mark.parametrize(
    ("zone", "parent_source"),
    [
        ("JP-TK", "table:country:JP:2024 (parent of JP-TK)"),
        ("US-CAL-XYZ", "table:electricitymaps:US:2025 (parent of US-CAL-XYZ)"),
        ("GB-13", "table:country:GB:2024 (parent of GB-13)"),
        ("AUS-NSW", "table:country:AU:2024 (parent of AUS-NSW)"),
    ],
)
def test_lookup_parent_fallback_says_so(zone: str, parent_source: str) -> None:
    got = lookup(zone)
    assert got is not None
    assert got.source == parent_source
    assert got.zone == zone
    parent = lookup(parent_source.split(":")[2])
    assert parent is not None and got.gco2eq_per_kwh == parent.gco2eq_per_kwh


@pytest.mark.parametrize("zone", ["", "  ", "XX", "QQ-ZZ", "aws:europe-west1", "nowhere-9"])
def test_lookup_unknown_is_none(zone: str) -> None:
    assert lookup(zone) is None


def test_zones_lists_everything_and_filters() -> None:
    allz = zones()
    keys = {z.zone for z in allz}
    assert {"DE", "US-CA", "SE-SE3", "NO-NO1", "europe-west1", "NA", "CA-QC", "US-MIDA-PJM"} <= keys
    assert len(allz) > 250
    assert all(0 <= z.gco2eq_per_kwh <= 2000 for z in allz)
    sweden = {z.zone for z in zones("sweden")}
    assert sweden == {"SE", "SE-SE1", "SE-SE2", "SE-SE3", "SE-SE4"}
    assert {z.zone for z in zones("Frankfurt")} == {"europe-west3"}


def test_what_if_same_energy_elsewhere() -> None:
    rows = what_if(10.0, ["DE", "FR", "GB-13", "europe-west1"], pue=1.2)
    assert [r[0] for r in rows] == ["DE", "FR", "GB-13", "europe-west1"]
    assert rows[0][1] == pytest.approx(10.0 * 1.2 * 344.1 / 1000)
    assert rows[1][1] == pytest.approx(10.0 * 1.2 * 44.2 / 1000)
    assert rows[2][2].source.endswith("(parent of GB-13)")
    assert rows[3][1] == pytest.approx(10.0 * 1.2 * 103.37 / 1000)


@pytest.mark.parametrize(
    ("args", "word"),
    [
        ((-1.0, ["DE"]), "energy_kwh"),
        ((1.0, ["DE"], 0.5), "pue"),
        ((1.0, ["XX"]), "XX"),
    ],
)
def test_what_if_rejects_bad_input(args: tuple, word: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=word):
        what_if(*args)


def test_offline_de_gives_the_table_figure() -> None:
    faults = FaultLog()
    chain = resolve_source(load({"zone": "DE"}, {}), faults, {})
    chain.start()  # no provider: no thread
    assert chain.current() == Intensity(344.1, "table:country:DE:2024", "DE")
    assert chain.location_source == "argument"
    assert chain.provider is None
    chain.stop()
    chain.stop()
    assert len(faults) == 0


def test_world_average_constant() -> None:
    assert WORLD_AVERAGE_GCO2_PER_KWH == 480.0


def test_package_exports_only_the_user_surface() -> None:
    assert sorted(carbon_core.intensity.__all__) == [
        "Intensity", "best_start", "forecast", "history", "lookup", "what_if", "zones",
    ]  # fmt: skip


def test_import_and_offline_chain_do_not_import_requests() -> None:
    code = (
        "import sys\n"
        "import carbon_core.intensity\n"
        "from carbon_core.config import load\n"
        "from carbon_core.faults import FaultLog\n"
        "from carbon_core.intensity.resolve import resolve_source\n"
        "assert 'requests' not in sys.modules, 'import'\n"
        "c = resolve_source(load({'zone': 'DE'}, {}), FaultLog(), {})\n"
        "c.start(); c.current(); c.stop()\n"
        "assert 'requests' not in sys.modules, 'offline chain'\n"
        "c = resolve_source(load({'zone': 'GB', 'live': True}, {}), FaultLog(), {})\n"
        "assert 'requests' not in sys.modules, 'live chain before start'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
