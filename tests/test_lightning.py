"""carbon_lightning.CarbonCallback in real (tiny, CPU) Lightning runs, both namespaces."""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Any, Optional

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


# -- issue 18: what a user of each Lightning shape looks at ----------------------------------


def _tb_points(root: Path, name: str) -> list[tuple[int, float]]:
    return find(scalars(root), name)


def test_every_logged_loss_point_has_carbon_before_the_first_interval(tmp_path: Path) -> None:
    # the sampler's first interval (60 s) never ends in this run: the figures at the first
    # logging step come from the one reading taken then, and every loss point has its carbon
    ns = _ns("lightning.pytorch")
    cb = CarbonCallback(**{**FAST, "interval_s": 60.0})
    logger = ns.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    _fit([cb], 24, logger=logger, log_every_n_steps=3)
    loss, carbon = _tb_points(tmp_path, "loss"), _tb_points(tmp_path, "carbon/co2eq_kg")
    assert {s for s, _ in loss} <= {s for s, _ in carbon}, (loss, carbon)
    assert_cumulative(carbon)
    assert cb.tracker.intervals == 2  # the reading at the first logging step, and the final one


def test_one_value_per_step_when_a_logging_step_ends_an_epoch(tmp_path: Path) -> None:
    # 10 batches an epoch, logs every 5 steps: each epoch's last batch is a logging step
    ns = _ns("lightning.pytorch")
    cb = CarbonCallback(**FAST)
    logger = ns.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    trainer = ns.Trainer(
        max_epochs=3,
        limit_train_batches=10,
        log_every_n_steps=5,
        callbacks=[cb],
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_module(ns), _data())
    for name in ("carbon/co2eq_kg", "carbon/energy_kwh"):
        steps = [s for s, _ in _tb_points(tmp_path, name)]
        assert len(steps) == len(set(steps)) >= 6, steps


def test_resumed_run_logs_carbon_from_its_first_logging_step(tmp_path: Path) -> None:
    ns = _ns("lightning.pytorch")
    first = CarbonCallback(**{**FAST, "interval_s": 60.0})
    checkpoint = ns.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _fit([first, checkpoint], 12, enable_checkpointing=True)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["callbacks"]["CarbonCallback"]

    second = CarbonCallback(**{**FAST, "interval_s": 60.0})
    logger = ns.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    _fit([second], 24, ckpt_path=tmp_path / "ckpt" / "last.ckpt", logger=logger, log_every_n_steps=3)
    loss, carbon = _tb_points(tmp_path, "loss"), _tb_points(tmp_path, "carbon/co2eq_kg")
    assert loss and {s for s, _ in loss} <= {s for s, _ in carbon}, (loss, carbon)
    assert min(v for _, v in carbon) > saved["co2eq_kg"] > 0  # the carried totals, never a dip


class _Gan(_ns("lightning.pytorch").LightningModule):  # type: ignore[misc]
    """The GAN template's shape: manual optimisation, two optimisers stepped every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator, self.discriminator = torch.nn.Linear(8, 32), torch.nn.Linear(32, 1)

    def training_step(self, batch: Any, idx: int) -> None:
        x, _ = batch
        opt_g, opt_d = self.optimizers()
        fake = self.generator(torch.randn(x.shape[0], 8))
        g_loss = torch.nn.functional.softplus(-self.discriminator(fake)).mean()
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        real, fake = self.discriminator(x), self.discriminator(fake.detach())
        d_loss = (torch.nn.functional.softplus(-real) + torch.nn.functional.softplus(fake)).mean()
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.log_dict({"g_loss": g_loss, "d_loss": d_loss})

    def configure_optimizers(self) -> Any:
        return [
            torch.optim.Adam(self.generator.parameters()),
            torch.optim.Adam(self.discriminator.parameters()),
        ]


def test_forecast_with_two_optimisers_matches_the_final_total(tmp_path: Path, monkeypatch: Any) -> None:
    # The hardware is a fake RAPL counter that this test advances by the same energy every
    # batch, so the run's true total is known: at a third of the batches the forecast must
    # be that total. Counting progress in optimiser steps (two a batch) would halve it.
    from powercap import FakePowercap

    tree = FakePowercap(tmp_path / "sys", sockets=1, dram=False)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tree.root))
    ns = _ns("lightning.pytorch")
    cb = CarbonCallback(interval_s=0.01, intensity=1000.0, log_dir="off", meters=["rapl"], gpus="none")
    batches, per_batch_uj = 60, 100_000  # 0.1 J a batch
    seen: dict[str, Any] = {}

    class Hardware(ns.Callback):  # listed after the carbon callback: progress is already set
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            tree.add("package-0", per_batch_uj)
            done = trainer.fit_loop.epoch_loop.total_batch_idx + 1
            if done == batches // 3:  # a reading taken after this batch's energy and progress
                later = cb.tracker.intervals + 2
                assert wait_for(lambda: cb.tracker.intervals >= later), "the sampler never sampled"
                seen.update(snap=cb.tracker.snapshot(), global_step=trainer.global_step)

    trainer = ns.Trainer(
        max_epochs=2,
        limit_train_batches=batches // 2,
        callbacks=[cb, Hardware()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_Gan(), _data())
    assert trainer.global_step == 2 * batches  # two optimiser steps a batch
    snap, final = seen["snap"], cb.final
    assert seen["global_step"] == 2 * batches // 3
    assert snap.progress == pytest.approx(1 / 3)
    assert final.co2eq_kg == pytest.approx(batches * per_batch_uj / 3.6e12)  # J -> kWh x 1 kg/kWh
    assert snap.predicted_co2eq_kg == pytest.approx(final.co2eq_kg)


def test_budget_stop_is_said_once_in_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    cb = CarbonCallback(**FAST, budget_kg=1e-9)
    trainer = _fit([cb], 1000)
    out = capsys.readouterr()
    assert out.out.count("carbon-core:") == 1
    line = next(ln.strip() for ln in out.out.splitlines() if "stopped by the carbon budget" in ln)
    assert line == cb.stopped, (line, cb.stopped)
    assert line.startswith(f"training stopped by the carbon budget at step {trainer.global_step}: ")
    assert line.endswith("CO2eq spent >= budget 0.00100 mg"), line  # the summary's units
    assert "e-" not in line and "kg" not in line
    assert "stopped by the carbon budget" not in out.err  # said once, in the summary


def test_evaluate_only_and_predict_only_runs_say_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    # a zone no bundled table knows (allowed with a token) warns when the tracker is built:
    # said when training starts, never for a run the callback does not measure
    ns = _ns("lightning.pytorch")
    module = _module(ns)
    module.validation_step = lambda batch, batch_idx: module.log("val", module.layer(batch[0]).sum())
    module.predict_step = lambda batch, batch_idx: module.layer(batch[0])
    monkeypatch.setenv("CARBON_ELECTRICITYMAPS_URL", "http://127.0.0.1:9")  # never asked: nothing runs
    caplog.set_level(logging.INFO, logger="carbon_core")
    cb = CarbonCallback(interval_s=0.02, log_dir="off", zone="XX-UNKNOWN", electricitymaps_token="t0ken")
    trainer = ns.Trainer(
        callbacks=[cb],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=3,
    )
    trainer.validate(module, _data(64))
    trainer.predict(module, _data(64))
    out = capsys.readouterr()
    assert "carbon" not in out.out + out.err and not [
        r for r in caplog.records if r.name.startswith("carbon")
    ]
    assert cb.final is None


def test_start_up_warnings_are_said_once_not_repeated_in_the_summary(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CARBON_ELECTRICITYMAPS_URL", "http://127.0.0.1:9")  # refused: never leaves
    caplog.set_level(logging.WARNING, logger="carbon_core")
    cb = CarbonCallback(interval_s=0.02, log_dir="off", zone="XX-UNKNOWN", electricitymaps_token="t0ken")
    _fit([cb], 10)
    said = "no bundled figure for zone XX-UNKNOWN"
    out = capsys.readouterr()
    logged = [r.getMessage() for r in caplog.records if said in r.getMessage()]
    assert len(logged) == 1 and said not in out.out, out.out
    assert said in cb.final.warnings[0]  # still in the final snapshot
    assert "logged when measuring began (logger carbon_core), not repeated here" in out.out


def test_configuration_tools_see_every_tracker_option_typed() -> None:
    """What jsonargparse (LightningCLI) reads, the signature, and Hydra's instantiate (which
    passes lists as OmegaConf ListConfig); the CLI itself: tests/test_scripts_lightning.py."""
    import inspect

    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from carbon_core.config import OPTIONS

    params = inspect.signature(CarbonCallback).parameters
    assert list(params) == [o.name for o in OPTIONS if o.argument]
    assert all(p.kind is p.KEYWORD_ONLY and p.default is None for p in params.values())
    assert params["zone"].annotation == Optional[str] and params["budget_kg"].annotation == Optional[float]

    config = OmegaConf.create(
        {
            "_target_": "carbon_lightning.CarbonCallback",
            "zone": "FR",
            "meters": ["cpu-estimate", "ram-estimate"],
        }
    )
    cb = instantiate(config)
    assert isinstance(cb, CarbonCallback) and cb.tracker.intensity_source.zone == "FR"
    assert cb.tracker.config.meters == ("cpu-estimate", "ram-estimate")
    with pytest.raises(InstantiationException, match=r"pue=0\.5"):  # Hydra's wrapping of the ValueError
        instantiate(OmegaConf.create({"_target_": "carbon_lightning.CarbonCallback", "pue": 0.5}))


# -- issue 19: per unit and per phase, as TensorBoard shows them ------------------------------


def _implied_units(energy: list[tuple[int, float]], per_unit: list[tuple[int, float]]) -> list[int]:
    """The units each logged per-unit figure divides the logged energy by (both float32 in TB)."""
    joules = {s: v * 3.6e6 for s, v in energy}
    return [round(joules[s] / v) for s, v in per_unit if s in joules and v > 0]


def _phases_add_up(tags: dict[str, list[tuple[int, float]]], prefix: str = "") -> int:
    """At every step the energy is logged, the logged phases add up to it (within 1 %); returns
    how many steps were checked."""
    energy = dict(tags[f"{prefix}carbon/energy_kwh"])
    by_step: dict[int, float] = {}
    for tag, points in tags.items():
        if tag.startswith(f"{prefix}carbon/phase/"):
            for step, value in points:
                by_step[step] = by_step.get(step, 0.0) + value
    for step, total in by_step.items():
        assert total == pytest.approx(energy[step], rel=0.01), (step, total, energy[step])
    return len(by_step)


def test_per_sample_and_phase_metrics_in_tensorboard_with_validation_and_checkpoints(tmp_path: Path) -> None:
    ns = _ns("lightning.pytorch")
    module = _module(ns, sleep_s=0.002)
    module.validation_step = lambda batch, batch_idx: module.log("val_loss", module.layer(batch[0]).sum())
    cb = CarbonCallback(**FAST)
    checkpoint = ns.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=10, save_top_k=-1
    )
    trainer = ns.Trainer(
        max_steps=40,
        val_check_interval=10,
        limit_val_batches=3,
        log_every_n_steps=5,
        callbacks=[cb, checkpoint],
        logger=ns.loggers.TensorBoardLogger(str(tmp_path), name="tb"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, _data(82), val_dataloaders=_data(16))  # 21 batches an epoch, the last of 2
    final = cb.final
    assert final.samples == 82 + 19 * 4  # the real batch sizes: epoch 1 whole, 19 batches of epoch 2
    assert set(final.phases) == {"train", "validation", "checkpoint", "other"}
    assert all(p.energy_kwh > 0 for p in final.phases.values()), final.phases
    assert sum(p.energy_kwh for p in final.phases.values()) == pytest.approx(final.energy_kwh, rel=1e-9)
    assert len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 4

    tags = scalars(tmp_path)
    energy = find(tags, "carbon/energy_kwh")
    for name in ("carbon/energy_j_per_sample", "carbon/co2eq_g_per_sample"):
        assert_beside(find(tags, name), find(tags, "loss"))
    # each per-sample figure is the energy logged at its step over the samples seen by then
    counts = {min(82, 4 * b) for b in range(1, 22)} | {82 + 4 * b for b in range(1, 20)}
    implied = _implied_units(energy, find(tags, "carbon/energy_j_per_sample"))
    assert implied and set(implied) <= counts, implied
    for name in ("train", "validation", "checkpoint", "other"):
        assert find(tags, f"carbon/phase/{name}_kwh"), name
    assert _phases_add_up(tags) >= 5
