"""A Hugging Face Trainer script in the shape of transformers' ``run_clm.py`` example (a causal
language model, ``train()``, then ``log_metrics``/``save_metrics``/``save_state``), with only
``callbacks=[CarbonCallback(...)]`` added. The model is built from a config: no downloads.
tests/test_scripts_transformers.py runs it as a user would."""

from __future__ import annotations

import argparse

import torch
from carbon_transformers import CarbonCallback
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed

BLOCK = 32


class Blocks(torch.utils.data.Dataset):
    """Token blocks, as run_clm's group_texts makes them (labels = input_ids)."""

    def __init__(self, n: int, vocab: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (n, BLOCK), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--max-steps", type=int, default=24)
    parser.add_argument("--logging-steps", type=int, default=1)
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--intensity", type=float, default=None)
    parser.add_argument("--budget-kg", type=float, default=None)
    args = parser.parse_args()

    set_seed(0)
    config = GPT2Config(
        vocab_size=128, n_positions=BLOCK, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config)
    train_dataset = Blocks(256, config.vocab_size)
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=args.accumulation,
        logging_steps=args.logging_steps,
        report_to=["tensorboard"],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    carbon = CarbonCallback(intensity=args.intensity, budget_kg=args.budget_kg)
    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, callbacks=[carbon])

    train_result = trainer.train()
    metrics = train_result.metrics
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()


if __name__ == "__main__":
    main()
