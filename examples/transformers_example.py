"""A tiny real Hugging Face Trainer run with carbon-core and TensorBoard.

    python examples/transformers_example.py
    tensorboard --logdir carbon_example_runs/transformers   # train/carbon/co2eq_kg beside train/loss

A BERT small enough to train in seconds on a CPU, on synthetic data (no download).
``report_to=["tensorboard"]`` (transformers 5 reports to nothing by default); the carbon
callback puts itself before the reporters so they receive its metrics. With an evaluation
and checkpoints every 20 steps and the Trainer counting tokens
(``include_num_input_tokens_seen``), the summary and TensorBoard also show the energy per
sample and per token and the split into train, validation, checkpoint and other.
"""

from __future__ import annotations

from pathlib import Path

import torch
from carbon_transformers import CarbonCallback
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


class Synthetic(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 256

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(0, 100, (16,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": torch.tensor(int(ids.sum()) % 2)}


def main(out: str = "carbon_example_runs/transformers") -> None:
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    args = TrainingArguments(
        output_dir=out,
        max_steps=60,
        per_device_train_batch_size=8,
        logging_steps=10,
        report_to=["tensorboard"],
        eval_strategy="steps",
        eval_steps=20,
        save_strategy="steps",
        save_steps=20,
        include_num_input_tokens_seen=True,
        use_cpu=True,
        disable_tqdm=True,
    )
    carbon = CarbonCallback(interval_s=0.2, log_dir=Path(out) / "carbon")
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=Synthetic(),
        eval_dataset=Synthetic(),
        callbacks=[carbon],
    )
    trainer.train()  # the carbon summary is printed when training ends
    print(f"TensorBoard event files under {out}/runs")


if __name__ == "__main__":
    main()
