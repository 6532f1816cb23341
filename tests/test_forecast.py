"""Forecasts, the best start and hindsight, against a local server speaking each provider's
real format (127.0.0.1 only), with faults. Every forecast is built around a fixed ``NOW``:
no test reads or waits on the wall clock.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fake_grid_server import (
    EC_CO2EQ,
    EC_UNKNOWN_COUNTRY,
    EDS_CO2EMIS,
    EDS_PROG,
    EM_FORECAST,
    EM_HISTORY,
    ODRE_RECORDS,
    UK_REGIONAL_WINDOW,
    UK_WINDOW,
    FakeGridServer,
    Reply,
    ec_co2eq,
    eds_rows,
    em_series,
    odre_records,
    uk_error,
    uk_regional_window,
    uk_window,
)

from carbon_core.config import load
from carbon_core.intensity import best_start, forecast, forecasts, history
from carbon_core.intensity.providers import ProviderError
from carbon_core.intensity.providers import http as provider_http
from carbon_core.intensity.providers._series import Slot
from carbon_core.intensity.timing import PlanError, Series, hindsight, iso, plan_start

_real_getaddrinfo = socket.getaddrinfo
#: 2026-09-21T12:10:00Z: ten minutes into a half hour
NOW = 1789992600.0
HALF = 1800.0
HOUR = 3600.0
TOKEN = "em-forecast-t0ken-77"


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "localhost", b"127.0.0.1"):
            return _real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test: no resolving {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.02, 0.05))
    forecasts.clear_cache()
    yield
    forecasts.clear_cache()


@pytest.fixture
def server() -> Iterator[FakeGridServer]:
    with FakeGridServer() as s:
        yield s


def cfg(server: FakeGridServer, **kwargs: Any) -> Any:
    return load({"timeout_s": 0.3, **kwargs}, server.env())


def steps(start: float, step: float, n: int, value: Any) -> list[tuple[float, Any]]:
    """``n`` rows of ``step`` seconds from ``start``; ``value(i)`` or a constant."""
    return [(start + i * step, value(i) if callable(value) else value) for i in range(n)]


def dip(
    first: float, step: float, n: int, low_from: float, low_to: float, low: float, high: float
) -> list[tuple[float, float]]:
    return steps(first, step, n, lambda i: low if low_from <= first + i * step < low_to else high)


HALF_HOUR_NOW = NOW // HALF * HALF  # 12:00Z


# -- each forecast source, its real format, a known best window ------------------------------


def test_uk_national_forecast_best_window(server: FakeGridServer) -> None:
    # 48 h of half hours from the current one: 200 g, except 50 g from +10 h to +16 h
    rows = dip(HALF_HOUR_NOW, HALF, 96, NOW + 9 * HOUR + 50 * 60, NOW + 15 * HOUR + 50 * 60, 50.0, 200.0)
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(rows)))
    series = forecast("GB", now=NOW, config=cfg(server))
    (req,) = server.requests
    assert req.path == "/uk/intensity/2026-09-21T12:11Z/fw48h"  # the current half hour's
    assert series.source == "uk-carbon-intensity:GB:direct" and series.kind == "forecast"
    plan = best_start(series, "6h", "24h", now=NOW)
    assert iso(plan.start) == "2026-09-21T22:00:00+00:00"
    assert (plan.mean_then, plan.mean_now) == (50.0, 200.0)
    assert plan.saving_percent == 75.0
    assert plan.to_dict()["start"] == "2026-09-21T22:00:00+00:00"


@pytest.mark.parametrize("as_list", [False, True], ids=["object", "one-item-list"])
def test_uk_regional_forecast(server: FakeGridServer, as_list: bool) -> None:
    rows = dip(HALF_HOUR_NOW, HALF, 96, HALF_HOUR_NOW + 4 * HOUR, HALF_HOUR_NOW + 6 * HOUR, 20.0, 180.0)
    server.route_prefix(UK_REGIONAL_WINDOW, Reply(body=uk_regional_window(rows, 13, as_list=as_list)))
    plan = best_start(forecast("GB-13", now=NOW, config=cfg(server)), "2h", now=NOW)
    assert server.requests[0].path == "/uk/regional/intensity/2026-09-21T12:11Z/fw48h/regionid/13"
    assert (iso(plan.start), plan.mean_then, plan.source) == (
        "2026-09-21T16:00:00+00:00",
        20.0,
        "uk-carbon-intensity:GB-13:direct",
    )


def test_energidataservice_prognosis(server: FakeGridServer) -> None:
    # 5-minute rows from two hours ago to ten hours ahead; the cleanest hour from +5 h
    first = NOW - 2 * HOUR
    rows = dip(first, 300, 144, NOW + 5 * HOUR, NOW + 6 * HOUR, 40.0, 160.0)
    server.route(EDS_PROG, Reply(body=eds_rows(rows, "DK1")))
    plan = best_start(forecast("DK-DK1", now=NOW, config=cfg(server)), "1h", "9h", now=NOW)
    (req,) = server.requests
    assert req.query["filter"] == ['{"PriceArea":["DK1"]}'] and req.query["sort"] == ["Minutes5UTC DESC"]
    assert (plan.start, plan.mean_then, plan.source) == (
        NOW + 5 * HOUR,
        40.0,
        "energidataservice:DK-DK1:direct",
    )


def test_electricitymaps_forecast_with_token(server: FakeGridServer) -> None:
    hour = NOW // HOUR * HOUR
    rows = dip(hour, HOUR, 25, hour + 20 * HOUR, hour + 23 * HOUR, 90.0, 300.0)
    server.route(EM_FORECAST, Reply(body=em_series("DE", rows)))
    plan = best_start(forecast("DE", now=NOW, config=cfg(server, electricitymaps_token=TOKEN)), "3h", now=NOW)
    (req,) = server.requests
    assert req.headers["auth-token"] == TOKEN and req.query["zone"] == ["DE"]
    assert req.query["horizonHours"] == ["48"]  # enough for the default 48 h
    assert (plan.start, plan.mean_then, plan.source) == (hour + 20 * HOUR, 90.0, "electricitymaps:DE")


def test_energycharts_forecast_follows_the_measured_slots(server: FakeGridServer) -> None:
    q = 900.0
    first = NOW // q * q - 8 * q
    measured = steps(first, q, 6, 400.0)  # to half an hour before now: the publication lag
    ahead = dip(first + 6 * q, q, 40, NOW + 2 * HOUR, NOW + 3 * HOUR, 100.0, 350.0)
    server.route(EC_CO2EQ, Reply(body=ec_co2eq(measured, ahead)))
    plan = best_start(forecast("DE", now=NOW, config=cfg(server)), "1h", "6h", now=NOW)
    assert server.requests[0].query == {"country": ["de"]}
    assert (plan.mean_then, plan.point_now, plan.source) == (100.0, 350.0, "energy-charts:DE")


def test_the_job_span_is_integrated_not_the_point_value() -> None:
    """One very clean half hour at +2 h (10 g) against six moderate hours from +12 h (100 g):
    a six-hour job is best at +12 h, though the lowest point is at +2 h."""
    rows = [
        (HALF_HOUR_NOW + i * HALF, 10.0 if i == 4 else 100.0 if 24 <= i < 36 else 300.0) for i in range(96)
    ]
    s = Series("GB", "x", "forecast", tuple(Slot(t, t + HALF, v) for t, v in rows), NOW)
    plan = plan_start(s, 6 * HOUR, now=NOW, window_end=NOW + 24 * HOUR)
    assert plan.start == HALF_HOUR_NOW + 12 * HOUR
    assert plan.mean_then == 100.0


def test_best_start_is_exact_between_slot_boundaries() -> None:
    """Against a brute-force search over every minute: never worse, for odd job lengths."""
    rng = random.Random(7)
    slots = tuple(
        Slot(HALF_HOUR_NOW + i * HALF, HALF_HOUR_NOW + (i + 1) * HALF, rng.uniform(50, 400))
        for i in range(60)
    )
    s = Series("GB", "x", "forecast", slots, NOW)
    for minutes in (7, 45, 95, 301):
        d = minutes * 60.0
        plan = plan_start(s, d, now=NOW, window_end=NOW + 20 * HOUR)
        brute = min(s.mean(t, t + d) for t in (NOW + 60 * k for k in range(int((20 * HOUR - d) // 60) + 1)))
        assert plan.mean_then <= brute + 1e-9
        assert NOW <= plan.start <= NOW + 20 * HOUR - d


# -- bad input: a PlanError naming the parameter and the value -------------------------------


@pytest.fixture
def flat() -> Series:
    return Series(
        "GB",
        "uk-carbon-intensity:GB:direct",
        "forecast",
        tuple(Slot(HALF_HOUR_NOW + i * HALF, HALF_HOUR_NOW + (i + 1) * HALF, 100.0) for i in range(96)),
        NOW,
    )


@pytest.mark.parametrize(
    ("duration", "within", "param", "words"),
    [
        ("6x", "24h", "duration", "expected a length"),
        ("0h", "24h", "duration", "longer than zero"),
        ("60h", "72h", "duration", "longer than the forecast horizon"),
        ("6h", "-3h", "within", "in the past"),
        ("6h", "2026-09-20T10:00+00:00", "within", "in the past"),
        ("6h", "2026-09-21T25:00", "within", "ISO 8601"),
        ("6h", "3h", "within", "shorter than the job"),
    ],
)
def test_bad_plans_name_the_parameter_and_value(
    flat: Series, duration: str, within: str, param: str, words: str
) -> None:
    with pytest.raises(PlanError) as info:
        best_start(flat, duration, within, now=NOW)
    assert info.value.param == param and words in str(info.value), str(info.value)
    assert isinstance(info.value, ValueError)


def test_window_past_the_forecast_is_clipped(flat: Series) -> None:
    plan = best_start(flat, "1h", "100h", now=NOW)
    assert plan.clipped and plan.window_end == HALF_HOUR_NOW + 48 * HOUR


def test_unknown_zone_and_zone_without_forecast(server: FakeGridServer) -> None:
    with pytest.raises(PlanError, match="Atlantis") as info:
        forecast("Atlantis", now=NOW, config=cfg(server))
    assert info.value.param == "zone"
    with pytest.raises(forecasts.NoForecast) as none:
        forecast("JP", now=NOW, config=cfg(server))
    assert "'JP'" in str(none.value) and "GB-1..GB-17" in str(none.value) and "DK-DK1" in str(none.value)
    assert "DE" in str(none.value) and "CARBON_ELECTRICITYMAPS_TOKEN" in str(none.value)
    assert server.requests == []


# -- faults: each forecast source fails cleanly ------------------------------------------------


FAULTS: list[tuple[str, str, str, Reply, str]] = [
    (
        "uk-slow",
        "GB",
        UK_WINDOW,
        Reply(
            body=uk_window(steps(HALF_HOUR_NOW, HALF, 4, 100.0)),
            mode="trickle-headers",
            delay_s=0.05,
            huge_bytes=100_000,
        ),
        "within 1.2 s",
    ),
    ("uk-500", "GB", UK_WINDOW, Reply(500, uk_error(500, "Requested resource not found.")), "HTTP 500"),
    (
        "uk-malformed",
        "GB",
        UK_WINDOW,
        Reply(200, {"data": [{"from": "soon", "intensity": {"forecast": 5}}]}),
        "ISO 8601",
    ),
    (
        "uk-wrong-region",
        "GB-13",
        UK_REGIONAL_WINDOW,
        Reply(200, uk_regional_window(steps(HALF_HOUR_NOW, HALF, 4, 1.0), 7)),
        "region '7'",
    ),
    ("eds-429", "DK-DK2", EDS_PROG, Reply(429, {"error": "slow down"}, headers={"Retry-After": "60"}), "429"),
    (
        "eds-other-area",
        "DK-DK2",
        EDS_PROG,
        Reply(200, eds_rows(steps(NOW, 300, 4, 90.0), "DK1")),
        "price area DK2",
    ),
    (
        "em-wrong-zone",
        "DE",
        EM_FORECAST,
        Reply(200, em_series("FR", steps(NOW, HOUR, 4, 90.0))),
        "answer is for zone 'FR'",
    ),
    (
        "ec-unknown",
        "AT",
        EC_CO2EQ,
        Reply(400, EC_UNKNOWN_COUNTRY, content_type="text/plain"),
        "no data for country AT",
    ),
    ("ec-not-json", "AT", EC_CO2EQ, Reply(200, "<html>", content_type="text/html"), "not JSON"),
]


@pytest.mark.parametrize(("name", "zone", "route", "reply", "says"), FAULTS, ids=[f[0] for f in FAULTS])
def test_forecast_faults(
    server: FakeGridServer, name: str, zone: str, route: str, reply: Reply, says: str
) -> None:
    server.route_prefix(route, reply)
    token = TOKEN if route == EM_FORECAST else None
    with pytest.raises(ProviderError) as info:
        forecast(zone, now=NOW, config=cfg(server, electricitymaps_token=token))
    assert says in info.value.message, info.value.message
    assert TOKEN not in info.value.message


def test_forecast_is_cached_per_zone_for_a_while(server: FakeGridServer) -> None:
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(steps(HALF_HOUR_NOW, HALF, 96, 100.0))))
    c = cfg(server)
    forecast("GB", now=NOW, config=c)
    forecast("GB", now=NOW + 600, config=c)
    assert server.count() == 1
    forecast("GB", now=NOW + forecasts.CACHE_S + 1, config=c)
    assert server.count() == 2


# -- history and hindsight --------------------------------------------------------------------


def test_history_from_each_provider(server: FakeGridServer) -> None:
    start, end = NOW - 24 * HOUR, NOW
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(steps(start, HALF, 48, 120.0))))
    server.route(EDS_CO2EMIS, Reply(body=eds_rows(steps(start, 300, 288, 80.0), "DK2", "CO2Emis")))
    server.route(EM_HISTORY, Reply(body=em_series("PL", steps(start, HOUR, 24, 650.0), key="history")))
    server.route(EC_CO2EQ, Reply(body=ec_co2eq(steps(start, 900, 96, 330.0))))
    pages = [odre_records(steps(start + i * 100 * 900, 900, 100 if i == 0 else 44, 20 + i)) for i in range(2)]
    for p in pages:
        p["total_count"] = 144
    server.route(ODRE_RECORDS, [Reply(body=pages[0]), Reply(body=pages[1])])
    for zone, token, source, value, n in [
        ("GB", None, "uk-carbon-intensity:GB:direct", 120.0, 48),
        ("DK-DK2", None, "energidataservice:DK-DK2:direct", 80.0, 288),
        ("PL", TOKEN, "electricitymaps:PL", 650.0, 24),
        ("DE", None, "energy-charts:DE", 330.0, 96),
    ]:
        got = history(zone, start, end, config=cfg(server, electricitymaps_token=token))
        assert got is not None and (got.source, got.kind, len(got.slots)) == (source, "history", n)
        assert {s.gco2eq_per_kwh for s in got.slots} == {value}
    fr = history("FR", start, end, config=cfg(server))
    assert fr is not None and fr.source == "eco2mix:FR:direct" and len(fr.slots) == 144  # two pages
    offsets = [r.query["offset"] for r in server.requests if r.path == ODRE_RECORDS]
    assert offsets == [["0"], ["100"]]
    assert server.requests[0].path == "/uk/intensity/2026-09-20T12:11Z/2026-09-21T12:10Z"
    ec = next(r for r in server.requests if r.path == EC_CO2EQ)
    assert ec.query["start"] == ["2026-09-20T12:10Z"] and ec.query["end"] == ["2026-09-21T12:10Z"]
    assert history("JP", start, end, config=cfg(server)) is None


def test_hindsight_moves_the_energy_profile_interval_by_interval() -> None:
    """A 2-hour run whose energy is all in its first hour: the best earlier start puts that
    hour in the clean hour, which an average over the run would not find."""
    t0 = NOW // HOUR * HOUR
    # history: 400 g, except 100 g for the hour 5 h before the run; 250 g the hour after it
    slots = [
        Slot(
            t0 - 24 * HOUR + i * HALF,
            t0 - 24 * HOUR + (i + 1) * HALF,
            100.0
            if t0 - 5 * HOUR <= t0 - 24 * HOUR + i * HALF < t0 - 4 * HOUR
            else 250.0
            if t0 - 4 * HOUR <= t0 - 24 * HOUR + i * HALF < t0 - 3 * HOUR
            else 400.0,
        )
        for i in range(52)
    ]
    series = Series("GB", "uk-carbon-intensity:GB:direct", "history", tuple(slots), t0 + 2 * HOUR)
    profile = [(t0 + i * 60, t0 + (i + 1) * 60, 0.05 if i < 60 else 0.0001) for i in range(120)]
    got = hindsight(profile, series)
    assert got is not None
    assert got.best_start == t0 - 5 * HOUR  # its heavy first hour in the 100 g hour
    heavy, light = 60 * 0.05, 60 * 0.0001
    assert got.best_g == pytest.approx(heavy * 100 + light * 250)
    assert got.ran_g == pytest.approx((heavy + light) * 400)
    assert got.saving_percent == pytest.approx(
        100 * (1 - (heavy * 100 + light * 250) / ((heavy + light) * 400))
    )
    assert json.loads(json.dumps(got.to_dict()))["best_start"] == iso(t0 - 5 * HOUR)


def test_hindsight_needs_history_that_reaches() -> None:
    s = Series("GB", "x", "history", (Slot(NOW - 3 * HOUR, NOW - 2 * HOUR, 100.0),), NOW)
    assert hindsight([(NOW, NOW + 5 * HOUR, 1.0)], s) is None
