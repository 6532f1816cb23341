"""Network faults, round two (issue 16): what the first fault suite did not try.

- A server that trickles its response headers a byte at a time, each byte within the read
  timeout: every look-up has one total deadline, ``stop()`` ends the refresher at once
  (whatever the server does), and a restarted tracker looks up again.
- A server that echoes the token back encoded (JSON escapes, ``\\u00..``, percent-encoding,
  ``+``, HTML entities, split across lines), in any field or in a malformed status line:
  the token is in no exception, warning, log line or run log, however a reader decodes
  them; the status still is.
- ``http_proxy``, ``HTTPS_PROXY``, ``ALL_PROXY`` and the like set: a loopback base URL
  (127.0.0.1, localhost, ::1) never goes through the proxy (a real local proxy records
  whether it was used).
- A bad ``CARBON_*_URL`` (a port out of range or not a number, a broken IPv6 literal) and
  an ``interval_s`` below the floor are rejected at construction, naming the variable.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlencode

import pytest
from fake_grid_server import EM_LATEST, UK_NATIONAL, FakeGridServer, Reply, em_latest, uk_national
from fault_net import FAKE_HOST, FakeProxy

from carbon_core import Tracker
from carbon_core.intensity.providers import ProviderError
from carbon_core.intensity.providers import http as provider_http
from carbon_core.intensity.providers.electricitymaps import ElectricityMaps

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]

#: a token with the characters that encodings change: / + " & =
TOKEN = 'em/R2+S3CRET"fault&t0ken=7d1c'
QUIET = {"interval_s": 0.05, "log_dir": "off", "gpus": "none"}
REFRESHER = "carbon-core-intensity"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGridServer]:
    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.02, 0.05))
    with FakeGridServer() as s:
        monkeypatch.setenv("CARBON_ELECTRICITYMAPS_URL", s.url + "/em/v3")
        monkeypatch.setenv("CARBON_UK_URL", s.url + "/uk")
        yield s


def _refreshers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == REFRESHER and t.is_alive()}


def _live_warnings(messages: Any) -> list[str]:
    return [m for m in messages if "live intensity" in m]


# -- 1. trickled headers: one total deadline; stop() ends the refresher -------------------

TRICKLE_HEADERS = {"mode": "trickle-headers", "delay_s": 0.05, "huge_bytes": 100_000}  # ~80 min


@pytest.mark.parametrize(
    ("route", "good", "options"),
    [(EM_LATEST, em_latest, {"zone": "DE", "electricitymaps_token": TOKEN}),
     (UK_NATIONAL, uk_national, {"zone": "GB", "live": True})],
    ids=["electricitymaps", "uk-carbon-intensity"],
)  # fmt: skip
def test_trickled_headers_end_the_look_up_at_its_deadline(
    server: FakeGridServer, monkeypatch: pytest.MonkeyPatch, route: str,
    good: Callable[[float], Any], options: dict[str, Any],
) -> None:  # fmt: skip
    server.route(route, Reply(body=good(216), **TRICKLE_HEADERS))
    monkeypatch.setenv("CARBON_TIMEOUT_S", "0.3")  # each byte comes well within it
    tracker = Tracker(**QUIET, **options)
    table = tracker.intensity_source.table
    tracker.start()
    try:
        rounds = tracker.intensity_source.wait_for_refresh(1, timeout_s=20)
        assert rounds, "a look-up on trickled headers never ended (no total deadline)"
    finally:
        final = tracker.stop()
    (warning,) = _live_warnings(final.warnings)
    assert "within 0.6 s" in warning and f"using {table.source}" in warning
    assert final.intensity_source == table.source
    assert server.count(route) == provider_http.RETRIES + 1  # each attempt cut, then retried


@pytest.mark.parametrize(
    "reply",
    [Reply(body=em_latest(216), **TRICKLE_HEADERS),
     Reply(mode="hang"),
     Reply(body=em_latest(216), mode="trickle", delay_s=0.05)],
    ids=["trickle-headers", "hang", "trickle-body"],
)  # fmt: skip
def test_stop_ends_the_refresher_in_the_middle_of_a_look_up(
    server: FakeGridServer, monkeypatch: pytest.MonkeyPatch, reply: Reply
) -> None:
    server.em(reply)
    monkeypatch.setenv("CARBON_TIMEOUT_S", "20")  # far off: only stop() can end the look-up
    before = _refreshers()
    tracker = Tracker(zone="DE", electricitymaps_token=TOKEN, **QUIET)
    tracker.start()
    try:
        assert server.wait_for_requests(1), "the refresher never asked"
    finally:
        final = tracker.stop()
    deadline = time.monotonic() + 3.0
    while _refreshers() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _refreshers() - before, "the refresher thread outlived stop()"
    assert not _live_warnings(final.warnings), "a look-up cut by stop() is no fault"


def test_a_restarted_tracker_looks_up_again(server: FakeGridServer, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = {"reply": Reply(body=em_latest(99), **TRICKLE_HEADERS)}
    server.em(lambda req: answer["reply"])
    monkeypatch.setenv("CARBON_TIMEOUT_S", "20")
    tracker = Tracker(zone="DE", electricitymaps_token=TOKEN, **QUIET)
    tracker.start()
    try:
        assert server.wait_for_requests(1)
    finally:
        tracker.stop()  # with the first look-up hanging on the trickle
    answer["reply"] = Reply(body=em_latest(216))
    tracker.start()
    try:
        deadline = time.monotonic() + 15
        while (
            tracker.intensity_source.current().source != "electricitymaps:DE" and time.monotonic() < deadline
        ):
            time.sleep(0.02)
    finally:
        final = tracker.stop()
    assert server.count(EM_LATEST) >= 2, "the restarted tracker never looked up again"
    assert (final.intensity_source, final.intensity_gco2eq_per_kwh) == ("electricitymaps:DE", 216.0)
    assert not _live_warnings(final.warnings)


# -- 2. a token echoed back encoded --------------------------------------------------------


def _lines(token: str, sep: str) -> str:
    return sep.join(token[i : i + 5] for i in range(0, len(token), 5))


ENCODINGS: dict[str, str] = {
    "json-escapes": TOKEN.replace("/", "\\/").replace('"', '\\"').replace("&", "\\u0026"),
    "json-unicode": "".join(f"\\u{ord(c):04x}" for c in TOKEN),
    "percent": quote(TOKEN, safe=""),
    "percent-lower-hex": re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(TOKEN, safe="")),
    "percent-partial": quote(TOKEN),
    "form": urlencode({"hint": "a token", "token": TOKEN}),
    "html": html.escape(TOKEN).replace("/", "&#x2F;"),
    "lines": _lines(TOKEN, "\r\n"),
    "json-lines": _lines(TOKEN, "\\n").replace('"', '\\"'),
}

#: where a server may put the echo: (status, content type, body with {} for it)
CARRIERS: dict[str, tuple[int, str, str]] = {
    "error-field": (401, "application/json", '{"error": "Invalid auth-token {}"}'),
    "message-field": (403, "application/json", '{"message": "token {} has expired"}'),
    "nested-message": (500, "application/json", '{"error": {"code": "500", "message": "bad {}"}}'),
    "other-field": (400, "application/json", '{"detail": {"token": "{}", "hint": "check it"}}'),
    "plain-text": (404, "text/plain", "Access denied for {}"),
    "not-json-200": (200, "text/html", "<html><p>{}</p></html>"),
    "status-line": (0, "", "HTTP/1.1 4O1 {}\r\n\r\n"),  # malformed: sent raw
}


def _carry(carrier: str, echo: str) -> Reply:
    status, ctype, body = CARRIERS[carrier]
    text = body.replace("{}", echo)
    if not status:
        return Reply(body=text.encode("latin-1", "replace"), mode="raw")
    return Reply(status, text, content_type=ctype)


def _readings(text: str) -> list[str]:
    """``text`` as a reader may decode it: escapes, percent-encoding, entities, joined lines."""
    out = [text]
    for _ in range(2):
        t = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), out[-1])
        out.append(html.unescape(unquote(t.replace("\\n", "\n").replace("\\", ""))))
    out += [unquote_plus(t) for t in out]
    return ["".join(t.split()) for t in out]


def _leaks(text: str) -> bool:
    """The token, or any 8 characters of it in a row, readable in ``text``."""
    pieces = [TOKEN[i : i + 8] for i in range(len(TOKEN) - 7)]
    return any(p in r for r in _readings(text) for p in pieces)


def test_the_leak_check_reads_every_encoding() -> None:
    for echo in ENCODINGS.values():
        assert _leaks(f"x {echo} y"), echo
    assert not _leaks("Invalid auth-token (HTTP 401)")


@pytest.mark.parametrize("carrier", list(CARRIERS))
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_an_encoded_echo_of_the_token_is_never_shown(
    encoding: str, carrier: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.0, 0.0))
    caplog.set_level(logging.DEBUG)
    with FakeGridServer() as s:
        s.em(_carry(carrier, ENCODINGS[encoding]))
        provider = ElectricityMaps(TOKEN, base_url=s.url + "/em/v3", timeout_s=2.0)
        with pytest.raises(ProviderError) as info:
            provider.fetch("DE")
        provider.close()
    texts = [str(info.value), repr(info.value), *(r.getMessage() for r in caplog.records)]
    assert not [t for t in texts if _leaks(t)], texts
    status = CARRIERS[carrier][0]
    if status >= 400:
        assert f"HTTP {status}" in str(info.value), "the message still says what the server answered"


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_an_encoded_echo_is_in_no_warning_log_line_or_run_log(
    encoding: str, server: FakeGridServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    carriers = list(CARRIERS)
    served: list[int] = []

    def echo(req: Any) -> Reply:
        served.append(1)
        return _carry(carriers[(len(served) - 1) % len(carriers)], ENCODINGS[encoding])

    server.em(echo)
    monkeypatch.setenv("CARBON_REFRESH_S", "0.02")
    monkeypatch.setenv("CARBON_TIMEOUT_S", "2")
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = Tracker(zone="DE", electricitymaps_token=TOKEN, interval_s=0.02, gpus="none",
                          log_dir=tmp_path / "log")  # fmt: skip
        tracker.start()
        try:
            assert tracker.intensity_source.wait_for_refresh(len(carriers), timeout_s=30)
        finally:
            final = tracker.stop()
    texts = [*final.warnings, *(str(w.message) for w in caught), *(r.getMessage() for r in caplog.records)]
    texts += [p.read_text() for p in (tmp_path / "log").glob("*.jsonl")]
    assert len(_live_warnings(final.warnings)) >= 3, final.warnings  # the faults were reported...
    leaked = [t[:300] for t in texts if _leaks(t)]
    assert not leaked, f"token readable in: {leaked}"  # ...without the token


# -- 3. loopback never through a proxy -----------------------------------------------------

PROXIED = [("http_proxy", "http"), ("HTTP_PROXY", "http"), ("ALL_PROXY", "http"), ("all_proxy", "http"),
           ("https_proxy", "https"), ("HTTPS_PROXY", "https"), ("ALL_PROXY", "https")]  # fmt: skip


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
@pytest.mark.parametrize(("var", "scheme"), PROXIED)
def test_loopback_is_never_proxied(
    var: str, scheme: str, host: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("NO_PROXY", "no_proxy"):  # nothing exempts loopback but carbon-core itself
        monkeypatch.delenv(name, raising=False)
    proxy = FakeProxy()
    try:
        with FakeGridServer("::1" if host == "::1" else "127.0.0.1") as grid:
            grid.em(Reply(body=em_latest(216)))
            netloc = f"[{host}]" if ":" in host else host
            monkeypatch.setenv("CARBON_ELECTRICITYMAPS_URL", f"{scheme}://{netloc}:{grid.port}/em/v3")
            monkeypatch.setenv(var, proxy.url)
            monkeypatch.setenv("CARBON_TIMEOUT_S", "2")
            with Tracker(zone="DE", electricitymaps_token=TOKEN, **QUIET) as tracker:
                assert tracker.intensity_source.wait_for_refresh(1, timeout_s=20)
                current = tracker.intensity_source.current()
    finally:
        proxy.close()
    assert proxy.seen == [], f"a loopback look-up went through {var}: {proxy.seen}"
    if scheme == "http":  # (the fake grid speaks no TLS: an https look-up fails, directly)
        assert (current.source, current.gco2eq_per_kwh) == ("electricitymaps:DE", 216.0)
        assert grid.requests[0].headers["auth-token"] == TOKEN


def test_a_host_that_is_not_loopback_still_uses_the_proxy(
    server: FakeGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only loopback is exempt: a named host goes through the proxy the environment sets."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = FakeProxy()
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("CARBON_ELECTRICITYMAPS_URL", f"http://{FAKE_HOST}:{server.port}/em/v3")
        with Tracker(zone="DE", electricitymaps_token=TOKEN, **QUIET) as tracker:
            assert tracker.intensity_source.wait_for_refresh(1, timeout_s=20)
    finally:
        proxy.close()
    assert proxy.seen and proxy.seen[0][:2] == (
        "GET",
        f"http://{FAKE_HOST}:{server.port}{EM_LATEST}?zone=DE&shouldUseFallbackCallerLookup=false",
    )
    (warning,) = _live_warnings(tracker.snapshot().warnings)
    assert "HTTP 502" in warning


# -- 4. bad base URLs and 5. the interval floor, at construction --------------------------

BAD_URLS = [
    ("http://127.0.0.1:99999/em/v3", "http://127.0.0.1:99999/em/v3"),
    ("http://127.0.0.1:abc/em/v3", "http://127.0.0.1:abc/em/v3"),
    ("http://127.0.0.1:0/x", "http://127.0.0.1:0/x"),
    ("http://[::1", "http://[::1"),
    ("http://[::1]:70000/uk", "http://[::1]:70000/uk"),
    ("https://user:pa55@127.0.0.1:99999/x?token=pa55", "https://127.0.0.1:99999/x"),
    ("http://user:pa55@[::1/x?token=pa55", "http://[::1/x"),
    ("http://grid example.org/x", "http://grid example.org/x"),
]


@pytest.mark.parametrize(
    "var", ["CARBON_ELECTRICITYMAPS_URL", "CARBON_UK_URL", "CARBON_ENERGIDATASERVICE_URL"]
)
@pytest.mark.parametrize(("given", "shown"), BAD_URLS)
def test_a_bad_base_url_is_rejected_at_construction_naming_the_variable(
    var: str, given: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(var, given)
    with pytest.raises(ValueError) as info:
        Tracker(zone="DE", intensity=100.0, **QUIET)
    message = str(info.value)
    assert message.startswith(var) and repr(shown) in message, message
    assert "pa55" not in message and "user" not in message


@pytest.mark.parametrize("given", [1e-6, 0.001, 0.0099, "1e-6"])
def test_an_interval_below_the_floor_is_rejected_naming_the_parameter(
    given: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError) as info:
        Tracker(interval_s=given, intensity=100.0, log_dir="off", gpus="none")
    assert f"interval_s={given!r}" in str(info.value) and "0.01" in str(info.value)
    monkeypatch.setenv("CARBON_INTERVAL_S", str(given))
    with pytest.raises(ValueError) as info:
        Tracker(intensity=100.0, log_dir="off", gpus="none")
    assert f"CARBON_INTERVAL_S={str(given)!r}" in str(info.value)


def test_the_interval_floor_itself_is_accepted() -> None:
    with Tracker(interval_s=0.01, intensity=100.0, log_dir="off", gpus="none") as tracker:
        assert tracker.config.interval_s == 0.01
