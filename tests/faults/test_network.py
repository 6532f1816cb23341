"""Network faults: every live provider against a local server that misbehaves.

A real Lightning run (``CarbonCallback``, live look-ups pointed at tests/fake_grid_server)
gets one good answer, then the fault. Training finishes every time, the final figure is
the last good live value, the fault costs exactly one warning however often it repeats,
and the training thread never touches the network: every name lookup and every
``socket.connect`` is recorded with the thread that made it (an audit hook, nothing in
the client is patched). The step time is compared, loosely, with a run without live
look-ups. A second, faster matrix (a bare Tracker, no Lightning) has the fault from the
first request: the figure is then the bundled table's.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from fake_grid_server import (
    EDS_CO2EMIS,
    EM_INVALID_TOKEN,
    EM_LATEST,
    UK_NATIONAL,
    FakeGridServer,
    Reply,
    Request,
    eds_co2emis,
    em_latest,
    uk_error,
    uk_national,
)
from fault_net import FAKE_HOST, UNRESOLVABLE_HOST, NetGuard
from torch.utils.data import DataLoader, TensorDataset

from carbon_core import Tracker

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]

TOKEN = "em-FAULT-t0ken-9f3a7c"
GOOD = 123.0
STEP_SLEEP_S = 0.004


@dataclass(frozen=True)
class Provider:
    name: str
    zone: str
    route: str
    url_env: str
    prefix: str
    good: Callable[[float], Any]
    shape_error: Any
    options: dict[str, Any]

    def source(self) -> str:  # the UK and Danish services publish direct emissions: named
        return f"{self.name}:{self.zone}" + ("" if self.name == "electricitymaps" else ":direct")


PROVIDERS = {
    "electricitymaps": Provider(
        "electricitymaps", "DE", EM_LATEST, "CARBON_ELECTRICITYMAPS_URL", "/em/v3",
        lambda v: em_latest(v, zone="DE"), {"zone": "DE", "data": []},
        {"zone": "DE", "electricitymaps_token": TOKEN},
    ),
    "uk-carbon-intensity": Provider(
        "uk-carbon-intensity", "GB", UK_NATIONAL, "CARBON_UK_URL", "/uk",
        lambda v: uk_national(v), {"data": {"intensity": 5}},
        {"zone": "GB", "live": True},
    ),
    "energidataservice": Provider(
        "energidataservice", "DK-DK1", EDS_CO2EMIS, "CARBON_ENERGIDATASERVICE_URL", "/eds",
        lambda v: eds_co2emis(v, area="DK1"), {"records": {"PriceArea": "DK1"}},
        {"zone": "DK-DK1", "live": True},
    ),
}  # fmt: skip


def _fault_reply(fault: str, p: Provider) -> Reply:
    error_body = EM_INVALID_TOKEN if p.name == "electricitymaps" else uk_error(500)
    return {
        "reset": Reply(mode="reset"),
        "hang": Reply(mode="hang"),
        "slow": Reply(body=p.good(GOOD + 1), delay_s=1.5),
        "trickle": Reply(body=p.good(GOOD + 1), mode="trickle", delay_s=0.1),
        "401": Reply(401, error_body),
        "403": Reply(403, error_body),
        "404": Reply(404, error_body),
        "429": Reply(429, {"error": "rate limited"}),
        "429-retry-after": Reply(429, {"error": "rate limited"}, headers={"Retry-After": "3600"}),
        "500": Reply(500, error_body),
        "503": Reply(503, "<html>down for maintenance</html>", content_type="text/html"),
        "non-json": Reply(200, "<html><body>Hello</body></html>", content_type="text/html"),
        "truncated": Reply(200, p.good(GOOD + 1), mode="truncated"),
        "wrong-shape": Reply(200, p.shape_error),
        "negative": Reply(200, p.good(-40)),
        "absurd": Reply(200, p.good(9.9e9)),
        "nan-string": Reply(200, p.good("NaN")),
        "huge": Reply(200, mode="huge", huge_bytes=4 << 20),
    }[fault]


SERVER_FAULTS = [
    "reset", "hang", "slow", "trickle", "401", "403", "404", "429", "429-retry-after", "500",
    "503", "non-json", "truncated", "wrong-shape", "negative", "absurd", "nan-string", "huge",
]  # fmt: skip
NETWORK_FAULTS = ["refused", "dns"]
ALL_FAULTS = SERVER_FAULTS + NETWORK_FAULTS


class Scenario:
    """The fake server for one provider: good answers until :meth:`break_` is called."""

    def __init__(self, server: FakeGridServer, p: Provider, fault: str, net: NetGuard) -> None:
        self.server, self.p, self.fault, self.net = server, p, fault, net
        self.broken = threading.Event()
        reply = _fault_reply(fault, p) if fault in SERVER_FAULTS else None

        def respond(req: Request) -> Reply:
            if self.broken.is_set() and reply is not None:
                return reply
            return Reply(body=p.good(GOOD))

        server.route(p.route, respond)

    def env(self) -> tuple[str, str]:
        host = FAKE_HOST if self.fault == "dns" else "127.0.0.1"
        return self.p.url_env, f"http://{host}:{self.server.port}{self.p.prefix}"

    def break_(self) -> None:
        if self.broken.is_set():
            return
        self.broken.set()
        if self.fault == "refused":
            self.server.close()
        elif self.fault == "dns":
            self.net.dns_ok = False


def _live_warnings(messages: Any) -> list[str]:
    return [m for m in messages if "live intensity" in m]


# -- the real Lightning run --------------------------------------------------------------


def _data() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(
        TensorDataset(torch.randn(4096, 8, generator=g), torch.randn(4096, 1, generator=g)), batch_size=8
    )


def _fit(
    callback: Any, until: Callable[[Any, int], bool], min_steps: int = 25, deadline_s: float = 20.0
) -> list[float]:
    """Train a tiny model until ``until(trainer, step)`` (checked, never waited on, after
    each step) and at least ``min_steps``; return the step times."""
    import lightning.pytorch as pl

    step_times: list[float] = []

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)

        def training_step(self, batch: Any, idx: int) -> torch.Tensor:
            time.sleep(STEP_SLEEP_S)  # a step that releases the GIL, like a GPU step
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.t0 = 0.0
            self.started = time.monotonic()

        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            step_times.append(time.perf_counter() - self.t0)
            step = trainer.global_step
            late = time.monotonic() - self.started > deadline_s
            if step >= min_steps and (until(trainer, step) or late):
                trainer.should_stop = True

    trainer = pl.Trainer(
        max_steps=100_000, callbacks=[callback, Clock()], accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(Tiny(), _data())
    assert trainer.state.finished
    return step_times


@pytest.fixture(scope="module")
def baseline_step_s() -> float:
    """Median step time of the same run without live look-ups."""
    from carbon_lightning import CarbonCallback

    cb = CarbonCallback(intensity=300.0, interval_s=0.05, log_dir="off", gpus="none")
    times = _fit(cb, lambda trainer, step: True, min_steps=60)
    return statistics.median(times[5:])


#: each fault once in a real Lightning run, the providers taking turns (every pair is in
#: the faster matrix below)
LIGHTNING_CASES = [(list(PROVIDERS)[i % len(PROVIDERS)], f) for i, f in enumerate(ALL_FAULTS)]


@pytest.mark.parametrize(("provider", "fault"), LIGHTNING_CASES)
def test_lightning_run_survives_provider_fault(
    provider: str, fault: str, server: FakeGridServer, net: NetGuard, fast_network: None,
    baseline_step_s: float, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from carbon_lightning import CarbonCallback

    p = PROVIDERS[provider]
    scenario = Scenario(server, p, fault, net)
    monkeypatch.setenv(*scenario.env())
    caplog.set_level(logging.WARNING, logger="carbon_core")
    cb = CarbonCallback(interval_s=0.05, log_dir="off", gpus="none", **p.options)
    state: dict[str, int] = {}

    def until(trainer: Any, step: int) -> bool:
        chain = cb.tracker.intensity_source
        rounds = chain.refresh_count  # a plain read: the training thread never waits
        if rounds >= 1 and chain.current().source == p.source():
            scenario.break_()  # the first good answer is in: now the fault
        if not _live_warnings(cb.tracker.faults.messages):
            return False
        state.setdefault("warned_at", rounds)
        if fault == "429-retry-after":  # the server asked for an hour's rest: no next round
            return True
        return rounds >= state["warned_at"] + 1  # one more failing round: still one warning

    net.recording = True
    steps = _fit(cb, until)
    net.recording = False

    final = cb.final
    assert final is not None, "training finished and the tracker stopped"
    assert "warned_at" in state, f"the fault was never reported: {cb.tracker.faults.messages}"
    # the figure falls back to the last good live value
    assert final.intensity_source == p.source()
    assert final.intensity_gco2eq_per_kwh == GOOD
    # one warning, however many rounds failed
    (warning,) = _live_warnings(final.warnings)
    assert p.zone in warning and "keeping the last live value" in warning
    logged = [r for r in caplog.records if "live intensity" in r.getMessage()]
    assert len(logged) == 1
    # the training thread never touched the network; the refresher did
    assert net.threads(), "the refresher made no request"
    assert net.threads() == {"carbon-core-intensity"}, net.lookups + net.connects
    # and the step time did not grow (loose: a shared CI machine is noisy)
    assert statistics.median(steps[5:]) < 3 * baseline_step_s + 0.005


# -- fault from the first request: the table figure ---------------------------------------


@pytest.mark.parametrize("fault", ALL_FAULTS)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_fault_from_the_start_falls_back_to_the_table(
    provider: str, fault: str, server: FakeGridServer, net: NetGuard, fast_network: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    p = PROVIDERS[provider]
    scenario = Scenario(server, p, fault, net)
    scenario.break_()
    monkeypatch.setenv(*scenario.env())
    broken_from_the_start(p, net)


def broken_from_the_start(p: Provider, net: NetGuard) -> str:
    """A tracker whose provider fails from its first look-up: the table figure throughout, one
    warning naming it, a stop that does not wait for the request, no look-up on the main
    thread. Returns the warning."""
    tracker = Tracker(interval_s=0.05, log_dir="off", gpus="none", **p.options)
    table = tracker.intensity_source.table
    net.recording = True
    tracker.start()
    try:
        assert tracker.intensity_source.wait_for_refresh(1, timeout_s=20)
        snap = tracker.snapshot()
    finally:
        t0 = time.monotonic()
        final = tracker.stop()
        stop_s = time.monotonic() - t0
    net.recording = False
    assert stop_s < 3.0, "stop() does not wait for a hanging request"
    for s in (snap, final):
        assert s.intensity_source == table.source and s.intensity_source.startswith("table:")
        assert s.intensity_gco2eq_per_kwh == table.gco2eq_per_kwh
    (warning,) = _live_warnings(final.warnings)
    assert f"using {table.source}" in warning
    assert "MainThread" not in net.threads()
    return warning


def test_unresolvable_host_from_the_start(
    net: NetGuard, fast_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base URL whose host name never resolves: one 'could not be resolved' warning."""
    monkeypatch.setenv("CARBON_UK_URL", f"http://{UNRESOLVABLE_HOST}/uk")
    net.recording = True
    with Tracker(zone="GB", live=True, interval_s=0.05, log_dir="off", gpus="none") as tracker:
        assert tracker.intensity_source.wait_for_refresh(2, timeout_s=20)
    (warning,) = _live_warnings(tracker.snapshot().warnings)
    assert "could not be resolved" in warning
    assert net.lookups and {name for name, _ in net.lookups} == {"carbon-core-intensity"}
    assert tracker.snapshot().intensity_source.startswith("table:country:GB")


def test_provider_recovers_after_fault(
    server: FakeGridServer, net: NetGuard, fast_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a fault the next good answer is used again (no restart needed)."""
    p = PROVIDERS["uk-carbon-intensity"]
    server.uk(
        [Reply(500, uk_error()), Reply(500, uk_error()), Reply(500, uk_error()), Reply(body=uk_national(77))]
    )
    monkeypatch.setenv(p.url_env, server.url + p.prefix)
    with Tracker(zone="GB", live=True, interval_s=0.05, log_dir="off", gpus="none") as tracker:
        assert tracker.intensity_source.wait_for_refresh(2, timeout_s=20)
        deadline = time.monotonic() + 10
        while tracker.snapshot().intensity_source != p.source() and time.monotonic() < deadline:
            time.sleep(0.02)  # the next sampler interval picks the live value up
        snap = tracker.snapshot()
    assert snap.intensity_gco2eq_per_kwh == 77.0 and snap.intensity_source == p.source()
    assert len(_live_warnings(snap.warnings)) == 1
