"""carbon_lightning.CarbonCallback in real (tiny, CPU) Lightning runs, both namespaces."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from carbon_lightning import CarbonCallback
from support import wait_for
from tb_events import assert_beside, assert_cumulative, find, scalars
from torch.utils.data import DataLoader, TensorDataset

NAMESPACES = ["lightning.pytorch", "pytorch_lightning"]
FAST = {"interval_s": 0.02, "log_dir": "off", "intensity": 1000.0}


def _ns(name: str) -> Any:
    return importlib.import_module(name)


def _module(ns: Any, fail_at: int = -1, sleep_s: float = 0.0) -> Any:
    class Tiny(ns.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(32, 1)

        def training_step(self, batch: Any, idx: int) -> torch.Tensor:
            if self.global_step == fail_at:
                raise RuntimeError("boom")
            time.sleep(sleep_s)  # lets the sampler thread run on time (steps hold the GIL)
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Tiny()


def _data(n: int = 4096) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(n, 32, generator=g), torch.randn(n, 1, generator=g))
    return DataLoader(data, batch_size=4)


def _fit(
    callbacks: Any,
    max_steps: int,
    ns: Any = None,
    ckpt_path: Any = None,
    sleep_s: float = 0.0,
    **kw: Any,
) -> Any:
    ns = ns or _ns("lightning.pytorch")
    options = {"logger": False, "enable_checkpointing": False, **kw}
    trainer = ns.Trainer(
        max_steps=max_steps,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **options,
    )
    trainer.fit(_module(ns, sleep_s=sleep_s), _data(), ckpt_path=ckpt_path)
    return trainer


@pytest.mark.parametrize("as_list", [True, False], ids=["list", "single"])
@pytest.mark.parametrize("namespace", NAMESPACES)
def test_tensorboard_events_hold_carbon_beside_loss(
    tmp_path: Path, namespace: str, as_list: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = _ns(namespace)
    cb = CarbonCallback(**FAST)
    assert isinstance(cb, ns.Callback)
    logger = ns.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    _fit([cb] if as_list else cb, 80, ns, logger=logger, log_every_n_steps=5)

    tags = scalars(tmp_path)
    for name in ("carbon/co2eq_kg", "carbon/energy_kwh"):
        points = find(tags, name)
        assert_cumulative(points)
        assert_beside(points, find(tags, "loss"))
    assert cb.final is not None and cb.final.co2eq_kg >= points[-1][1] > 0
    assert capsys.readouterr().out.count("carbon-core:") == 1, "summary printed once"


def test_tiny_budget_stops_well_before_max_steps() -> None:
    cb = CarbonCallback(**FAST, budget_kg=1e-12)
    trainer = _fit([cb], 1000)
    assert trainer.global_step < 200
    assert cb.tracker.should_stop.stop and "spent" in cb.tracker.should_stop.reason


def test_predicted_stops_before_spent() -> None:
    # No timed assertion: a first run of the same length measures what the whole run
    # emits; the budget is a fraction of it, so "spent" trips part-way through, while the
    # forecast exceeds it as soon as its warm-up (2 % of the run, 2 intervals) is over.
    max_steps = 250
    calibration = CarbonCallback(**FAST)
    _fit([calibration], max_steps, sleep_s=0.002)
    budget = calibration.final.co2eq_kg * 0.3

    steps = {}
    for stop_on in ("spent", "predicted"):
        cb = CarbonCallback(**FAST, budget_kg=budget, stop_on=stop_on)
        steps[stop_on] = _fit([cb], max_steps, sleep_s=0.002).global_step
        assert stop_on in cb.tracker.should_stop.reason
    assert steps["predicted"] < steps["spent"] < max_steps, steps
    print("steps at stop", steps)


def test_resumed_run_keeps_counting(tmp_path: Path) -> None:
    ns = _ns("lightning.pytorch")
    first = CarbonCallback(**FAST)

    class Measured(ns.Callback):  # the checkpoint is taken once the tracker has measured
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 20:
                assert wait_for(lambda: first.tracker.intervals >= 3), "the sampler never sampled"

    checkpoint = ns.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    _fit([first, Measured(), checkpoint], 20, enable_checkpointing=True)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)["callbacks"]["CarbonCallback"]
    assert saved["co2eq_kg"] > 0 and saved["duration_s"] > 0

    # resumed with nothing left to train: the totals are the checkpoint's (without the
    # carry they would be the few milliseconds this part measured); a bound on wall time
    # instead would race with the trainer's own start-up
    idle = CarbonCallback(**FAST)
    _fit([idle], 20, ckpt_path=tmp_path / "last.ckpt")
    assert idle.final.co2eq_kg >= saved["co2eq_kg"]
    assert idle.final.duration_s >= saved["duration_s"]

    second = CarbonCallback(**FAST)
    trainer = _fit([second], 40, ckpt_path=tmp_path / "last.ckpt")
    assert trainer.global_step == 40
    assert second.final.co2eq_kg > saved["co2eq_kg"]
    assert second.final.duration_s > saved["duration_s"]


def test_exception_still_yields_final_snapshot() -> None:
    ns = _ns("lightning.pytorch")
    cb = CarbonCallback(**FAST)
    trainer = ns.Trainer(
        max_steps=50,
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(_module(ns, fail_at=5), _data())
    assert not cb.session.running
    assert cb.final is not None and cb.final.energy_kwh > 0
    assert cb.snapshot() is cb.final


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"pue": 0.5}, "pue"),
        ({"budget_kg": -1}, "budget_kg"),
        ({"stop_on": "never"}, "stop_on"),
        ({"interval_s": 0}, "interval_s"),
        ({"budget": 1.0}, "budget"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CarbonCallback(**kwargs)
