"""A LightningCLI training script in the shape of Lightning's own examples, with nothing of
carbon-core in it: the callback comes from the command line or the YAML config
(tests/test_scripts_lightning.py runs it as a user would)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI
from torch.utils.data import DataLoader, TensorDataset


class Regressor(LightningModule):
    def __init__(self, hidden: int = 32, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class RandomData(LightningDataModule):
    def __init__(self, samples: int = 512, batch_size: int = 8) -> None:
        super().__init__()
        self.samples, self.batch_size = samples, batch_size

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(
            torch.randn(self.samples, 16, generator=g), torch.randn(self.samples, 1, generator=g)
        )
        return DataLoader(data, batch_size=self.batch_size)


if __name__ == "__main__":
    LightningCLI(Regressor, RandomData)
