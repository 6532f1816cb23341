"""``carbon-core when`` and ``carbon-core run --greenest-within``, end to end against a local
server speaking the UK Carbon Intensity API (127.0.0.1 only), with a forecast whose best
window is known. Time is a clock the test moves (:data:`carbon_core.schedule.CLOCK`): the
wait is counted, never slept through.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_grid_server import (
    UK_NATIONAL,
    UK_WINDOW,
    FakeGridServer,
    Reply,
    Request,
    uk_error,
    uk_national,
    uk_window,
)

from carbon_core import cli, schedule
from carbon_core.intensity import forecasts
from carbon_core.intensity.providers import http as provider_http

_real_getaddrinfo = socket.getaddrinfo
NOW = 1789992600.0  # 2026-09-21T12:10:00Z
HALF = 1800.0
HOUR = 3600.0
START = NOW // HALF * HALF  # 12:00Z, the current half hour


class FakeClock(schedule.Clock):
    """Epoch seconds that move only when something sleeps."""

    def __init__(self, now: float, interrupt_after: int | None = None) -> None:
        self.t = now
        self.slept: list[float] = []
        self.interrupt_after = interrupt_after

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        if self.interrupt_after is not None and len(self.slept) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.slept.append(seconds)
        self.t += seconds


def forecast_rows(
    low_from_h: float, low_h: float, low: float = 60.0, high: float = 240.0
) -> list[tuple[float, float]]:
    """48 h of half hours from 12:00Z: ``high``, and ``low`` for ``low_h`` hours from
    12:00Z + ``low_from_h``."""
    lo, hi = START + low_from_h * HOUR, START + (low_from_h + low_h) * HOUR
    return [(START + i * HALF, low if lo <= START + i * HALF < hi else high) for i in range(96)]


@pytest.fixture(autouse=True)
def setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGridServer]:
    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "localhost", b"127.0.0.1"):
            return _real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test: no resolving {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.02, 0.05))
    monkeypatch.chdir(tmp_path)
    forecasts.clear_cache()
    with FakeGridServer() as server:
        for k, v in server.env(CARBON_TIMEOUT_S="0.3").items():
            monkeypatch.setenv(k, v)
        yield server
    forecasts.clear_cache()


@pytest.fixture
def server(setting: FakeGridServer) -> FakeGridServer:
    return setting


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock(NOW)
    monkeypatch.setattr(schedule, "CLOCK", c)
    return c


# -- when ------------------------------------------------------------------------------------


def test_when_json_finds_the_known_best_window(
    server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(forecast_rows(9, 6))))
    assert cli.main(["when", "--zone", "GB", "--duration", "6h", "--within", "24h", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["start"] == "2026-09-21T21:00:00+00:00"  # 12:00Z + 9 h, with its offset
    assert out["intensity_then_gco2eq_per_kwh"] == 60.0
    assert out["intensity_now_gco2eq_per_kwh"] == 240.0
    assert out["saving_percent"] == 75.0
    assert out["source"] == "uk-carbon-intensity:GB:direct" and out["zone"] == "GB"
    assert server.requests[0].path == "/uk/intensity/2026-09-21T12:11Z/fw48h"


def test_when_text(server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(forecast_rows(3, 2))))
    assert cli.main(["when", "--zone", "GB", "--duration", "2h"]) == 0
    out = capsys.readouterr().out
    assert "best start  2026-09-21T15:00:00+00:00 (in 2.8 h)" in out
    assert "60.0 gCO2eq/kWh over the job then; 240.0 if started now" in out
    assert "saving      75.0 %" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--zone", "GB", "--duration", "6x"], ["--duration 6x", "expected a length"]),
        (["--zone", "GB", "--duration", "6h", "--within=-2h"], ["--within -2h", "in the past"]),
        (
            ["--zone", "GB", "--duration", "6h", "--within", "2026-09-20T10:00+00:00"],
            ["--within", "in the past"],
        ),
        (["--zone", "GB", "--duration", "6h", "--within", "4h"], ["--within 4 h", "shorter than --duration"]),
        (["--zone", "GB", "--duration", "60h", "--within", "72h"], ["--duration 60 h", "forecast horizon"]),
        (["--zone", "Atlantis", "--duration", "1h"], ["--zone Atlantis", "not a zone"]),
        (
            ["--zone", "JP", "--duration", "1h"],
            ["--zone JP", "no provider publishes a forecast", "GB-1..GB-17", "DK-DK1"],
        ),
    ],
)
def test_when_bad_input_exits_2_naming_option_and_value(
    server: FakeGridServer,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    words: list[str],
) -> None:
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(forecast_rows(9, 6))))
    assert cli.main(["when", *args]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_when_provider_failure_exits_1(
    server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    server.route_prefix(UK_WINDOW, Reply(500, uk_error(500, "Requested resource not found.")))
    assert cli.main(["when", "--zone", "GB", "--duration", "1h"]) == 1
    assert "no forecast: UK Carbon Intensity API: HTTP 500" in capsys.readouterr().err


# -- run --greenest-within -------------------------------------------------------------------


def writer(path: Path) -> list[str]:
    return [sys.executable, "-c", f"open({str(path)!r}, 'w').write('ran')"]


RUN = ["run", "--gpus", "none", "--interval", "0.05", "--log-dir", "off", "--zone", "GB"]


def test_dry_run_prints_the_plan_and_runs_nothing(
    server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(forecast_rows(5, 6))))
    flag = tmp_path / "ran"
    code = cli.main(
        [*RUN, "--greenest-within", "12h", "--duration", "6h", "--dry-run", "--json", "--", *writer(flag)]
    )
    assert code == 0 and not flag.exists()
    assert json.loads(capsys.readouterr().out)["start"] == "2026-09-21T17:00:00+00:00"
    assert clock.slept == []


def test_run_waits_for_the_greenest_start_then_runs(
    server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(forecast_rows(5, 6))))
    flag = tmp_path / "ran"
    assert cli.main([*RUN, "--greenest-within", "12h", "--duration", "6h", "--", *writer(flag)]) == 0
    assert flag.read_text() == "ran"
    assert clock.t == START + 5 * HOUR  # it started at the best start: not earlier, never later
    assert sum(clock.slept) == pytest.approx(START + 5 * HOUR - NOW)
    err = capsys.readouterr().err
    assert "waiting until 2026-09-21T17:00:00+00:00 for the greenest start" in err  # one line: no terminal
    # the forecast was looked up again while waiting (every 15 min), the plan kept
    assert (
        server.count() == len([t for t in range(1, 20) if t * schedule.REPLAN_S < START + 5 * HOUR - NOW]) + 1
    )


def test_a_better_forecast_while_waiting_moves_the_start(
    server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first, better = uk_window(forecast_rows(5, 6)), uk_window(forecast_rows(3, 6, low=30.0))
    server.route_prefix(UK_WINDOW, [Reply(body=first), Reply(body=better)])
    flag = tmp_path / "ran"
    assert cli.main([*RUN, "--greenest-within", "12h", "--duration", "6h", "--", *writer(flag)]) == 0
    assert clock.t == START + 3 * HOUR and flag.exists()
    assert "now starting at 2026-09-21T15:00:00+00:00" in capsys.readouterr().err


def test_provider_failing_while_waiting_starts_as_planned_with_one_warning(
    server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.route_prefix(UK_WINDOW, [Reply(body=uk_window(forecast_rows(2, 1))), Reply(500, uk_error(500))])
    flag = tmp_path / "ran"
    assert cli.main([*RUN, "--greenest-within", "6h", "--duration", "1h", "--", *writer(flag)]) == 0
    assert clock.t == START + 2 * HOUR and flag.exists()  # the planned start, never later
    err = capsys.readouterr().err
    assert len(re.findall("forecast look-up failed while waiting", err)) == 1, err
    assert "starting at 2026-09-21T14:00:00+00:00 as planned" in err


def test_no_forecast_at_all_starts_now_with_one_warning(
    server: FakeGridServer, clock: FakeClock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.route_prefix(UK_WINDOW, Reply(mode="reset"))
    flag = tmp_path / "ran"
    assert cli.main([*RUN, "--greenest-within", "6h", "--duration", "1h", "--", *writer(flag)]) == 0
    assert flag.exists() and clock.slept == []
    assert "warning: no forecast" in capsys.readouterr().err


def test_ctrl_c_while_waiting_cancels_cleanly(
    server: FakeGridServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(schedule, "CLOCK", FakeClock(NOW, interrupt_after=3))
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(forecast_rows(5, 6))))
    flag = tmp_path / "ran"
    assert cli.main([*RUN, "--greenest-within", "12h", "--duration", "6h", "--", *writer(flag)]) == 130
    assert not flag.exists()
    assert "cancelled while waiting for the greenest start; nothing was run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--greenest-within", "3h", "--duration", "6h"],
            ["--greenest-within 3 h", "shorter than --duration"],
        ),
        (["--greenest-within", "12h"], ["--duration is needed"]),
        (["--greenest-within", "12h", "--duration", "forever"], ["--duration forever"]),
    ],
)
def test_run_greenest_bad_input_exits_2(
    server: FakeGridServer,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    words: list[str],
) -> None:
    server.route_prefix(UK_WINDOW, Reply(body=uk_window(forecast_rows(5, 6))))
    flag = tmp_path / "ran"
    try:
        code = cli.main([*RUN, *args, "--", *writer(flag)])
    except SystemExit as exc:  # argparse's usage error
        code = int(str(exc.code))
    assert code == 2 and not flag.exists()
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


# -- hindsight ---------------------------------------------------------------------------------


def test_run_summary_says_what_the_cleanest_start_of_the_last_day_would_have_emitted(
    server: FakeGridServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The history is built around the window the client asks for (the run's real time): a
    clean 2-hour block 10 hours before its end, 50 g against 300 g elsewhere."""

    def past_day(req: Request) -> Reply:
        from datetime import datetime, timezone

        start, end = (
            datetime.strptime(x, "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc).timestamp()
            for x in req.path.split("/")[3:5]
        )
        first = start // HALF * HALF
        n = int((end - first) // HALF) + 1
        low = (end - 12 * HOUR, end - 10 * HOUR)
        rows = [(first + i * HALF, 50.0 if low[0] <= first + i * HALF < low[1] else 300.0) for i in range(n)]
        return Reply(body=uk_window(rows))

    server.route_prefix(UK_WINDOW, past_day)
    server.uk(Reply(body=uk_national(300)))
    logs = str(tmp_path / "logs")
    work = [sys.executable, "-c", "sum(i*i for i in range(300000))"]
    options = ["--gpus", "none", "--interval", "0.05", "--log-dir", logs, "--zone", "GB", "--live", "--json"]
    code = cli.main(["run", *options, "--", *work])
    assert code == 0
    captured = capsys.readouterr()
    found = json.loads(captured.out.strip().splitlines()[-1])["hindsight"]
    assert found["source"] == "uk-carbon-intensity:GB:direct"
    assert found["best_co2eq_g"] == pytest.approx(found["ran_co2eq_g"] * 50 / 300)
    assert found["saving_percent"] == pytest.approx(83.3, abs=0.1)
    assert "in hindsight: starting at" in captured.err and "(83 % less)" in captured.err
    assert any(r.path.startswith(UK_WINDOW) for r in server.requests)
    assert UK_NATIONAL in {r.path for r in server.requests}
