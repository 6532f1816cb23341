"""A two-process Lightning DDP job on CPU (gloo) with CarbonCallback, run by tests/test_distributed.py.

Lightning's launcher starts rank 1 by running this script again. Rank 0 also plays the
hardware: at step 5 it advances the fake powercap and fake NVML counters by scripted
amounts. Each rank writes rank<N>.json with its own final figures, the job totals the
callback logged last, and the step it stopped at.
"""

from __future__ import annotations

import json
import os
import sys
import time

import lightning.pytorch as pl
import torch
from carbon_lightning import CarbonCallback
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fake_nvml
from powercap import FakePowercap

MAX_STEPS = 60


class Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        if self.global_step == 5 and self.trainer.global_rank == 0:
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
        time.sleep(0.01)  # let the samplers run between steps
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main() -> None:
    budget = float(os.environ["TEST_BUDGET_KG"]) if os.environ.get("TEST_BUDGET_KG") else None
    carbon = CarbonCallback(interval_s=0.02, intensity=1000.0, log_dir="off", budget_kg=budget)
    trainer = pl.Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_steps=MAX_STEPS,
        log_every_n_steps=5,
        callbacks=[carbon],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = DataLoader(TensorDataset(torch.randn(4096, 4), torch.randn(4096, 1)), batch_size=8)
    trainer.fit(Model(), data)
    keys = ("energy_cpu_kwh", "energy_ram_kwh", "energy_gpu_kwh", "co2eq_kg")
    job = carbon.session.last_job
    out = os.path.join(os.environ["TEST_OUT_DIR"], f"rank{trainer.global_rank}.json")
    with open(out, "w") as fh:
        json.dump(
            {
                "rank": trainer.global_rank,
                "stopped_at": trainer.global_step,
                "role": carbon.tracker.role.__dict__,
                "own": {k: getattr(carbon.final, k) for k in keys},
                "job": {k: getattr(job, k) for k in keys},
                "job_metrics": job.to_metrics(),
                "devices": list(carbon.final.devices),
            },
            fh,
        )


if __name__ == "__main__":
    main()
