"""A Keras script that builds a pandas DataFrame from ``History`` and keeps a ``CSVLogger``
file (tests/scripts/keras_history.py), run as a user runs it: what they read is checked,
the DataFrame, the CSV columns, the progress bar, and the line that says a budget stopped it."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest
from scripts.runner import run_in_terminal, run_script, summary_co2eq_kg

pytestmark = pytest.mark.timeout(600)
ENV = {"KERAS_BACKEND": "torch"}
KEYS = (
    "carbon/energy_kwh",
    "carbon/energy_cpu_kwh",
    "carbon/energy_ram_kwh",
    "carbon/co2eq_kg",
    "carbon/power_w",
    "carbon/intensity_gco2eq_per_kwh",
    "carbon/predicted_co2eq_kg",
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _number(text: str) -> float:
    return float(text) if text not in ("", "NA") else math.nan


def test_history_dataframe_and_csv_logger_have_every_carbon_column(tmp_path: Path) -> None:
    # 60 epochs of 8 batches: the forecast starts after 2 % of the run, in epoch 2
    cwd = tmp_path / "cwd"
    done = run_script(
        "keras_history.py", str(tmp_path), "--epochs", "60", cwd=cwd, env={**ENV, "CARBON_LOG_DIR": None}
    )
    assert done.returncode == 0, done.stderr[-3000:]  # pd.DataFrame(history.history) built

    history = _rows(tmp_path / "history.csv")  # the DataFrame the script built, as saved
    assert len(history) == 60
    co2 = [_number(r["carbon/co2eq_kg"]) for r in history]
    assert all(v > 0 for v in co2) and co2 == sorted(co2)  # from the first epoch, never a made-up 0
    predicted = [_number(r["carbon/predicted_co2eq_kg"]) for r in history]
    first = next(i for i, v in enumerate(predicted) if not math.isnan(v))
    assert first <= 3 and all(v > 0 for v in predicted[first:])  # NaN only before its warm-up

    logged = _rows(tmp_path / "training.csv")  # CSVLogger fixed its columns at the first epoch
    assert set(KEYS) <= set(logged[0]) and not [k for k in logged[0] if k.startswith("val_carbon")]
    assert [_number(r["carbon/co2eq_kg"]) for r in logged] == pytest.approx(co2)
    for key in KEYS[:-1]:
        assert all(_number(r[key]) > 0 for r in logged), key

    assert 0 < co2[-1] <= summary_co2eq_kg(done.stdout) * 1.005
    epoch_lines = [ln for ln in done.stdout.splitlines() if re.match(r"^\d+/\d+ - ", ln)]  # verbose=2
    assert len(epoch_lines) == 60 and all("carbon/co2eq_kg:" in ln for ln in epoch_lines)
    assert not [ln for ln in epoch_lines if "carbon/power_w" in ln or "carbon/energy" in ln]  # kept short
    assert len(list((cwd / "carbon_runs").glob("*.jsonl"))) == 1  # Keras knows no log folder


def test_budget_stop_is_said_on_its_own_line_after_the_progress_bar(tmp_path: Path) -> None:
    code, shown = run_in_terminal(
        "keras_history.py", str(tmp_path), "--epochs", "5", "--budget-kg", "1e-9", "--verbose", "1",
        cwd=tmp_path, env=ENV,
    )  # fmt: skip
    assert code == 0, shown[-3000:]
    lines = shown.replace("\r\n", "\n").split("\n")
    said = [ln for ln in lines if "carbon budget" in ln]
    assert len(said) == 1, said  # once
    assert re.fullmatch(
        r"  training stopped by the carbon budget at epoch 1, batch \d+: [0-9.]+ (mg|g) CO2eq spent >= "
        r"budget 0\.00100 mg",
        said[0],
    ), said
    bars = [ln for ln in lines if "━" in ln]
    assert bars and all("carbon/co2eq_kg:" in ln and "carbon/power_w" not in ln for ln in bars), bars
