"""carbon_transformers.CarbonCallback in real (tiny, CPU) Hugging Face Trainer runs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from carbon_transformers import CarbonCallback
from support import wait_for
from tb_events import assert_beside, assert_cumulative, find, scalars
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.integrations import TensorBoardCallback

FAST = {"interval_s": 0.02, "log_dir": "off", "intensity": 1000.0}


class Data(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, 100, (16,), generator=g), "labels": torch.tensor(i % 2)}


class Tiny(BertForSequenceClassification):
    sleep_s = 0.0
    fail_at = -1

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        time.sleep(self.sleep_s)  # lets the sampler thread run on time
        return super().forward(*args, **kwargs)


def _trainer(
    tmp_path: Path, callbacks: list[Any], max_steps: int, sleep_s: float = 0.0, fail_at: int = -1, **kw: Any
) -> Trainer:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    model = Tiny(config)
    model.sleep_s, model.fail_at = sleep_s, fail_at
    options = {
        "report_to": "none",
        "logging_steps": 5,
        "save_strategy": "no",
        "remove_unused_columns": False,
        **kw,
    }
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        use_cpu=True,
        disable_tqdm=True,
        **options,
    )
    return Trainer(model=model, args=args, train_dataset=Data(), callbacks=callbacks)


def test_tensorboard_callback_writes_carbon_beside_loss(tmp_path: Path) -> None:
    cb = CarbonCallback(**FAST)
    trainer = _trainer(tmp_path, [cb], 30, report_to=["tensorboard"], logging_steps=3)
    order = [type(c) for c in trainer.callback_handler.callbacks]
    assert order.index(CarbonCallback) < order.index(TensorBoardCallback)
    trainer.train()

    tags = scalars(tmp_path)
    for name in ("carbon/co2eq_kg", "carbon/energy_kwh"):
        points = find(tags, name)  # train/carbon/..., as train/loss
        assert_cumulative(points)
        assert_beside(points, find(tags, "loss"))
    assert cb.final is not None and cb.final.co2eq_kg >= points[-1][1]
    # the final training log (what train() returns) holds the final total, in grams
    assert trainer.state.log_history[-1]["carbon/co2eq_g"] == cb.final.co2eq_kg * 1000.0


def test_tiny_budget_stops_well_before_max_steps(tmp_path: Path) -> None:
    cb = CarbonCallback(**FAST, budget_kg=1e-12)
    trainer = _trainer(tmp_path, [cb], 1000)
    trainer.train()
    assert trainer.state.global_step < 200
    assert "spent" in cb.tracker.should_stop.reason


@pytest.mark.slow
def test_predicted_stops_before_spent(tmp_path: Path) -> None:
    # no timed assertion: the budget is a fraction of what a first, full run emitted
    max_steps, steps = 60, {}
    calibration = CarbonCallback(**FAST)
    _trainer(tmp_path, [calibration], max_steps, sleep_s=0.002).train()
    budget = calibration.final.co2eq_kg * 0.3
    for stop_on in ("spent", "predicted"):
        cb = CarbonCallback(**FAST, budget_kg=budget, stop_on=stop_on)
        trainer = _trainer(tmp_path, [cb], max_steps, sleep_s=0.002)
        trainer.train()
        steps[stop_on] = trainer.state.global_step
        assert stop_on in cb.tracker.should_stop.reason
    assert steps["predicted"] < steps["spent"] < max_steps, steps
    print("steps at stop", steps)


def test_exception_in_the_step_still_yields_final_snapshot(tmp_path: Path) -> None:
    cb = CarbonCallback(**FAST)
    trainer = _trainer(tmp_path, [cb], 50, fail_at=8)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert not cb.session.running  # stopped by the guarded step
    assert cb.final is not None and cb.final.energy_kwh > 0
    assert "training_step" not in vars(trainer)  # the guard is undone


@pytest.mark.slow
def test_resumed_run_keeps_counting(tmp_path: Path) -> None:
    first = CarbonCallback(**FAST)

    class Measured(TrainerCallback):  # the checkpoint is saved once the tracker has measured
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 10:
                assert wait_for(lambda: first.tracker.intervals >= 3), "the sampler never sampled"

    _trainer(tmp_path, [first, Measured()], 10, save_strategy="steps", save_steps=10).train()
    state = json.loads((tmp_path / "checkpoint-10" / "trainer_state.json").read_text())
    saved = state["stateful_callbacks"]["CarbonCallback"]["attributes"]["carbon_totals"]
    assert saved["co2eq_kg"] > 0

    # resumed with nothing left to train: the totals are the checkpoint's (without the
    # carry they would be the few milliseconds this part measured)
    idle = CarbonCallback(**FAST)
    _trainer(tmp_path, [idle], 10).train(resume_from_checkpoint=str(tmp_path / "checkpoint-10"))
    assert idle.final.co2eq_kg >= saved["co2eq_kg"]
    assert idle.final.duration_s >= saved["duration_s"]

    second = CarbonCallback(**{**FAST, "interval_s": 60.0})  # no interval ends: the reading taken at once
    trainer = _trainer(tmp_path, [second], 20)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-10"))
    assert trainer.state.global_step == 20
    losses = [e for e in trainer.state.log_history if "loss" in e and e["step"] > 10]
    assert losses and all(e.get("carbon/co2eq_kg", 0) > saved["co2eq_kg"] for e in losses), losses
    assert second.final.co2eq_kg > saved["co2eq_kg"]
    assert second.final.duration_s > saved["duration_s"]


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"pue": 11}, "pue"), ({"budget_kg": 0}, "budget_kg"), ({"x": 1}, "x")]
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CarbonCallback(**kwargs)


def test_evaluate_only_and_predict_only_say_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # a zone no bundled table knows (allowed with a token) warns when the tracker is built:
    # said when training starts, never for a run the callback does not measure
    caplog.set_level(logging.INFO, logger="carbon_core")
    cb = CarbonCallback(interval_s=0.02, log_dir="off", zone="XX-UNKNOWN", electricitymaps_token="t0ken")
    trainer = _trainer(tmp_path, [cb], 10)
    trainer.evaluate(Data())
    trainer.predict(Data())
    out = capsys.readouterr()
    assert "carbon" not in out.out + out.err and not [
        r for r in caplog.records if r.name.startswith("carbon")
    ]
    assert cb.final is None


# -- issue 19: per token and per phase, against the Trainer's own count ------------------------


class Blocks(torch.utils.data.Dataset):
    """Causal-LM blocks of 32 tokens (labels = input_ids), as run_clm makes them."""

    def __init__(self, n: int) -> None:
        self.ids = torch.randint(0, 128, (n, 32), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def test_per_token_matches_num_input_tokens_seen_and_phases_add_up(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=128, n_positions=32, n_embd=16, n_layer=1, n_head=2))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=12,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        include_num_input_tokens_seen=True,
        eval_strategy="steps",
        eval_steps=5,
        save_strategy="steps",
        save_steps=5,
        logging_steps=1,
        report_to=["tensorboard"],
        use_cpu=True,
        disable_tqdm=True,
    )
    cb = CarbonCallback(**FAST)
    trainer = Trainer(
        model=model, args=args, train_dataset=Blocks(38), eval_dataset=Blocks(8), callbacks=[cb]
    )
    trainer.train()
    final, seen = cb.final, trainer.state.num_input_tokens_seen
    assert seen > 0 and final.tokens == seen  # the Trainer's own count
    assert final.samples == seen / 32  # every micro-batch's real size (the last of each epoch has 2)
    assert final.energy_j_per_token == pytest.approx(final.energy_kwh * 3.6e6 / seen, rel=1e-12)
    assert set(final.phases) == {"train", "validation", "checkpoint", "other"}
    assert all(p.energy_kwh > 0 for p in final.phases.values()), final.phases
    assert sum(p.energy_kwh for p in final.phases.values()) == pytest.approx(final.energy_kwh, rel=1e-9)
    assert len(list(tmp_path.glob("checkpoint-*"))) == 3  # steps 5, 10 and the last, 12

    tags = scalars(tmp_path)
    counts = {int(v) for _, v in tags["train/num_input_tokens_seen"]}  # what the Trainer logged
    energy = tags["train/carbon/energy_kwh"]
    per_token = tags["train/carbon/energy_j_per_token"]
    assert_beside(per_token, tags["train/loss"])
    assert_beside(tags["train/carbon/co2eq_g_per_sample"], tags["train/loss"])
    joules = {s: v * 3.6e6 for s, v in energy}
    implied = {round(joules[s] / v) for s, v in per_token}  # the tokens each figure divides by
    assert implied and implied <= counts, (implied, counts)
    by_step: dict[int, float] = {}
    for name in ("train", "validation", "checkpoint", "other"):
        for step, value in tags[f"train/carbon/phase/{name}_kwh"]:
            by_step[step] = by_step.get(step, 0.0) + value
    for step, total in by_step.items():  # the phases add up to the energy logged at the same step
        assert total == pytest.approx(dict(energy)[step], rel=0.01), step
