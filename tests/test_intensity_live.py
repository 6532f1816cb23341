"""Live providers against a local fake server (127.0.0.1 only), through the URL overrides.

Good answers are used and their source named; every failure falls back with no exception
and exactly one warning; a hanging server never slows ``current()``; a token never leaks.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_grid_server import (
    EDS_CO2EMIS,
    EM_INVALID_TOKEN,
    EM_LATEST,
    UK_NATIONAL,
    FakeGridServer,
    Reply,
    Request,
    closed_port_url,
    eds_co2emis,
    em_latest,
    em_zone_not_allowed,
    uk_error,
    uk_national,
    uk_regional,
)

from carbon_core.config import load
from carbon_core.faults import FaultLog
from carbon_core.intensity.providers import _redact, _transport
from carbon_core.intensity.providers import http as provider_http
from carbon_core.intensity.resolve import resolve_source
from carbon_core.intensity.source import IntensitySource

TOKEN = "em-SECRET-t0ken-4242"
_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach anything but 127.0.0.1; ``dns-fails.invalid`` fails to resolve."""

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "localhost", b"127.0.0.1"):
            return _real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test: no resolving {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.05, 0.1))


@pytest.fixture
def server() -> Iterator[FakeGridServer]:
    with FakeGridServer() as s:
        yield s


def make_source(env: dict[str, str], **kwargs: Any) -> IntensitySource:
    """The source a tracker builds from these arguments and this environment."""
    return resolve_source(load(kwargs, env), FaultLog(), env)


def make_chain(
    server: FakeGridServer,
    zone: str,
    *,
    token: str | None = None,
    refresh_s: float = 60.0,
    timeout_s: float = 0.5,
) -> IntensitySource:
    return make_source(
        server.env(),
        zone=zone,
        live=True,
        electricitymaps_token=token,
        refresh_s=refresh_s,
        timeout_s=timeout_s,
    )


def one_round(chain: IntensitySource, rounds: int = 1) -> None:
    chain.start()
    try:
        assert chain.wait_for_refresh(rounds, timeout_s=20)
    finally:
        chain.stop()


# -- good answers --------------------------------------------------------------------------


def test_electricitymaps_answer_used(server: FakeGridServer) -> None:
    server.em(Reply(body=em_latest(216, zone="DE")))
    chain = make_chain(server, "DE", token=TOKEN)
    assert chain.current().source == "table:country:DE:2024"  # before the first answer
    one_round(chain)
    cur = chain.current()
    assert (cur.gco2eq_per_kwh, cur.source, cur.zone) == (216.0, "electricitymaps:DE", "DE")
    (req,) = server.requests
    assert req.path == EM_LATEST
    # the zone asked for, never the caller's IP location in its place
    assert req.query == {"zone": ["DE"], "shouldUseFallbackCallerLookup": ["false"]}
    assert req.headers["auth-token"] == TOKEN
    assert len(chain.faults) == 0


def test_electricitymaps_gets_grid_zone_of_cloud_region(server: FakeGridServer) -> None:
    server.em(Reply(body=em_latest(300, zone="BE")))
    chain = make_chain(server, "europe-west1", token=TOKEN)
    one_round(chain)
    assert server.requests[0].query["zone"] == ["BE"]
    assert chain.current().source == "electricitymaps:BE"


@pytest.mark.parametrize(
    ("region", "zone"),
    [
        ("aws:us-east-1", "US-MIDA-PJM"),
        ("azure:westus2", "US-NW-GCPD"),
        ("ca-central-1", "CA-QC"),
        ("northamerica-northeast1", "CA-QC"),
        ("asia-east2", "HK"),
    ],
)
def test_electricitymaps_is_asked_for_a_zone_it_has(server: FakeGridServer, region: str, zone: str) -> None:
    """Cloud regions go out as Electricity Maps zone ids, not US-VA, CA or CN."""
    server.em(lambda req: Reply(body=em_latest(123, zone=req.query["zone"][0])))
    chain = make_chain(server, region, token=TOKEN)
    one_round(chain)
    assert server.requests[0].query == {"zone": [zone], "shouldUseFallbackCallerLookup": ["false"]}
    cur = chain.current()
    assert (cur.gco2eq_per_kwh, cur.source, cur.zone) == (123.0, f"electricitymaps:{zone}", zone)
    assert len(chain.faults) == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (em_latest(216, zone="US-NY-NYIS"), ["asked for zone US-MIDA-PJM", "US-NY-NYIS"]),  # another zone
        ({"carbonIntensity": 216}, ["zone"]),  # an answer that does not say for where
    ],
)
def test_electricitymaps_answer_for_another_zone_is_a_fault(
    server: FakeGridServer, fast_retries: None, body: dict[str, object], words: list[str]
) -> None:
    server.em(Reply(body=body))
    chain = make_chain(server, "aws:us-east-1", token=TOKEN)
    one_round(chain)
    cur = chain.current()
    assert (cur.gco2eq_per_kwh, cur.source) == (
        418.0,
        "table:electricitymaps:US-MIDA-PJM:2025 (aws:us-east-1)",
    )
    (msg,) = chain.faults.messages
    assert all(w in msg for w in words), msg
    assert "using table:electricitymaps:US-MIDA-PJM:2025" in msg


def test_electricitymaps_zone_in_the_answer_never_echoes_the_token(server: FakeGridServer) -> None:
    server.em(Reply(body=em_latest(216, zone=f"DE {TOKEN}")))
    chain = make_chain(server, "DE", token=TOKEN)
    one_round(chain)
    (msg,) = chain.faults.messages
    assert "asked for zone DE" in msg and TOKEN not in msg
    assert chain.current().source == "table:country:DE:2024"


def test_electricitymaps_direct_figures_say_so(server: FakeGridServer) -> None:
    server.em(Reply(body=em_latest(150, zone="DE", factor="direct")))
    chain = make_chain(server, "DE", token=TOKEN)
    one_round(chain)
    assert chain.current().source == "electricitymaps:DE:direct"


@pytest.mark.parametrize(
    ("reply", "says", "not_says"),
    [
        (Reply(401, em_zone_not_allowed("DE")), "the token is valid, but zone DE", "not valid"),
        (Reply(401, EM_INVALID_TOKEN), "the token is not valid", "outside its plan"),
        (Reply(403, "Access denied", content_type="text/plain"), "valid but with zone DE", "is not valid"),
    ],
)
def test_electricitymaps_refusal_says_the_zone_may_be_outside_the_plan(
    server: FakeGridServer, fast_retries: None, reply: Reply, says: str, not_says: str
) -> None:
    server.em(reply)
    chain = make_chain(server, "DE", token=TOKEN)
    one_round(chain)
    (msg,) = chain.faults.messages
    assert says in msg and not_says not in msg, msg
    assert chain.current().source == "table:country:DE:2024"


def test_uk_national_actual_then_forecast(server: FakeGridServer) -> None:
    server.uk([Reply(body=uk_national(263, forecast=266)), Reply(body=uk_national(None, 250))])
    chain = make_chain(server, "GB", refresh_s=0.05)
    one_round(chain, rounds=2)
    assert chain.current().source == "uk-carbon-intensity:GB:direct"  # NESO: direct emissions
    assert chain.current().gco2eq_per_kwh == 250.0  # actual null -> forecast
    assert len(chain.faults) == 0


def test_uk_national_actual_preferred(server: FakeGridServer) -> None:
    server.uk(Reply(body=uk_national(263, forecast=266)))
    chain = make_chain(server, "GB")
    one_round(chain)
    assert chain.current().gco2eq_per_kwh == 263.0
    assert server.requests[0].path == UK_NATIONAL


@pytest.mark.parametrize(("zone", "rid"), [("GB-13", 13), ("GB-SCT", 16), ("gb-1", 1)])
def test_uk_regional(server: FakeGridServer, zone: str, rid: int) -> None:
    server.uk(Reply(body=uk_regional(180, regionid=rid)), regionid=rid)
    chain = make_chain(server, zone)
    one_round(chain)
    cur = chain.current()
    assert (cur.gco2eq_per_kwh, cur.source) == (180.0, f"uk-carbon-intensity:{zone.upper()}:direct")
    assert server.requests[0].path == f"/uk/regional/regionid/{rid}"


@pytest.mark.parametrize(("zone", "area"), [("DK-DK1", "DK1"), ("DK-DK2", "DK2")])
def test_energidataservice(server: FakeGridServer, zone: str, area: str) -> None:
    server.eds(Reply(body=eds_co2emis(160.0, area=area, other=999.0)))
    chain = make_chain(server, zone)
    assert chain.current().source == f"table:electricitymaps:{zone}:2025"
    one_round(chain)
    cur = chain.current()
    assert (cur.gco2eq_per_kwh, cur.source, cur.zone) == (160.0, f"energidataservice:{zone}:direct", zone)
    (req,) = server.requests
    assert req.path == EDS_CO2EMIS
    assert req.query["filter"] == ['{"PriceArea":["' + area + '"]}']
    assert req.query["sort"] == ["Minutes5UTC DESC"]


def test_value_changes_between_refreshes_steps(server: FakeGridServer) -> None:
    """current() follows the served value as a step; accounting per interval matches."""
    state = {"value": 300}
    server.uk(lambda req: Reply(body=uk_national(state["value"])))
    chain = make_chain(server, "GB", refresh_s=0.05)
    chain.start()
    try:
        assert chain.wait_for_refresh(1, timeout_s=10)
        first = chain.current()
        assert first.gco2eq_per_kwh == 300.0
        kg = 2.0 * first.gco2eq_per_kwh / 1000  # interval 1: 2 kWh
        state["value"] = 120
        deadline = time.monotonic() + 10
        while chain.current().gco2eq_per_kwh != 120.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = chain.current()
        assert (second.gco2eq_per_kwh, second.source) == (120.0, "uk-carbon-intensity:GB:direct")
        kg += 0.5 * second.gco2eq_per_kwh / 1000  # interval 2: 0.5 kWh
    finally:
        chain.stop()
    assert kg == pytest.approx(2.0 * 0.300 + 0.5 * 0.120)
    assert server.count(UK_NATIONAL) >= 2
    assert len(chain.faults) == 0


# -- failures: fall back, no exception, exactly one warning ------------------------------

FAILURES: list[tuple[str, Reply]] = [
    ("http-401", Reply(401, EM_INVALID_TOKEN)),
    ("http-403-text", Reply(403, "Access denied", content_type="text/plain")),
    ("http-404", Reply(404, {"error": "Zone not found"})),
    ("http-429", Reply(429, {"error": "Too many requests"}, headers={"Retry-After": "120"})),
    ("http-429-no-retry-after", Reply(429, {"error": "Too many requests"})),
    ("http-500", Reply(500, {"error": "boom"})),
    ("http-503", Reply(503, "<html>Service Unavailable</html>", content_type="text/html")),
    ("redirect", Reply(302, None, headers={"Location": "http://evil.example/steal"})),
    ("not-json", Reply(200, "<html>hello</html>", content_type="text/html")),
    ("truncated-json", Reply(200, '{"zone":"DE","carbonInten')),
    ("short-body", Reply(200, em_latest(216), mode="truncated")),
    ("wrong-shape", Reply(200, {"zone": "DE", "data": [1, 2, 3]})),
    ("json-list", Reply(200, [1, 2, 3])),
    ("null-value", Reply(200, em_latest(None))),
    ("string-value", Reply(200, em_latest("216"))),
    ("negative", Reply(200, em_latest(-5))),
    ("absurd", Reply(200, em_latest(25000))),
    ("hang", Reply(mode="hang")),
    ("slow-trickle", Reply(200, em_latest(216), mode="trickle", delay_s=0.4)),
    ("huge", Reply(200, mode="huge", huge_bytes=8 << 20)),
    ("reset", Reply(mode="reset")),
]


@pytest.mark.parametrize(("name", "reply"), FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_falls_back_to_table_with_one_warning(
    server: FakeGridServer,
    fast_retries: None,
    caplog: pytest.LogCaptureFixture,
    name: str,
    reply: Reply,
) -> None:
    server.em(reply)
    caplog.set_level(logging.DEBUG)
    chain = make_chain(server, "DE", token=TOKEN, timeout_s=0.3)
    one_round(chain)
    cur = chain.current()
    assert (cur.gco2eq_per_kwh, cur.source) == (344.1, "table:country:DE:2024")
    assert len(chain.faults) == 1, chain.faults.messages
    msg = chain.faults.messages[0]
    assert "DE" in msg and "table:country:DE:2024" in msg
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [msg]
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("kind", "url"), [("refused", None), ("dns", "http://dns-fails.invalid/v3")])
def test_network_failure_falls_back(
    fast_retries: None, caplog: pytest.LogCaptureFixture, kind: str, url: str | None
) -> None:
    base = url or closed_port_url() + "/v3"
    caplog.set_level(logging.DEBUG)
    chain = make_source(
        {"CARBON_ELECTRICITYMAPS_URL": base}, zone="DE", electricitymaps_token=TOKEN, timeout_s=0.3
    )
    one_round(chain)
    assert chain.current().source == "table:country:DE:2024"
    assert len(chain.faults) == 1
    if kind == "dns":
        assert "resolved" in chain.faults.messages[0]
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("zone", "reply"),
    [
        ("GB", Reply(500, uk_error(500))),
        ("GB", Reply(200, {"data": []})),
        ("GB-13", Reply(200, uk_national(200))),  # national shape on a regional path
        ("GB", Reply(200, uk_national(-1))),
        ("DK-DK1", Reply(200, eds_co2emis(160.0, area="DK2"))),  # only the other area
        ("DK-DK1", Reply(200, {"total": 0, "records": []})),
        ("DK-DK1", Reply(503, "")),
        ("DK-DK2", Reply(200, eds_co2emis(4000.0, area="DK2"))),
    ],
)
def test_keyless_provider_failures(
    server: FakeGridServer, fast_retries: None, zone: str, reply: Reply
) -> None:
    server.uk(reply)
    server.uk(reply, regionid=13)
    server.eds(reply)
    chain = make_chain(server, zone)
    one_round(chain)
    assert chain.current().source.startswith("table:")
    assert len(chain.faults) == 1, chain.faults.messages


def test_repeated_failure_warns_once(server: FakeGridServer, fast_retries: None) -> None:
    server.em(Reply(500, {"error": "boom"}))
    chain = make_chain(server, "DE", token=TOKEN, refresh_s=0.05)
    one_round(chain, rounds=3)
    assert len(chain.faults) == 1
    assert server.count(EM_LATEST) >= 3 * (provider_http.RETRIES + 1)


def test_last_good_value_kept_then_table_when_stale(server: FakeGridServer, fast_retries: None) -> None:
    server.em([Reply(body=em_latest(216)), Reply(500, {"error": "boom"})])
    chain = make_chain(server, "DE", token=TOKEN, refresh_s=0.05)
    one_round(chain, rounds=2)
    assert chain.current().source == "electricitymaps:DE"  # last good live value
    assert chain.current().gco2eq_per_kwh == 216.0
    assert len(chain.faults) == 1
    assert "last live value (216" in chain.faults.messages[0]
    chain.max_age_s = 0.0
    assert chain.current().source == "table:country:DE:2024"


def test_failures_go_to_the_log_given_at_start(server: FakeGridServer, fast_retries: None) -> None:
    server.em(Reply(500, {"error": "boom"}))
    env = server.env()
    built, run = FaultLog(), FaultLog()
    chain = resolve_source(load({"zone": "DE", "electricitymaps_token": TOKEN}, env), built, env)
    chain.start(run)  # a new run reports into its own log
    try:
        assert chain.wait_for_refresh(1, timeout_s=20)
    finally:
        chain.stop()
    assert len(built) == 0 and len(run) == 1 and "DE" in run.messages[0]


def test_recovers_after_failure(server: FakeGridServer, fast_retries: None) -> None:
    # 401 is not retried within a round; the next round succeeds
    server.em([Reply(401, EM_INVALID_TOKEN), Reply(body=em_latest(99))])
    chain = make_chain(server, "DE", token=TOKEN, refresh_s=0.05)
    one_round(chain, rounds=2)
    assert chain.current().source == "electricitymaps:DE"
    assert len(chain.faults) == 1


def test_retry_with_backoff_recovers_within_round(server: FakeGridServer) -> None:
    server.em([Reply(503, ""), Reply(body=em_latest(150))])
    chain = make_chain(server, "DE", token=TOKEN)
    one_round(chain)
    assert chain.current().gco2eq_per_kwh == 150.0
    assert len(chain.faults) == 0
    first, second = server.requests
    assert second.at - first.at >= provider_http.BACKOFF_S[0] * 0.9


def test_retry_after_respected(server: FakeGridServer) -> None:
    server.em([Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
               Reply(body=em_latest(77))])  # fmt: skip
    chain = make_chain(server, "DE", token=TOKEN)
    one_round(chain)
    first, second = server.requests
    assert second.at - first.at >= 0.95
    assert chain.current().gco2eq_per_kwh == 77.0
    assert len(chain.faults) == 0


def test_long_retry_after_ends_round_and_delays_next(server: FakeGridServer, fast_retries: None) -> None:
    server.em(Reply(429, {"error": "slow down"}, headers={"Retry-After": "3600"}))
    chain = make_chain(server, "DE", token=TOKEN, refresh_s=0.05)
    chain.start()
    try:
        assert chain.wait_for_refresh(1, timeout_s=10)
        assert not chain.wait_for_refresh(2, timeout_s=0.5)  # waits for Retry-After
    finally:
        chain.stop()
    assert server.count(EM_LATEST) == 1
    assert "Retry-After 3600" in chain.faults.messages[0]


def test_parse_retry_after() -> None:
    assert provider_http.parse_retry_after("5") == 5.0
    assert provider_http.parse_retry_after("-5") == 0.0
    assert provider_http.parse_retry_after("99999999") == provider_http.MAX_RETRY_AFTER_S
    assert provider_http.parse_retry_after("soon") is None
    assert provider_http.parse_retry_after(None) is None
    when = provider_http.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    assert when == pytest.approx(10.0)


# -- the training thread never waits --------------------------------------------------------


def test_hanging_server_does_not_slow_current_and_stop_returns(server: FakeGridServer) -> None:
    sleep_s = 8.0
    server.em(Reply(body=em_latest(216), delay_s=sleep_s))
    chain = make_chain(server, "DE", token=TOKEN, timeout_s=3.0)  # the default timeout
    chain.start()
    try:
        assert server.wait_for_requests(1)
        began = server.requests[0].at
        for _ in range(10_000):
            cur = chain.current()
        now = time.monotonic()
        assert cur.source == "table:country:DE:2024"
        assert now - began < sleep_s  # returned while the fetch still hangs
        assert chain.refresh_count == 0  # the request is still in flight
    finally:
        t0 = time.monotonic()
        chain.stop()
        stopped = time.monotonic() - t0
    assert stopped < 2.5
    assert time.monotonic() - began < sleep_s


# -- secrets --------------------------------------------------------------------------------


def test_token_never_leaks(
    server: FakeGridServer, fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    def echo(req: Request) -> Reply:  # a hostile server echoing the token back
        return Reply(401, {"error": f"Invalid auth-token {req.headers.get('auth-token')}"})

    server.em(echo)
    caplog.set_level(logging.DEBUG)
    chain = make_chain(server, "DE", token=TOKEN)
    one_round(chain)
    assert server.requests[0].headers["auth-token"] == TOKEN
    texts = [r.getMessage() for r in caplog.records] + list(chain.faults.messages)
    texts += [repr(chain), repr(chain.provider), str(chain.__dict__)]
    assert texts and all(TOKEN not in t for t in texts)
    assert "401" in chain.faults.messages[0]


def test_token_from_env_never_leaks(
    server: FakeGridServer, fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    server.em(Reply(403, f"Access denied for {TOKEN}", content_type="text/plain"))
    caplog.set_level(logging.DEBUG)
    env = server.env(CARBON_ELECTRICITYMAPS_TOKEN=TOKEN)
    chain = make_source(env, zone="DE", timeout_s=0.3)
    one_round(chain)
    assert server.requests[0].headers["auth-token"] == TOKEN
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert all(TOKEN not in m for m in chain.faults.messages)


@pytest.mark.parametrize(
    "body",
    [TOKEN, f'{{"error": "{TOKEN[:9]}\\n{TOKEN[9:]}"}}', TOKEN.replace("-", "%2d"), "\\u0065" + TOKEN[1:],
     f"junk {TOKEN[4:12]} junk", TOKEN.upper()],
)  # fmt: skip
def test_excerpt_withheld_when_any_reading_quotes_the_token(body: str) -> None:
    assert _redact.excerpt(body, [TOKEN]) == _redact.WITHHELD


def test_excerpt_is_one_short_printable_line() -> None:
    assert _redact.excerpt(b'{"error": "Invalid\\n auth-token", "x": 1}', [TOKEN]) == "Invalid auth-token"
    assert _redact.excerpt("a\x00b\u202ec\r\nd  " + "e" * 300, [TOKEN], limit=10) == "a b c d ee..."
    assert _redact.excerpt(b"", [TOKEN]) == ""
    assert _redact.excerpt("[" * 100_000, [TOKEN]).startswith("[[[")  # too deep for json: text


@pytest.mark.parametrize(
    ("url", "direct"),
    [("http://127.0.0.1:9/x", True), ("http://127.9.9.9/x", True), ("http://localhost/x", True),
     ("http://LOCALHOST./x", True), ("http://grid.localhost/x", True), ("http://[::1]:9/x", True),
     ("http://[::ffff:127.0.0.1]/x", True), ("https://api.electricitymaps.com/v3", False),
     ("http://10.0.0.1/x", False), ("http://localhost.example.org/x", False), ("http://[::2]/x", False)],
)  # fmt: skip
def test_only_loopback_bypasses_proxies(url: str, direct: bool) -> None:
    assert (_transport.proxies_for(url) == _transport.NO_PROXIES) is direct


@pytest.mark.parametrize("bad", ["abc\ndef-" + TOKEN, TOKEN + " x", "ünïcode" + TOKEN, "  "])
def test_bad_token_rejected_without_echo(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        make_source({}, zone="DE", electricitymaps_token=bad)
    assert "electricitymaps_token" in str(info.value)
    assert TOKEN not in str(info.value)
    assert not bad.strip() or bad.strip() not in str(info.value)
