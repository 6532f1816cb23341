"""Round two: an error outside the guarded training step in Keras and the HF Trainer.

A failing dataset or data collator (or another callback: tests/test_keras.py) ends ``fit`` / ``train`` without
passing through the guarded step. Measuring must still stop promptly, on its own (nobody
reads ``callback.final``), and the summary must be printed, as Lightning's ``on_exception``
does. Real Keras (torch backend) and real Trainer runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]


def _stopped_and_summarised(cb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    out: list[str] = []

    def summarised() -> bool:  # printed by the watch thread, after the final snapshot
        out.append(capsys.readouterr().out)
        return "carbon-core: " in "".join(out)

    assert wait_for(summarised, 10.0), "still measuring, or no summary, after training died"
    assert "".join(out).count("carbon-core: ") == 1, "the summary, printed once"
    assert not cb.session.running and cb.session.final.energy_kwh > 0


def test_keras_dataset_error_stops_measuring(capsys: pytest.CaptureFixture[str]) -> None:
    import keras
    import numpy as np
    from carbon_keras import CarbonCallback
    from test_keras import FAST

    class Broken(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 20

        def __getitem__(self, i: int) -> tuple[Any, Any]:
            if i == 6:
                raise OSError("corrupt shard")
            return np.ones((8, 4), dtype="float32"), np.ones((8, 1), dtype="float32")

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    cb = CarbonCallback(**FAST)
    with pytest.raises(OSError, match="corrupt shard"):
        model.fit(Broken(), epochs=1, callbacks=[cb], verbose=0)
    _stopped_and_summarised(cb, capsys)


def test_hf_data_collator_error_stops_measuring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from carbon_transformers import CarbonCallback
    from test_transformers import FAST, _trainer
    from transformers import default_data_collator

    calls = {"n": 0}

    def collate(features: list[Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise ValueError("bad batch")
        return default_data_collator(features)

    cb = CarbonCallback(**FAST)
    trainer = _trainer(tmp_path, [cb], 30, sleep_s=0.01)
    trainer.data_collator = collate
    with pytest.raises(ValueError, match="bad batch"):
        trainer.train()
    _stopped_and_summarised(cb, capsys)


def test_a_hung_meter_holds_up_the_first_logging_step_once_and_briefly() -> None:
    # The first logging step comes before the sampler's first interval (60 s) ends, so the
    # callback takes one reading at once; the meter hangs in it. Training goes on after a
    # bounded wait (on a helper thread), and no later step tries again.
    import threading

    import lightning.pytorch as pl
    from carbon_lightning import CarbonCallback
    from test_lightning import _data, _module

    from carbon_core.meters.base import Channel, Meter

    release = threading.Event()

    class Hangs(Meter):
        name = "hangs"

        def __init__(self) -> None:
            super().__init__()
            self.channels = (Channel("gpu:hangs", "gpu", "counter"),)

        def read(self) -> dict[str, float]:
            release.wait(60.0)
            return {"gpu:hangs": 0.0}

    cb = CarbonCallback(interval_s=60.0, intensity=100.0, log_dir="off", gpus="none", meters=[Hangs()])
    trainer = pl.Trainer(
        max_steps=30,
        log_every_n_steps=3,
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    try:
        trainer.fit(_module(pl), _data())
        readers = [t for t in threading.enumerate() if t.name == "carbon-core-read"]
    finally:
        release.set()
    assert trainer.global_step == 30
    assert len(readers) == 1, readers  # one reading tried at once, never again
    assert any("hung" in w for w in cb.final.warnings), cb.final.warnings
