"""A Keras training script in keras-io's usual shape, with ``callbacks=[CarbonCallback(), ...]``
added: it builds a DataFrame from ``History`` and keeps a ``CSVLogger`` file, as many scripts do
(tests/test_scripts_keras.py runs it as a user would)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import pandas as pd
from carbon_keras import CarbonCallback


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--budget-kg", type=float, default=None)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x, y = rng.random((256, 32), dtype="float32"), rng.random((256, 1), dtype="float32")
    model = keras.Sequential(
        [keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    callbacks = [
        CarbonCallback(interval_s=0.05, intensity=1000.0, budget_kg=args.budget_kg),
        keras.callbacks.CSVLogger(str(args.out / "training.csv")),
    ]
    history = model.fit(x, y, batch_size=32, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose)

    frame = pd.DataFrame(history.history)
    frame.to_csv(args.out / "history.csv", index_label="epoch")
    print(frame.tail(3).to_string())


if __name__ == "__main__":
    main()
