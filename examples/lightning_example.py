"""A tiny real Lightning training run with carbon-core: kgCO2eq beside the loss.

    python examples/lightning_example.py
    tensorboard --logdir carbon_example_runs      # scalars: loss, carbon/co2eq_kg, ...

Runs in seconds on a CPU with the bundled, offline defaults (grid intensity from the
bundled tables for the zone found from the environment/time zone; no network). It writes
TensorBoard event files (tensorboardX is enough) and prints where they are, then the
carbon summary: energy per component and how it was measured, kgCO2eq and the source of
the grid intensity. Pass a budget to see training stop itself: ``--budget-kg 1e-7``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

try:
    import lightning.pytorch as pl
except ImportError:  # the older namespace works the same
    import pytorch_lightning as pl  # type: ignore[no-redef]

from carbon_lightning import CarbonCallback


class Regressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="carbon_example_runs", help="TensorBoard log folder")
    parser.add_argument("--budget-kg", type=float, default=None, help="carbon budget (kgCO2eq)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 32, generator=g)
    y = x[:, :1] * 2 + 0.1 * torch.randn(4096, 1, generator=g)
    data = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

    carbon = CarbonCallback(interval_s=0.2, budget_kg=args.budget_kg, log_dir=Path(args.out) / "carbon")
    logger = pl.loggers.TensorBoardLogger(args.out, name="lightning")
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        callbacks=[carbon],
        logger=logger,
        log_every_n_steps=10,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Regressor(), data)  # the carbon summary is printed when training ends

    print(f"\nTensorBoard event files: {logger.log_dir}")
    print(f"  see them with: tensorboard --logdir {args.out}")
    print(
        f"stopped by the budget: {carbon.tracker.should_stop.reason}"
        if carbon.tracker.should_stop.stop
        else f"final: {carbon.final.co2eq_kg * 1000:.4g} gCO2eq, {carbon.final.energy_kwh * 1000:.4g} Wh"
    )


if __name__ == "__main__":
    main()
