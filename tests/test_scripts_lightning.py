"""A LightningCLI script configured by a YAML file and by the command line, as Lightning's
own examples are run: the callback is configured like any other, its figures land in the
TensorBoard logs beside the loss and its run log beside them (tests/scripts/lightning_cli.py).
The manual-optimisation (GAN-shaped) module is in tests/test_lightning.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripts.runner import run_in_terminal, run_script, summary_co2eq_kg
from tb_events import assert_beside, assert_cumulative, find, scalars

pytestmark = pytest.mark.timeout(600)

CONFIG = """\
trainer:
  max_epochs: 2
  log_every_n_steps: 4
  default_root_dir: {root}
  enable_progress_bar: false
  callbacks:
    - class_path: carbon_lightning.CarbonCallback
      init_args:
        zone: FR
        interval_s: 0.05
data:
  samples: 256
"""


def _run_log(folder: Path) -> dict[str, dict]:
    files = list(folder.glob("*.jsonl"))
    assert len(files) == 1, files
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    return {r["type"]: r for r in records}


def test_yaml_config_configures_the_callback_and_the_logs_sit_together(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (tmp_path / "config.yaml").write_text(CONFIG.format(root=root))
    cwd = tmp_path / "cwd"
    # the run log's default (CARBON_LOG_DIR=off is the test suite's, not a user's)
    done = run_script("lightning_cli.py", "fit", "--config", str(tmp_path / "config.yaml"), cwd=cwd,
                      env={"CARBON_LOG_DIR": None})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "carbon-core: " in done.stdout and "zone FR" in done.stdout, done.stdout

    version = root / "lightning_logs" / "version_0"
    tags = scalars(version)
    carbon = find(tags, "carbon/co2eq_kg")
    assert_cumulative(carbon)
    assert_beside(carbon, find(tags, "train_loss"))
    total = summary_co2eq_kg(done.stdout)
    assert 0 < carbon[-1][1] <= total * 1.005  # the summary's 3 significant figures

    log = _run_log(version / "carbon_runs")  # beside Lightning's own logs, not in the working dir
    assert log["header"]["zone"] == "FR" and not (cwd / "carbon_runs").exists()
    assert log["final"]["snapshot"]["co2eq_kg"] == pytest.approx(total, rel=0.005)


def test_command_line_configures_the_callback(tmp_path: Path) -> None:
    logs = tmp_path / "my_logs"
    args = [
        "fit",
        "--trainer.callbacks+=carbon_lightning.CarbonCallback",
        "--trainer.callbacks.init_args.zone=FR",
        "--trainer.callbacks.init_args.interval_s=0.05",
        "--trainer.max_steps=12",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
    ]
    # the user's CARBON_LOG_DIR wins over Lightning's folder
    done = run_script("lightning_cli.py", *args, cwd=tmp_path, env={"CARBON_LOG_DIR": str(logs)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "zone FR" in done.stdout, done.stdout
    assert _run_log(logs)["header"]["zone"] == "FR"
    assert not list((tmp_path / "runs").rglob("carbon_runs"))

    bad = run_script("lightning_cli.py", *args[:2], "--trainer.callbacks.init_args.pue=0.5", cwd=tmp_path)
    assert bad.returncode != 0 and "pue=0.5: must be a finite number >= 1" in bad.stderr

    help_args = ["fit", "--trainer.callbacks.help", "carbon_lightning.CarbonCallback"]
    shown = run_script("lightning_cli.py", *help_args, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "--trainer.callbacks.zone ZONE" in shown.stdout and "grid zone" in shown.stdout
    assert "--trainer.callbacks.budget_kg BUDGET_KG" in shown.stdout


def test_summary_with_the_budget_stop_starts_below_the_progress_bar(tmp_path: Path) -> None:
    args = [
        "fit",
        "--trainer.callbacks+=carbon_lightning.CarbonCallback",
        "--trainer.callbacks.init_args.budget_kg=1e-9",
        "--trainer.callbacks.init_args.intensity=1000",
        "--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar",
        "--trainer.max_epochs=1",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    code, shown = run_in_terminal("lightning_cli.py", *args, cwd=tmp_path, env={"COLUMNS": "120"})
    assert code == 0, shown[-3000:]
    lines = shown.replace("\r\n", "\n").split("\n")
    assert next(ln for ln in lines if "carbon-core: " in ln).startswith("carbon-core: "), shown[-3000:]
    said = [ln for ln in lines if "carbon budget" in ln]
    assert len(said) == 1 and said[0].startswith("  training stopped by the carbon budget at step 1: "), said
