"""carbon_keras.CarbonCallback in real (tiny) Keras 3 runs on the torch backend."""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", "torch") != "torch":
    pytest.skip("keras was already imported with another backend", allow_module_level=True)
os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import keras
import numpy as np
from carbon_keras import CarbonCallback
from support import wait_for
from tb_events import assert_cumulative, scalars

FAST = {"interval_s": 0.02, "log_dir": "off", "intensity": 1000.0}
KEYS = ("carbon/co2eq_kg", "carbon/energy_kwh")


class Slow(keras.layers.Layer):
    """Identity that sleeps (the sampler thread runs on time) and can fail at a call."""

    def __init__(self, sleep_s: float = 0.0, fail_at: int = -1) -> None:
        super().__init__()
        self.sleep_s, self.fail_at, self.calls = sleep_s, fail_at, 0

    def call(self, x: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        time.sleep(self.sleep_s)
        return x


class Batches(keras.callbacks.Callback):
    """Records the batch logs it receives (listed after the carbon callback)."""

    async_safe = True

    def __init__(self) -> None:
        super().__init__()
        self.logs: list[dict[str, float]] = []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.logs.append(dict(logs or {}))


def _fit(callbacks: list[Any], epochs: int = 2, n: int = 256, validation: int = 0, **layer: Any) -> Any:
    rng = np.random.default_rng(0)
    x, y = rng.random((n, 16), dtype="float32"), rng.random((n, 1), dtype="float32")
    layers = [keras.Input((16,)), Slow(**layer), keras.layers.Dense(8), keras.layers.Dense(1)]
    model = keras.Sequential(layers)
    model.compile("sgd", "mse", jit_compile=False)
    val = (x[:validation], y[:validation]) if validation else None
    return model.fit(x, y, batch_size=8, epochs=epochs, callbacks=callbacks, verbose=0, validation_data=val)


def test_history_and_csv_hold_carbon_beside_loss(tmp_path: Path) -> None:
    cb, batches = CarbonCallback(**FAST), Batches()
    history = _fit([cb, keras.callbacks.CSVLogger(str(tmp_path / "log.csv")), batches], epochs=3)
    for key in KEYS:
        assert_cumulative(list(enumerate(history.history[key])))
        assert len(history.history[key]) == len(history.history["loss"]) == 3
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [float(r["carbon/co2eq_kg"]) for r in rows] == pytest.approx(history.history["carbon/co2eq_kg"])
    per_batch = [b["carbon/co2eq_kg"] for b in batches.logs if "carbon/co2eq_kg" in b]
    assert len(per_batch) > len(batches.logs) // 2 and "loss" in batches.logs[-1]
    assert per_batch == sorted(per_batch) and cb.final is not None


def test_moves_itself_before_csvlogger_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cb = CarbonCallback(**FAST)
    with caplog.at_level(logging.WARNING, logger="carbon_core"):
        _fit([keras.callbacks.CSVLogger(str(tmp_path / "log.csv")), cb], epochs=2)
    assert "not first" in caplog.text
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert all(float(r["carbon/co2eq_kg"]) > 0 for r in rows)


def test_async_dispatch_is_kept() -> None:
    callbacks = keras.callbacks.CallbackList([CarbonCallback(**FAST)], model=None)
    assert callbacks._async_train  # the callback does not force synchronous batch ends


def test_tiny_budget_stops_well_before_epochs() -> None:
    cb = CarbonCallback(**FAST, budget_kg=1e-12)
    history = _fit([cb], epochs=30)
    assert len(history.history["loss"]) <= 2
    assert "spent" in cb.tracker.should_stop.reason


def test_predicted_stops_before_spent() -> None:
    # no timed assertion: the budget is a fraction of what a first, full run emitted
    steps, n = {}, 1600  # 200 batches of 8
    calibration = CarbonCallback(**FAST)
    _fit([calibration], epochs=1, n=n, sleep_s=0.002)
    budget = calibration.final.co2eq_kg * 0.3
    for stop_on in ("spent", "predicted"):
        cb, batches = CarbonCallback(**FAST, budget_kg=budget, stop_on=stop_on), Batches()
        _fit([cb, batches], epochs=1, n=n, sleep_s=0.002)
        steps[stop_on] = len(batches.logs)
        assert stop_on in cb.tracker.should_stop.reason
    assert steps["predicted"] < steps["spent"] < n // 8, steps
    print("steps at stop", steps)


def test_exception_in_the_step_still_yields_final_snapshot() -> None:
    cb = CarbonCallback(**FAST)
    with pytest.raises(RuntimeError, match="boom"):
        _fit([cb], epochs=2, fail_at=12, sleep_s=0.005)
    assert not cb.session.running  # stopped by the guarded step, before anyone asked
    assert cb.final is not None and cb.final.energy_kwh > 0


def test_exception_elsewhere_ends_measuring_on_its_own() -> None:
    class Fails(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            raise ValueError("late")

    cb = CarbonCallback(**FAST)
    with pytest.raises(ValueError, match="late"):
        _fit([cb, Fails()], epochs=2)
    # nobody reads cb.final: the watch on fit's frame ends measuring (tests/faults/test_round2_callbacks.py)
    assert wait_for(lambda: cb.session.final is not None), "still measuring after fit died"
    assert not cb.session.running and cb.final is cb.session.final


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"pue": 0}, "pue"), ({"stop_on": "x"}, "stop_on"), ({"zones": "DE"}, "zones")]
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CarbonCallback(**kwargs)


PHASE_KEYS = tuple(f"carbon/phase/{name}_kwh" for name in ("train", "validation", "checkpoint", "other"))
UNIT_KEYS = ("carbon/energy_j_per_sample", "carbon/co2eq_g_per_sample")


@pytest.mark.tensorflow
def test_keras_tensorboard_events_hold_carbon(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    cb = CarbonCallback(**FAST)
    saver = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt" / "e{epoch}.keras"))
    _fit(
        [cb, saver, keras.callbacks.TensorBoard(str(tmp_path / "tb"), update_freq=4)],
        epochs=3,
        n=250,
        validation=40,
    )
    tags = scalars(tmp_path / "tb")
    for key in (*KEYS, *UNIT_KEYS, *PHASE_KEYS):
        hits = [t for t in tags if t.endswith(key)]  # epoch_carbon/..., batch_carbon/...
        assert hits, (key, sorted(tags))
    for key in KEYS:
        for tag in (t for t in tags if t.endswith(key)):
            assert_cumulative(tags[tag])
    assert any(t.endswith("loss") for t in tags)
    # epoch logs: the phases add up to the energy at each epoch (NaN before a phase's first figure)
    energy = dict(tags["epoch_carbon/energy_kwh"])
    for step, kwh in energy.items():
        parts = [dict(tags[f"epoch_{k}"]).get(step, math.nan) for k in PHASE_KEYS]
        assert sum(v for v in parts if not math.isnan(v)) == pytest.approx(kwh, rel=0.01), (step, parts)
    per_sample = dict(tags["epoch_carbon/energy_j_per_sample"])
    implied = [round(kwh * 3.6e6 / per_sample[step]) for step, kwh in energy.items() if step in per_sample]
    assert implied and set(implied) <= _counts(250, 3), implied  # the samples seen after some batch
    assert cb.final.samples == 750  # 3 epochs of 31 batches of 8 and one of 2


def _counts(n: int, epochs: int) -> set[int]:
    """The samples seen after each batch of 8 (the last of an epoch smaller)."""
    return {n * e + min(8 * b, n) for e in range(epochs) for b in range(1, n // 8 + 2)}


def test_per_sample_and_phases_in_history_with_validation_and_a_checkpoint(tmp_path: Path) -> None:
    cb = CarbonCallback(**FAST)
    saver = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.keras"))
    history = _fit(
        [cb, saver, keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))],
        epochs=4,
        n=250,
        validation=40,
        sleep_s=0.001,
    )
    final = cb.final
    assert final.samples == 4 * 250  # the real batch sizes: 31 of 8 and one of 2 an epoch
    assert set(final.phases) == {"train", "validation", "checkpoint", "other"}
    assert all(p.energy_kwh > 0 for p in final.phases.values()), final.phases
    assert sum(p.energy_kwh for p in final.phases.values()) == pytest.approx(final.energy_kwh, rel=1e-9)
    assert len(list(tmp_path.glob("e*.keras"))) == 4
    logged = history.history
    for key in (*UNIT_KEYS, *PHASE_KEYS):  # every key, every epoch: pandas.DataFrame(history.history) works
        assert len(logged[key]) == len(logged["loss"]) == 4, key
    per_sample = logged["carbon/energy_j_per_sample"]
    implied = [round(e * 3.6e6 / v) for e, v in zip(logged["carbon/energy_kwh"], per_sample)]
    assert set(implied) <= _counts(250, 4) and implied == sorted(implied), implied
    for epoch, kwh in enumerate(logged["carbon/energy_kwh"]):
        parts = [logged[k][epoch] for k in PHASE_KEYS if not math.isnan(logged[k][epoch])]
        assert sum(parts) == pytest.approx(kwh, rel=1e-6), epoch
    assert logged["carbon/phase/checkpoint_kwh"][-1] > 0  # an epoch's save shows from the next epoch on
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert set(UNIT_KEYS + PHASE_KEYS) <= set(rows[0]) and len(rows) == 4


def test_evaluate_only_and_predict_only_say_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # a zone no bundled table knows (allowed with a token) warns when the tracker is built:
    # said when training starts, never for a run the callback does not measure
    caplog.set_level(logging.INFO, logger="carbon_core")
    cb = CarbonCallback(interval_s=0.02, log_dir="off", zone="XX-UNKNOWN", electricitymaps_token="t0ken")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((16, 4), dtype="float32")
    model.evaluate(x, np.ones((16, 1), dtype="float32"), callbacks=[cb], verbose=0)
    model.predict(x, callbacks=[cb], verbose=0)
    out = capsys.readouterr()
    assert "carbon" not in out.out + out.err and not [
        r for r in caplog.records if r.name.startswith("carbon")
    ]
    assert cb.final is None
