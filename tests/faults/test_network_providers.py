"""Network faults for the token-less European providers (issue 22): Energy-Charts and RTE's
éCO2mix, each against a local server that misbehaves in every way the first fault suite tries
(tests/faults/test_network.py: reset, hang, slow, trickle, 4xx, 429, 5xx, non-JSON,
truncated, wrong shape, implausible values, huge bodies, refused, DNS), plus an answer for
another zone. A bare Tracker, live look-ups on: training never sees an exception, the figure
falls back (to the last good live value, else the table) with exactly one warning, and only
the refresher thread touches the network.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fake_grid_server import (
    EC_CO2EQ,
    EC_UNKNOWN_COUNTRY,
    ODRE_RECORDS,
    FakeGridServer,
    Reply,
    ec_co2eq,
    odre_records,
)
from fault_net import NetGuard
from test_network import ALL_FAULTS, GOOD, Provider, Scenario, _live_warnings, broken_from_the_start

from carbon_core import Tracker

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]


def _recent(value: Any) -> list[tuple[float, Any]]:
    """One 15-minute slot that ended a quarter of an hour ago (a service's publication lag)."""
    return [((time.time() // 900 - 2) * 900, value)]


PROVIDERS = {
    "energy-charts": Provider(
        "energy-charts", "DE", EC_CO2EQ, "CARBON_ENERGYCHARTS_URL", "/ec",
        lambda v: ec_co2eq(_recent(v)), {"unix_seconds": 5, "co2eq": {"a": 1}},
        {"zone": "DE", "live": True},
    ),
    "eco2mix": Provider(
        "eco2mix", "FR", ODRE_RECORDS, "CARBON_ECO2MIX_URL", "/odre",
        lambda v: odre_records(_recent(v)), {"results": {"taux_co2": 5}},
        {"zone": "FR", "live": True},
    ),
}  # fmt: skip
SOURCES = {"energy-charts": "energy-charts:DE", "eco2mix": "eco2mix:FR:direct"}
#: an answer for another zone, in each provider's own words
WRONG_ZONE = {
    "energy-charts": Reply(400, EC_UNKNOWN_COUNTRY, content_type="text/plain"),
    "eco2mix": Reply(200, odre_records(_recent(15), perimetre="Auvergne-Rhône-Alpes")),
}


@pytest.mark.parametrize("fault", [*ALL_FAULTS, "wrong-zone"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_fault_from_the_start_falls_back_to_the_table(
    provider: str, fault: str, server: FakeGridServer, net: NetGuard, fast_network: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    p = PROVIDERS[provider]
    scenario = Scenario(server, p, "500" if fault == "wrong-zone" else fault, net)
    if fault == "wrong-zone":
        server.route(p.route, WRONG_ZONE[provider])
    scenario.break_()
    monkeypatch.setenv(*scenario.env())
    assert p.zone in broken_from_the_start(p, net)


@pytest.mark.parametrize("fault", ["hang", "500", "non-json", "wrong-shape", "absurd", "refused"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_good_answer_then_fault_keeps_the_last_live_value(
    provider: str, fault: str, server: FakeGridServer, net: NetGuard, fast_network: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    p = PROVIDERS[provider]
    scenario = Scenario(server, p, fault, net)
    monkeypatch.setenv(*scenario.env())
    net.recording = True
    with Tracker(interval_s=0.05, log_dir="off", gpus="none", **p.options) as tracker:
        chain = tracker.intensity_source
        assert chain.wait_for_refresh(1, timeout_s=20)
        assert chain.current().source == SOURCES[provider]
        scenario.break_()
        rounds = chain.refresh_count
        assert chain.wait_for_refresh(rounds + 2, timeout_s=30)  # two failing rounds
        cur = chain.current()
    net.recording = False
    assert (cur.gco2eq_per_kwh, cur.source) == (GOOD, SOURCES[provider])
    (warning,) = _live_warnings(tracker.snapshot().warnings)
    assert "keeping the last live value" in warning
    assert net.threads() <= {"carbon-core-intensity"}, net.lookups + net.connects
    assert threading.current_thread().name not in net.threads()
