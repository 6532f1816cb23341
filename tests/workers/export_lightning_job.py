"""A two-process Lightning DDP job on CPU (gloo) with CarbonCallback(export=["prometheus", "otlp"]),
run under torchrun by tests/test_export_distributed.py.

Rank 0 also plays the hardware: at step 5 it advances the fake powercap and NVML counters.
Training then goes on until the test has seen the figures in Prometheus and writes
``release`` (rank 0 broadcasts that it has, so both ranks stop at the same step), or 150 s
have passed. Each rank writes rank<N>.json: its run log's path and its final figures.
"""

from __future__ import annotations

import json
import os
import sys
import time

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from carbon_lightning import CarbonCallback
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fake_nvml
from powercap import FakePowercap

OUT = os.environ["TEST_OUT_DIR"]
GIVE_UP = time.monotonic() + 150.0


class Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        rank0 = self.trainer.global_rank == 0
        if self.global_step == 5 and rank0:
            tree = FakePowercap.attach(os.environ["TEST_POWERCAP_BASE"])
            tree.add("package-0", 3_600_000)
            tree.add("dram-0", 1_800_000)
            fake_nvml.write_scenario(
                os.environ["FAKE_NVML_SCENARIO"],
                [
                    fake_nvml.FakeGpu("GPU-00000000-0000-0000-0000-000000000000", energy_mj=[1000 + 2000]),
                    fake_nvml.FakeGpu("GPU-11111111-1111-1111-1111-111111111111", energy_mj=[1000 + 5000]),
                ],
            )
        if self.global_step > 5:
            done = rank0 and (os.path.exists(os.path.join(OUT, "release")) or time.monotonic() > GIVE_UP)
            flag = torch.tensor([1 if done else 0])
            dist.broadcast(flag, 0)
            if flag.item():
                self.trainer.should_stop = True
        time.sleep(0.01)
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main() -> None:
    carbon = CarbonCallback(
        interval_s=0.05, intensity=1000.0, log_dir=os.path.join(OUT, "runs"), export=["prometheus", "otlp"]
    )  # the port: CARBON_PROMETHEUS_PORT; the collector: OTEL_EXPORTER_OTLP_ENDPOINT
    trainer = pl.Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_steps=100_000,
        log_every_n_steps=5,
        callbacks=[carbon],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = DataLoader(TensorDataset(torch.randn(4096, 4), torch.randn(4096, 1)), batch_size=8)
    trainer.fit(Model(), data)
    with open(os.path.join(OUT, f"rank{trainer.global_rank}.json"), "w") as fh:
        json.dump({"log": carbon.tracker.log_path, "final": carbon.final.to_dict()}, fh)


if __name__ == "__main__":
    main()
