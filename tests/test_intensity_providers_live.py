"""The token-less providers added for Europe, live, against a local server speaking their
real formats (127.0.0.1 only): Energy-Charts (Fraunhofer ISE) for the European countries it
publishes, RTE's éCO2mix (through ODRÉ) for France.

As for the first providers: opt-in (``live=True``), looked up off the training thread, the
figure named with its basis (Energy-Charts life cycle, éCO2mix direct), and every fault (slow,
error status, malformed body, an answer for another zone, a stale figure) costs one warning
and falls back to the last good value, then the table.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
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

from carbon_core.config import load
from carbon_core.faults import FaultLog
from carbon_core.intensity.providers import http as provider_http
from carbon_core.intensity.resolve import resolve_source
from carbon_core.intensity.source import IntensitySource

_real_getaddrinfo = socket.getaddrinfo
QUARTER = 900.0


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "localhost", b"127.0.0.1"):
            return _real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test: no resolving {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.02, 0.05))


@pytest.fixture
def server() -> Iterator[FakeGridServer]:
    with FakeGridServer() as s:
        yield s


def chain(server: FakeGridServer, zone: str, **kwargs: Any) -> IntensitySource:
    env = server.env()
    options = {"zone": zone, "live": True, "timeout_s": 0.3, "refresh_s": 60.0, **kwargs}
    return resolve_source(load(options, env), FaultLog(), env)


def one_round(c: IntensitySource, rounds: int = 1) -> None:
    c.start()
    try:
        assert c.wait_for_refresh(rounds, timeout_s=20)
    finally:
        c.stop()


def quarters(values: list[float | None], end: float | None = None) -> list[tuple[float, float | None]]:
    """Rows of 15-minute slots, the last one starting a quarter before ``end`` (default: the
    quarter before the clock's now, as a service publishing with some lag)."""
    last = (end if end is not None else time.time()) // QUARTER * QUARTER - QUARTER
    return [(last - (len(values) - 1 - i) * QUARTER, v) for i, v in enumerate(values)]


# -- Energy-Charts -----------------------------------------------------------------------


@pytest.mark.parametrize(("zone", "country"), [("DE", "de"), ("PL", "pl"), ("europe-west3", "de")])
def test_energycharts_newest_measured_value_is_live(server: FakeGridServer, zone: str, country: str) -> None:
    measured = quarters([420.5, 401.0, 388.2])
    ahead = [(measured[-1][0] + QUARTER * (i + 1), 300.0 + i) for i in range(8)]
    server.route(EC_CO2EQ, Reply(body=ec_co2eq(measured, ahead)))
    c = chain(server, zone)
    table = c.current()
    assert table.source.startswith("table:")
    one_round(c)
    cur = c.current()
    key = "DE" if zone == "europe-west3" else zone
    # the newest measured figure, not a forecast; life cycle: no suffix
    assert (cur.gco2eq_per_kwh, cur.source, cur.zone) == (388.2, f"energy-charts:{key}", key)
    (req,) = server.requests
    assert req.path == EC_CO2EQ and req.query == {"country": [country]}
    assert len(c.faults) == 0


EC_FAULTS: list[tuple[str, Reply, str]] = [
    ("slow", Reply(body=ec_co2eq(quarters([300.0])), delay_s=2.0), "within"),
    ("server-error", Reply(503, "<html>down</html>", content_type="text/html"), "HTTP 503"),
    ("wrong-zone", Reply(400, EC_UNKNOWN_COUNTRY, content_type="text/plain"), "no data for country DE"),
    ("not-json", Reply(200, "<html>hello</html>", content_type="text/html"), "not JSON"),
    (
        "lengths-differ",
        Reply(200, {"unix_seconds": [1, 2], "co2eq": [1.0], "co2eq_forecast": [None]}),
        "length",
    ),
    ("no-arrays", Reply(200, {"unix_seconds": 5, "co2eq": None}), "not lists"),
    ("absurd", Reply(200, ec_co2eq(quarters([25000.0]))), "not plausible"),
    ("stale", Reply(200, ec_co2eq(quarters([300.0], end=time.time() - 86400))), "h old"),
    ("only-forecast", Reply(200, ec_co2eq([], quarters([300.0]))), "no measured value"),
]


@pytest.mark.parametrize(("name", "reply", "says"), EC_FAULTS, ids=[f[0] for f in EC_FAULTS])
def test_energycharts_fault_falls_back_with_one_warning(
    server: FakeGridServer, name: str, reply: Reply, says: str
) -> None:
    server.route(EC_CO2EQ, reply)
    c = chain(server, "DE")
    one_round(c)
    assert c.current().source == "table:country:DE:2024"
    (msg,) = c.faults.messages
    assert says in msg and "using table:country:DE:2024" in msg, msg


def test_energycharts_keeps_last_good_value_then_recovers(server: FakeGridServer) -> None:
    failing = [Reply(500, "boom", content_type="text/plain")] * (provider_http.RETRIES + 1)
    server.route(
        EC_CO2EQ, [Reply(body=ec_co2eq(quarters([350.0]))), *failing, Reply(body=ec_co2eq(quarters([200.0])))]
    )
    c = chain(server, "DE", refresh_s=0.05)
    one_round(c, rounds=3)
    (msg,) = c.faults.messages  # the failed round kept the good value, and said so once
    assert "keeping the last live value (350 gCO2eq/kWh, energy-charts:DE)" in msg, msg
    assert (c.current().gco2eq_per_kwh, c.current().source) == (200.0, "energy-charts:DE")


def test_energycharts_serves_countries_not_bidding_zones() -> None:
    def provider(zone: str) -> str | None:
        c = resolve_source(load({"zone": zone, "live": True}, {}), FaultLog(), {})
        return c.provider.name if c.provider else None

    # Denmark the country from Energy-Charts; its bidding zones stay with Energinet's figures
    assert [provider(z) for z in ("DK", "DK-DK1", "SE-SE3", "GB")] == [
        "energy-charts", "energidataservice", None, "uk-carbon-intensity"]  # fmt: skip


# -- RTE éCO2mix (ODRÉ) ---------------------------------------------------------------------


@pytest.mark.parametrize("as_text", [False, True], ids=["number", "numeric-string"])
def test_eco2mix_newest_row_is_live_and_direct(server: FakeGridServer, as_text: bool) -> None:
    server.route(ODRE_RECORDS, Reply(body=odre_records(quarters([15]), as_text=as_text)))
    c = chain(server, "FR")
    assert c.current().source == "table:country:FR:2024"
    one_round(c)
    cur = c.current()
    assert (cur.gco2eq_per_kwh, cur.source, cur.zone) == (15.0, "eco2mix:FR:direct", "FR")
    (req,) = server.requests
    assert req.path == ODRE_RECORDS
    # the newest row that has a figure: the dataset holds future rows filled with null
    assert req.query["where"] == ["taux_co2 is not null"]
    assert req.query["order_by"] == ["date_heure desc"] and req.query["limit"] == ["1"]
    assert len(c.faults) == 0


ODRE_FAULTS: list[tuple[str, Reply, str]] = [
    ("slow", Reply(body=odre_records(quarters([15])), delay_s=2.0), "within"),
    ("server-error", Reply(500, {"error_code": "InternalError", "message": "oops"}), "HTTP 500"),
    ("rate-limited", Reply(429, {"error_code": "TooManyRequests"}, headers={"Retry-After": "7200"}), "429"),
    ("wrong-zone", Reply(200, odre_records(quarters([15]), perimetre="Bretagne")), "Bretagne"),
    ("no-rows", Reply(200, {"total_count": 0, "results": []}), "no row"),
    ("not-a-number", Reply(200, odre_records(quarters(["ND"]))), "not a number"),  # type: ignore[list-item]
    (
        "no-offset",
        Reply(
            200, {"results": [{"perimetre": "France", "date_heure": "2026-06-14T19:00:00", "taux_co2": 15}]}
        ),
        "offset",
    ),
    ("truncated", Reply(200, '{"total_count": 1, "results": [{"taux_co2": 1'), "not JSON"),
    ("stale", Reply(200, odre_records(quarters([15], end=time.time() - 10 * 86400))), "h old"),
]


@pytest.mark.parametrize(("name", "reply", "says"), ODRE_FAULTS, ids=[f[0] for f in ODRE_FAULTS])
def test_eco2mix_fault_falls_back_with_one_warning(
    server: FakeGridServer, name: str, reply: Reply, says: str
) -> None:
    server.route(ODRE_RECORDS, reply)
    c = chain(server, "FR")
    one_round(c)
    assert c.current().source == "table:country:FR:2024"
    (msg,) = c.faults.messages
    assert says in msg and "using table:country:FR:2024" in msg, msg


def test_base_url_overrides_are_options() -> None:
    with pytest.raises(ValueError, match="CARBON_ENERGYCHARTS_URL"):
        load({}, {"CARBON_ENERGYCHARTS_URL": "ftp://x"})
    with pytest.raises(ValueError, match="CARBON_ECO2MIX_URL"):
        load({}, {"CARBON_ECO2MIX_URL": "http://127.0.0.1:99999/x"})
    cfg = load({}, {"CARBON_ENERGYCHARTS_URL": "http://127.0.0.1:1/ec/", "CARBON_ECO2MIX_URL": "http://h/o"})
    assert (cfg.energycharts_url, cfg.eco2mix_url) == ("http://127.0.0.1:1/ec", "http://h/o")
