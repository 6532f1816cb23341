"""A Hugging Face Trainer script shaped like transformers' ``run_clm.py`` (tests/scripts/hf_clm.py:
``train()``, ``log_metrics``, ``save_metrics``, ``save_state``), run as a user runs it. What
they read is checked: the printed train metrics and ``train_results.json`` hold the final
total the summary prints, every loss point has its carbon figures (logging every step with
gradient accumulation, a first interval longer than the first steps), one value per step
per key in TensorBoard, the totals in ``trainer_state.json``, the run log in ``output_dir``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scripts.runner import run_script, summary_co2eq_kg
from tb_events import scalars

pytestmark = pytest.mark.timeout(600)


def test_run_clm_shape_reports_the_final_total_everywhere(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_script(
        "hf_clm.py", str(out), "--intensity", "1000", cwd=tmp_path / "cwd", env={"CARBON_LOG_DIR": None}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    total_g = summary_co2eq_kg(done.stdout) * 1000.0

    # what log_metrics("train", ...) printed: four decimals, of grams
    printed = dict(re.findall(r"^  (carbon/\S+)\s+=\s+(\S+)$", done.stdout, flags=re.MULTILINE))
    assert set(printed) >= {"carbon/co2eq_g", "carbon/energy_wh"} and "carbon/co2eq_kg" not in printed
    assert float(printed["carbon/co2eq_g"]) > 0
    assert float(printed["carbon/co2eq_g"]) == pytest.approx(total_g, abs=5e-5, rel=5e-3)

    results = json.loads((out / "train_results.json").read_text())  # save_metrics: unrounded
    state = json.loads((out / "trainer_state.json").read_text())  # save_state
    totals = state["stateful_callbacks"]["CarbonCallback"]["attributes"]["carbon_totals"]
    assert results["carbon/co2eq_g"] == pytest.approx(totals["co2eq_kg"] * 1000.0, rel=1e-12)
    assert results["carbon/co2eq_g"] == pytest.approx(total_g, rel=5e-3)
    log = next((out / "carbon_runs").glob("*.jsonl")).read_text().splitlines()  # beside the Trainer's output
    final = json.loads(log[-1])
    assert final["type"] == "final" and final["snapshot"]["co2eq_kg"] == totals["co2eq_kg"]

    losses = [e for e in state["log_history"] if "loss" in e]
    assert len(losses) == 24  # logging_steps=1, four batches a step
    assert all(e.get("carbon/co2eq_kg", 0) > 0 for e in losses), [e.get("carbon/co2eq_kg") for e in losses]
    assert state["log_history"][-1]["carbon/co2eq_g"] == results["carbon/co2eq_g"]

    tags = scalars(out / "runs")
    carbon = {tag: points for tag, points in tags.items() if "carbon/" in tag}
    assert len(carbon) >= 10, sorted(tags)
    for tag, points in carbon.items():  # (the Trainer itself logs train/epoch twice at the last step)
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), (tag, steps)  # one value per step per key
    loss_steps = {s for s, _ in tags["train/loss"]}
    assert loss_steps <= {s for s, _ in tags["train/carbon/co2eq_kg"]}
    assert tags["train/carbon/co2eq_g"][-1][1] == pytest.approx(results["carbon/co2eq_g"], rel=1e-6)


def test_budget_stop_is_said_in_the_summary(tmp_path: Path) -> None:
    done = run_script("hf_clm.py", str(tmp_path / "out"), "--intensity", "1000", "--budget-kg", "1e-9",
                      "--max-steps", "200", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    said = [ln for ln in (done.stdout + done.stderr).splitlines() if "carbon budget" in ln]
    assert len(said) == 1, said
    assert re.fullmatch(
        r"  training stopped by the carbon budget at step \d+: "
        r"[0-9.]+ (mg|g) CO2eq spent >= budget 0\.00100 mg",
        said[0],
    ), said
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] < 200
