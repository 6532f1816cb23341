"""The ``model-card`` report: the Hugging Face Hub's ``co2_eq_emissions`` metadata.

The Hub's schema (https://huggingface.co/docs/hub/model-cards-co2): ``emissions`` in grams
of CO2eq, ``source``, ``training_type`` (``pre-training`` or ``fine-tuning``),
``geographical_location``, ``hardware_used``; the Hub filters models on ``emissions``
(``huggingface_hub.utils.endpoint_helpers``). carbon-core writes those and the energy,
``energy_kwh``. Emissions are the report's total (a resumed run's whole run, each joule
once), not rounded: ``ModelCard.load(...).data.co2_eq_emissions["emissions"]`` reads back
the run's final figure in grams.

The card is filled with ``huggingface_hub``'s own classes (``ModelCard``,
``ModelCardData``): the rest of its metadata and its text are kept. The YAML block alone
(``carbon-core report --format model-card``) needs no ``huggingface_hub``.

For the Hugging Face Trainer, :func:`fill_when_written` wraps one trainer's
``create_model_card`` (which ``push_to_hub`` calls too), so the card it writes carries the
block; ``training_type`` is the caller's (``trainer.create_model_card(training_type=...)``,
``trainer.push_to_hub(training_type=...)``), else detected when obvious: the card names a
``base_model`` (the Trainer's "fine-tuned from") -> ``fine-tuning``; the model was built from
a bare config (its ``config._name_or_path`` is empty: no pretrained weights) ->
``pre-training``; else it is left out.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

from carbon_core.report import facts
from carbon_core.runlog.merge import LoadedRun

logger = logging.getLogger("carbon_core")
KEY = "co2_eq_emissions"
CARD = "README.md"


def co2_eq_emissions(run: LoadedRun, training_type: Optional[str] = None) -> dict[str, Any]:
    """The ``co2_eq_emissions`` mapping of the report's total (emissions in grams)."""
    facts.check_training_type(training_type)
    snap = run.snapshot
    block: dict[str, Any] = {"emissions": snap.co2eq_kg * 1000.0, "source": facts.TOOL}
    if training_type is not None:
        block["training_type"] = training_type
    block["geographical_location"] = facts.location(run)
    hardware = facts.hardware(run)
    if hardware:
        block["hardware_used"] = ", ".join(hardware)
    block["energy_kwh"] = snap.energy_kwh
    return block


def _plain_yaml(block: Mapping[str, Any]) -> str:
    """``co2_eq_emissions:`` and its scalars as YAML (strings JSON-quoted, which YAML reads)."""
    lines = [f"{KEY}:"]
    for key, value in block.items():
        shown = repr(value) if isinstance(value, float) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {key}: {shown}")
    return "\n".join(lines) + "\n"


def yaml_block(run: LoadedRun, training_type: Optional[str] = None) -> str:
    """The metadata block, between ``---`` lines, as the top of a README.md holds it
    (``huggingface_hub``'s ``ModelCardData.to_yaml`` when installed)."""
    block = co2_eq_emissions(run, training_type)
    try:
        from huggingface_hub import ModelCardData
    except ImportError:
        body = _plain_yaml(block)
    else:
        data = ModelCardData()
        data[KEY] = block
        body = data.to_yaml() + "\n"
    return f"---\n{body}---\n"


def card_path(path: str | os.PathLike[str]) -> Path:
    """The card file: ``path``, or its README.md when ``path`` is a folder."""
    p = Path(path)
    return p / CARD if p.is_dir() else p


def fill(card: Any, run: LoadedRun, training_type: Optional[str] = None) -> Any:
    """Set ``co2_eq_emissions`` in a model card and return the card.

    ``card``: a ``huggingface_hub.ModelCard`` (changed in place), or the path of a card file
    (or of the folder holding its README.md): read when it exists (its other metadata and
    text kept), created when it does not, and saved. Raises ``ImportError`` without
    ``huggingface_hub``."""
    from huggingface_hub import ModelCard

    block = co2_eq_emissions(run, training_type)
    path: Optional[Path] = None
    if isinstance(card, (str, os.PathLike)):
        path = card_path(card)
        card = ModelCard.load(path) if path.is_file() else ModelCard("---\n{}\n---\n")
    card.data[KEY] = block
    if path is not None:
        card.save(path)
    return card


def detect_training_type(trainer: Any, card: Optional[Path] = None) -> Optional[str]:
    """``fine-tuning`` when the card names a ``base_model``, ``pre-training`` when the model
    was built from a bare config, else None (see the module docstring)."""
    if card is not None and card.is_file():
        from huggingface_hub import ModelCard

        if ModelCard.load(card).data.get("base_model"):
            return "fine-tuning"
    config = getattr(getattr(trainer, "model", None), "config", None)
    name = getattr(config, "_name_or_path", None)
    return "pre-training" if name == "" else None


def fill_when_written(trainer: Any, report: Callable[..., str], warn: Callable[[str, str], object]) -> None:
    """Wrap ``trainer.create_model_card`` (this trainer only) so that, once it has written
    ``<output_dir>/README.md``, ``report("model-card", path=..., training_type=...)`` fills
    the card's ``co2_eq_emissions``. It takes one more keyword, ``training_type``. A failure to
    fill the card goes to ``warn(key, message)`` once and never breaks the caller."""
    original = getattr(trainer, "create_model_card", None)
    if original is None or getattr(original, "carbon_core", False):
        return

    def create_model_card(*args: Any, training_type: Optional[str] = None, **kwargs: Any) -> Any:
        facts.check_training_type(training_type)
        result = original(*args, **kwargs)
        try:
            path = Path(trainer.args.output_dir) / CARD
            if path.is_file():
                kind = training_type or detect_training_type(trainer, path)
                report("model-card", path=path, training_type=kind)
        except Exception as exc:  # the card is the Trainer's: it stays as written
            warn(
                "report:model-card", f"carbon-core could not add co2_eq_emissions to the model card: {exc!r}"
            )
        return result

    create_model_card.carbon_core = True  # type: ignore[attr-defined]
    trainer.create_model_card = create_model_card
