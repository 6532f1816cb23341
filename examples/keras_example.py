"""A tiny real Keras 3 training run (torch backend) with carbon-core.

    python examples/keras_example.py

The carbon callback comes first in ``callbacks=[...]`` so that the callbacks after it
(CSVLogger here, History and the progress bar always) see the ``carbon/...`` metrics. With
TensorFlow installed, ``keras.callbacks.TensorBoard`` after it writes them to TensorBoard
too. Prints the History figures, the CSV file and the carbon summary.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from carbon_keras import CarbonCallback


def main(out: str = "carbon_example_runs/keras") -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.random((2048, 32), dtype="float32")
    y = x[:, :1] * 2
    model = keras.Sequential(
        [keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile("adam", "mse")
    callbacks = [
        CarbonCallback(interval_s=0.2, log_dir=Path(out) / "carbon"),
        keras.callbacks.CSVLogger(f"{out}/history.csv"),
    ]
    try:
        import tensorflow  # noqa: F401

        callbacks.append(keras.callbacks.TensorBoard(f"{out}/tensorboard"))
    except ImportError:
        pass
    history = model.fit(x, y, batch_size=64, epochs=3, callbacks=callbacks, verbose=2)
    print("co2eq_kg per epoch:", history.history["carbon/co2eq_kg"])
    print(f"CSV with the carbon columns: {out}/history.csv")


if __name__ == "__main__":
    main()
