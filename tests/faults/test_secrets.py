"""Secrets: with an Electricity Maps token set (argument or environment), the token is in
no log line (every logger at DEBUG, urllib3 included), warning, exception message, repr,
run log, summary or report, even when the server echoes it back in its error bodies."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fake_grid_server import FakeGridServer, Reply, Request, em_latest

from carbon_core import Tracker
from carbon_core.intensity.providers import http as provider_http

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]

TOKEN = "em-S3CRET-fault-t0ken-7d1c2b9e"
FORMS = (TOKEN, quote(TOKEN, safe=""), TOKEN[:12] + "-fault", "S3CRET")


def _echo_replies(req: Request) -> Reply:
    """Every kind of answer, each one quoting the token it was sent back at the client."""
    sent = req.headers.get("auth-token", "")
    n = len(_seen)
    _seen.append(sent)
    replies = [
        Reply(401, {"error": f"Invalid auth-token {sent}", "message": f"token {sent} expired"}),
        Reply(200, f"<html>not json {sent}</html>", content_type="text/html"),
        Reply(500, "x" * 150 + sent + " tail"),  # the token straddles the 160-character cut
        Reply(200, {"carbonIntensity": sent}),
        Reply(429, {"error": sent}, headers={"Retry-After": "0"}),
        Reply(403, {"error": {"message": "forbidden " + sent}}),
        Reply(404, "y" * 155 + sent),
        Reply(200, em_latest(99)),
    ]
    return replies[n % len(replies)]


_seen: list[str] = []


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGridServer]:
    _seen.clear()
    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.01, 0.01))
    monkeypatch.setenv("CARBON_REFRESH_S", "0.02")
    monkeypatch.setenv("CARBON_TIMEOUT_S", "0.5")
    with FakeGridServer() as s:
        s.em(_echo_replies)
        monkeypatch.setenv("CARBON_ELECTRICITYMAPS_URL", s.url + "/em/v3")
        yield s


def _leaks(text: str) -> list[str]:
    return [form for form in FORMS if form in text]


@pytest.mark.parametrize("given", ["argument", "environment"])
def test_token_never_leaks(
    given: str, server: FakeGridServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)  # every logger: carbon_core, urllib3, requests
    kwargs: dict[str, Any] = {"zone": "DE", "interval_s": 0.02, "gpus": "none", "log_dir": tmp_path / "log"}
    if given == "argument":
        kwargs["electricitymaps_token"] = TOKEN
    else:
        monkeypatch.setenv("CARBON_ELECTRICITYMAPS_TOKEN", TOKEN)
    texts: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = Tracker(**kwargs)
        texts += [
            repr(tracker),
            repr(tracker.config),
            str(tracker.config.public()),
            repr(tracker.intensity_source),
        ]
        texts.append(repr(tracker.intensity_source.provider))
        tracker.start()
        assert tracker.intensity_source.wait_for_refresh(8, timeout_s=30)  # every kind of answer once
        deadline = time.monotonic() + 10
        while tracker.snapshot().intensity_source != "electricitymaps:DE" and time.monotonic() < deadline:
            time.sleep(0.02)
        snap = tracker.snapshot()
        final = tracker.stop()
    assert len(set(_seen)) == 1 and TOKEN in _seen, "the token was sent (and echoed back)"
    assert final.intensity_source == "electricitymaps:DE"

    texts += [repr(snap), repr(final), str(final.to_metrics()), *final.warnings]
    texts += [str(w.message) for w in caught]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    texts += [Path(p).read_text() for p in (tmp_path / "log").glob("*.jsonl")]
    from carbon_core import report, summary
    from carbon_core.runlog import load

    texts.append(summary.render(final))
    (log_path,) = (tmp_path / "log").glob("*.jsonl")
    run = load(log_path)
    texts += [report.text(run), str(report.as_json(run))]
    out = capsys.readouterr()
    texts += [out.out, out.err]
    assert len(final.warnings) >= 4, final.warnings  # the faults were reported...
    leaked = {form: t[:300] for t in texts for form in _leaks(t)}
    assert not leaked, f"token leaked: {leaked}"  # ...without the token


@pytest.mark.parametrize(
    "bad",
    [{"electricitymaps_token": TOKEN + " with space"}, {"electricitymaps_token": TOKEN + "\u00e9"},
     {"electricitymaps_token": TOKEN, "zone": "NOT-A-ZONE-ANYWHERE", "pue": 0.1},
     {"electricitymaps_token": TOKEN, "interval_s": -1}],
    ids=["space", "non-ascii", "bad-zone-and-pue", "bad-interval"],
)  # fmt: skip
def test_construction_errors_never_show_the_token(
    bad: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError) as info:
        Tracker(**bad)
    assert not _leaks(str(info.value)) and not _leaks(repr(info.value))
    monkeypatch.setenv("CARBON_ELECTRICITYMAPS_TOKEN", bad.pop("electricitymaps_token"))
    if bad:
        with pytest.raises(ValueError) as info:
            Tracker(**bad)
    else:
        with pytest.raises(ValueError) as info:
            Tracker()
    assert not _leaks(str(info.value))


def test_lightning_callback_state_and_summary_hold_no_token(
    server: FakeGridServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from carbon_lightning import CarbonCallback

    cb = CarbonCallback(electricitymaps_token=TOKEN, zone="DE", interval_s=0.02, gpus="none", log_dir="off")
    cb.session.begin()
    time.sleep(0.1)
    state = cb.state_dict()
    cb.session.finish(main=True)
    out = capsys.readouterr()
    texts = [repr(cb), str(state), str(cb.session.public_options()), out.out, out.err, repr(cb.final)]
    assert not [t for t in texts if _leaks(t)]


@pytest.mark.parametrize("status", [404, 500, 200])
@pytest.mark.parametrize("pad", [0, 140, 150, 155, 159, 1995])
def test_error_text_cut_never_leaves_part_of_the_token(
    status: int, pad: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Error bodies are shortened for the message: the cut must not leave a token prefix."""
    from carbon_core.intensity.providers import ProviderError
    from carbon_core.intensity.providers.electricitymaps import ElectricityMaps

    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.0, 0.0))
    with FakeGridServer() as s:
        filler = " " * pad if pad > 1000 else "x" * pad  # spaces are collapsed after the 2000-byte cut
        s.em(Reply(status, filler + TOKEN + " and more text", content_type="text/plain"))
        provider = ElectricityMaps(TOKEN, base_url=s.url + "/em/v3", timeout_s=1.0)
        with pytest.raises(ProviderError) as info:
            provider.fetch("DE")
        provider.close()
    message = str(info.value)
    assert not _leaks(message) and TOKEN[:6] not in message, message
