"""carbon_transformers.CarbonCallback against the real MLflow and W&B reporters, offline.

test_transformers.py covers ``report_to=["tensorboard"]``. Here the same tiny Trainer run
reports to ``MLflowCallback`` (``mlflow-skinny``, a ``file://`` store under ``tmp_path``) and
to ``WandbCallback`` (``WANDB_MODE=offline``, run files under ``tmp_path``), and the
``carbon/...`` metrics are read back from what each reporter stored: the MLflow store's
metric history (through ``MlflowClient``), and the history records of the W&B offline
run's ``.wandb`` transaction log (offline runs write no ``wandb-summary.json``). Each test
skips when its package is not installed. Nothing leaves the machine: MLflow writes files;
W&B offline talks only to its own ``wandb-core`` process over a Unix socket (checked with
``strace -f -e trace=connect``: no inet connection, no DNS); telemetry and error reporting
are switched off for both.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from carbon_transformers import CarbonCallback
from test_transformers import _trainer

CARBON = ("carbon/co2eq_kg", "carbon/energy_kwh")
STEPS, EVERY = 24, 4  # loss logged at steps 4, 8, ..., 24


def _check(history: dict[str, list[tuple[int, float]]]) -> None:
    """Carbon metrics positive and non-decreasing, at the loss's steps from the first reading on."""
    loss = {s for s, _ in history["loss"]}
    assert loss, history
    for name in CARBON:
        points = sorted(history[name])
        values = [v for _, v in points]
        assert len(points) >= 3, (name, points)
        assert all(v > 0 for v in values), (name, values)
        assert all(b >= a for a, b in zip(values, values[1:])), (name, values)
        steps = {s for s, _ in points}
        assert steps <= loss | {STEPS}, (name, sorted(steps), sorted(loss))
        assert {s for s in loss if s >= min(steps)} <= steps, (name, sorted(steps), sorted(loss))


def _run(tmp_path: Path, report_to: str) -> CarbonCallback:
    cb = CarbonCallback(interval_s=0.05, log_dir="off", intensity=1000.0)
    trainer = _trainer(
        tmp_path / "out", [cb], STEPS, sleep_s=0.01, report_to=[report_to], logging_steps=EVERY
    )
    names = [type(c).__name__ for c in trainer.callback_handler.callbacks]
    assert names.index("CarbonCallback") < min(i for i, n in enumerate(names) if report_to in n.lower())
    trainer.train()
    assert cb.final is not None
    return cb


def test_mlflow_stores_carbon_beside_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from transformers.integrations import is_mlflow_available

    assert is_mlflow_available()
    uri = (tmp_path / "mlruns").as_uri()
    for name, value in {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": "carbon",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "HF_MLFLOW_LOG_ARTIFACTS": "false",
        "MLFLOW_ALLOW_FILE_STORE": "true",  # mlflow 3 refuses file:// stores without it
    }.items():
        monkeypatch.setenv(name, value)
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)  # the callback keeps a URI an earlier run set
    try:
        cb = _run(tmp_path, "mlflow")
    finally:
        # the HF callback logs with synchronous=False: drain MLflow's async queue (it waits
        # for its worker threads) before the store is read
        mlflow.flush_async_logging()
        if mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("carbon")
    (run,) = client.search_runs([experiment.experiment_id])
    history = {
        name: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
        for name in ("loss", *CARBON)
    }
    _check(history)
    assert cb.final.co2eq_kg >= history["carbon/co2eq_kg"][-1][1]


def _wandb_records(path: Path) -> list[Any]:
    """The ``Record`` protobufs of an offline run's ``.wandb`` file, in order.

    wandb 0.31 has no Python reader for it (``wandb-core`` writes it): a 7-byte header
    (``:W&B``, magic, version), then LevelDB-log records in 32 KiB blocks, each a 7-byte
    header (CRC, ``<H`` length, type: 1 full, 2 first, 3 middle, 4 last) and a chunk of a
    serialised ``Record`` protobuf.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    records, parts, at = [], [], 7
    while at + 7 <= len(data):
        if 32768 - at % 32768 < 7:  # block trailer: padding
            at += 32768 - at % 32768
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, at)
        parts.append(data[at + 7 : at + 7 + length])
        at += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(b"".join(parts)))
            parts = []
    return records


def _history_row(record: Any) -> dict[str, Any]:
    return {
        item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
    }


def test_wandb_offline_stores_carbon_beside_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "WANDB_PROJECT": "carbon",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",  # wandb-core's Sentry reports: off
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_LOG_MODEL": "false",
        "WANDB_WATCH": "false",
        "WANDB_CONSOLE": "off",
        "WANDB_X_DISABLE_STATS": "true",  # no system-metrics sampling beside the training
        "WANDB_X_DISABLE_MACHINE_INFO": "true",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        cb = _run(tmp_path, "wandb")
    finally:
        wandb.finish()
        # finish() returns once the run is handed over, not once wandb-core has written it:
        # the history rows can land in the .wandb file seconds later. teardown() ends the
        # wandb-core service and waits for its process to exit, so every file it wrote is
        # complete and closed before it is read (a later wandb.init starts a new service).
        wandb.teardown()

    (log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = _wandb_records(log)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "exit" in kinds, f"{log} holds no exit record after teardown: {sorted(set(kinds))}"
    rows = [_history_row(r) for r, kind in zip(records, kinds) if kind == "history"]
    history = {
        name: [
            (int(row["train/global_step"]), float(row["train/" + name]))
            for row in rows
            if "train/" + name in row
        ]
        for name in ("loss", *CARBON)
    }
    _check(history)
    assert cb.final.co2eq_kg >= history["carbon/co2eq_kg"][-1][1]
