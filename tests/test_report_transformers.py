"""The model card a real Hugging Face Trainer run writes carries the run's footprint.

A tiny BERT built from a config (no download) trains on CPU with CarbonCallback; the card
``trainer.create_model_card()`` writes (the one ``push_to_hub`` writes too) is read back
with ``huggingface_hub``'s own parser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")
from carbon_transformers import CarbonCallback
from huggingface_hub import ModelCard
from test_transformers import _trainer

FAST = {"interval_s": 0.02, "intensity": 1000.0}


def test_the_trainers_card_holds_the_runs_emissions_in_grams(tmp_path: Path) -> None:
    callback = CarbonCallback(**FAST, log_dir=tmp_path / "logs")
    trainer = _trainer(tmp_path / "out", [callback], max_steps=20, sleep_s=0.005)
    trainer.train()
    trainer.create_model_card(model_name="tiny-bert")
    final = callback.final
    assert final is not None and final.co2eq_kg > 0
    card = ModelCard.load(tmp_path / "out" / "README.md")
    block = card.data.co2_eq_emissions
    assert block["emissions"] == final.co2eq_kg * 1000.0  # grams, the final figure exactly
    assert block["energy_kwh"] == final.energy_kwh
    assert block["source"] == "carbon-core"
    assert block["training_type"] == "pre-training"  # built from a config: nothing pretrained
    assert "(CPU)" in block["hardware_used"]
    assert card.data.model_name == "tiny-bert"  # the Trainer's own metadata is kept
    assert "tiny-bert" in card.text


def test_the_caller_says_the_training_type(tmp_path: Path) -> None:
    callback = CarbonCallback(**FAST, log_dir="off")
    trainer = _trainer(tmp_path / "out", [callback], max_steps=5)
    trainer.train()
    trainer.create_model_card(training_type="fine-tuning")
    block = ModelCard.load(tmp_path / "out" / "README.md").data.co2_eq_emissions
    assert block["training_type"] == "fine-tuning"
    assert block["emissions"] == callback.final.co2eq_kg * 1000.0  # no log: the tracker's figures
    with pytest.raises(ValueError, match="training_type"):
        trainer.create_model_card(training_type="finetune")
