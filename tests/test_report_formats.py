"""Every ``carbon-core report --format`` on real run logs: a two-node job (two real processes
joined by torch.distributed, each node with its own fake RAPL tree and fake GPU, scripted
energy), a real tiny Lightning run resumed from its checkpoint, and both together.

What a user checks: the figures add up to what the hardware was made to draw, the resumed
run's first part is counted once, each report says which merge rule it applied, and what
is published (model card, statement, page) parses and holds the same figures.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch.distributed")
import fake_nvml
import yaml
from powercap import FakePowercap

from carbon_core.accounting import J_PER_KWH

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).parent / "workers"
#: what each node's hardware was made to draw (J): package, DRAM and GPU, times node + 1
SCRIPTED_J = {"cpu": 3.6 * 3, "ram": 1.8 * 3, "gpu": 2.0 * 3}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(
        [sys.executable, "-m", "carbon_core.cli", "report", *args],
        env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory, fake_nvml_lib: Path) -> dict[str, Any]:
    """The logs of a real two-node job (job id from TORCHELASTIC_RUN_ID) and each node's figures."""
    tmp = tmp_path_factory.mktemp("two-nodes")
    port, procs = _port(), []
    for node in (0, 1):
        tree = FakePowercap(tmp / f"sys{node}", sockets=1, dram=True)
        uuid = f"GPU-{node}{node}{node}{node}{node}{node}{node}{node}-0000-0000-0000-000000000000"
        scenario = fake_nvml.write_scenario(
            tmp / f"gpus{node}.txt", [fake_nvml.FakeGpu(uuid, energy_mj=[1000])]
        )
        env = fake_nvml.subprocess_env(fake_nvml_lib, scenario)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.update(
            {
                "PYTHONPATH": os.pathsep.join([str(ROOT), env["PYTHONPATH"]]),
                "CARBON_POWERCAP_ROOT": str(tree.root),
                "TEST_POWERCAP_BASE": str(tree.base),
                "TEST_LOG_DIR": str(tmp / "carbon_runs"),
                "TEST_OUT_DIR": str(tmp),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(node),
                "WORLD_SIZE": "2",
                "LOCAL_RANK": "0",
                "LOCAL_WORLD_SIZE": "1",
                "NODE_RANK": str(node),
                "TORCHELASTIC_RUN_ID": "job-20",
                "OMP_NUM_THREADS": "1",
            }
        )
        cmd = [sys.executable, str(WORKERS / "report_node.py")]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for p in procs:
        _, err = p.communicate(timeout=150)
        assert p.returncode == 0, err[-3000:]
    nodes = [json.loads((tmp / f"node{n}.json").read_text()) for n in (0, 1)]
    return {"logs": [n["log"] for n in nodes], "nodes": nodes, "tmp": tmp}


def _energy_j(data: dict[str, Any], comp: str) -> float:
    return float(data[f"energy_{comp}_kwh"]) * J_PER_KWH


# -- a two-node job, each format --------------------------------------------------------------
def test_json_adds_up_the_nodes_of_one_job(two_nodes: dict[str, Any]) -> None:
    data = json.loads(cli("--format", "json", *two_nodes["logs"]).stdout)
    for comp, joules in SCRIPTED_J.items():
        assert _energy_j(data, comp) == pytest.approx(joules, rel=1e-6)
    finals = [n["final"] for n in two_nodes["nodes"]]
    assert data["co2eq_kg"] == pytest.approx(sum(f["co2eq_kg"] for f in finals), rel=1e-12)
    assert data["co2eq_kg"] == pytest.approx(
        two_nodes["nodes"][0]["job"]["co2eq_kg"], rel=1e-9
    )  # the all-reduce
    (rule,) = data["merge"]["rules"]
    labels = ", ".join(f"{n['host']}/rank{n['rank']} ({n['run_id']})" for n in data["nodes"])
    assert re.fullmatch(
        rf"nodes of one job \(job id \S*job-20\): 2 logs added up \({re.escape(labels)}\); "
        "its duration runs from the first start to the last end",
        rule,
    ), rule
    assert [n["rank"] for n in data["nodes"]] == [0, 1]


def test_text_shows_each_node_the_total_and_the_rule(two_nodes: dict[str, Any]) -> None:
    out = cli(*two_nodes["logs"]).stdout
    rows = [line.split()[0] for line in out.splitlines()[2:5]]
    assert rows[0].endswith("/rank0") and rows[1].endswith("/rank1") and rows[2] == "total"
    assert re.search(r"merge: nodes of one job \(job id \S*job-20\): 2 logs added up", out)


def test_csv_has_a_row_per_node_and_a_total_that_they_add_up_to(two_nodes: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(cli("--format", "csv", *two_nodes["logs"]).stdout)))
    assert [r["row"] for r in rows] == ["node", "node", "total"]
    node_rows, total = rows[:2], rows[2]
    for key in ("energy_gpu_kwh", "energy_cpu_kwh", "energy_ram_kwh", "energy_kwh", "co2eq_kg"):
        assert float(total[key]) == pytest.approx(sum(float(r[key]) for r in node_rows), rel=1e-12)
    assert float(total["energy_gpu_kwh"]) * J_PER_KWH == pytest.approx(SCRIPTED_J["gpu"], rel=1e-6)
    assert [r["rank"] for r in node_rows] == ["0", "1"]
    # every node counted: GPU by its counter (+/-5 %), the band of the total from the components'
    assert float(total["energy_low_kwh"]) == pytest.approx(0.95 * float(total["energy_kwh"]), rel=1e-9)


def test_model_card_block_is_yaml_with_the_emissions_in_grams(two_nodes: dict[str, Any]) -> None:
    out = cli("--format", "model-card", "--training-type", "fine-tuning", *two_nodes["logs"]).stdout
    assert out.startswith("---\n") and out.endswith("---\n")
    block = yaml.safe_load(out.strip().strip("-"))["co2_eq_emissions"]
    total = sum(n["final"]["co2eq_kg"] for n in two_nodes["nodes"])
    assert block["emissions"] == pytest.approx(total * 1000.0, rel=1e-12)  # grams, not kg
    assert block["source"] == "carbon-core" and block["training_type"] == "fine-tuning"
    assert block["hardware_used"] == "2 x NVIDIA A100-SXM4-80GB (GPU), 2 x CPU package (RAPL)"
    assert block["geographical_location"].startswith("zone DE, ")
    assert block["energy_kwh"] * J_PER_KWH == pytest.approx(sum(SCRIPTED_J.values()), rel=1e-6)


def test_paper_statement_names_every_figure_and_its_source(two_nodes: dict[str, Any]) -> None:
    text = " ".join(cli("--format", "paper", *two_nodes["logs"]).stdout.split())
    data = json.loads(cli("--format", "json", *two_nodes["logs"]).stdout)
    kg = f"{data['co2eq_kg']:.3g} kgCO2eq"
    lo, hi = (f"{v:.3g}" for v in data["uncertainty"]["co2eq_kg"])
    assert f"{kg} ({lo} to {hi} kgCO2eq)" in text
    assert "2 x NVIDIA A100-SXM4-80GB (GPU)" in text and "PUE of 1" in text
    assert "GPU counter, -5 % / +5 %" in text and "CPU counter" in text and "RAM counter" in text
    assert f"carbon-core {data['carbon_core_versions']}" in text
    assert re.search(r"grid intensity of [\d.]+ gCO2eq/kWh from table:country:DE", text)
    assert "nodes of one job" in text


def test_html_is_one_self_contained_page_with_the_figure(two_nodes: dict[str, Any]) -> None:
    pytest.importorskip("matplotlib")
    page = cli("--format", "html", *two_nodes["logs"]).stdout
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.IGNORECASE)  # nothing fetched
    assert "<script" not in page.lower() and "<link" not in page.lower()
    (image,) = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    import base64

    assert base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "No phase split" in page and "nodes of one job" in page and "co2_eq_emissions:" in page


# -- a resumed Lightning run --------------------------------------------------------------------
@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real tiny Lightning run checkpointed at step 20 and resumed to step 40: two logs."""
    import torch
    from carbon_lightning import CarbonCallback
    from support import wait_for
    from test_lightning import _fit, _ns

    tmp = tmp_path_factory.mktemp("resumed")
    logs, ns = tmp / "carbon_runs", _ns("lightning.pytorch")
    fast = {"interval_s": 0.02, "intensity": 1000.0, "log_dir": str(logs)}
    first = CarbonCallback(**fast)

    class Measured(ns.Callback):  # the checkpoint is taken once the tracker has measured
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 20:
                assert wait_for(lambda: first.tracker.intervals >= 3), "the sampler never sampled"

    checkpoint = ns.callbacks.ModelCheckpoint(dirpath=tmp / "ckpt", save_last=True)
    _fit([first, Measured(), checkpoint], 20, enable_checkpointing=True)
    saved = torch.load(tmp / "ckpt" / "last.ckpt", weights_only=False)["callbacks"]["CarbonCallback"]
    second = CarbonCallback(**fast)
    _fit([second], 40, ckpt_path=tmp / "ckpt" / "last.ckpt")
    return {
        "first": first.final,
        "second": second.final,
        "saved": saved,
        "logs": [first.tracker.log_path, second.tracker.log_path],
        "callback": second,
        "tmp": tmp,
    }


def test_a_resumed_run_counts_its_first_part_once(resumed: dict[str, Any]) -> None:
    first, second, saved = resumed["first"], resumed["second"], resumed["saved"]
    assert saved["co2eq_kg"] > 0  # the checkpoint carried something
    glob = sorted(str(p) for p in Path(resumed["logs"][0]).parent.glob("*.jsonl"))
    assert glob == sorted(resumed["logs"])
    data = json.loads(cli("--format", "json", *glob).stdout)
    once = first.co2eq_kg + second.co2eq_kg - saved["co2eq_kg"]  # the first part whole, then the rest
    assert data["co2eq_kg"] == pytest.approx(once, rel=1e-9)
    assert data["co2eq_kg"] < first.co2eq_kg + second.co2eq_kg - 0.5 * saved["co2eq_kg"]  # not twice
    assert data["energy_kwh"] == pytest.approx(first.energy_kwh + second.energy_kwh - _kwh(saved), rel=1e-9)
    (rule,) = data["merge"]["rules"]
    assert rule.startswith("resumed run: ") and "equal what the checkpoint carried" in rule
    assert "merge: resumed run: " in cli(*glob).stdout


def _kwh(state: dict[str, float]) -> float:
    return sum(v for k, v in state.items() if k.startswith("energy_"))


def test_a_resumed_part_alone_keeps_what_its_checkpoint_carried(resumed: dict[str, Any]) -> None:
    data = json.loads(cli("--format", "json", resumed["logs"][1]).stdout)
    assert data["co2eq_kg"] == pytest.approx(resumed["second"].co2eq_kg, rel=1e-12)
    (rule,) = data["merge"]["rules"]
    assert rule.startswith("resumed run, first part not given")
    assert data["nodes"][0]["carried_in"]["co2eq_kg"] == pytest.approx(resumed["saved"]["co2eq_kg"], rel=1e-9)


def test_unrelated_runs_are_listed_separately_and_added_up(
    resumed: dict[str, Any], two_nodes: dict[str, Any]
) -> None:
    logs = [*resumed["logs"], *two_nodes["logs"]]
    rows = list(csv.DictReader(io.StringIO(cli("--format", "csv", *logs).stdout)))
    assert [r["row"] for r in rows] == ["node"] * 4 + ["run", "run", "total"]
    by_run = {r["run"] for r in rows if r["row"] == "node"}
    assert len(by_run) == 2
    runs = [r for r in rows if r["row"] == "run"]
    total = rows[-1]
    assert float(total["co2eq_kg"]) == pytest.approx(sum(float(r["co2eq_kg"]) for r in runs), rel=1e-12)
    assert float(total["duration_s"]) == pytest.approx(sum(float(r["duration_s"]) for r in runs), rel=1e-12)
    rules = json.loads(cli("--format", "json", *logs).stdout)["merge"]["rules"]
    assert rules[-1].startswith("unrelated runs: 2 runs") and any(
        r.startswith("resumed run: ") for r in rules
    )


def test_the_callback_fills_a_model_card_with_the_whole_resumed_run(resumed: dict[str, Any]) -> None:
    from huggingface_hub import ModelCard

    card = resumed["tmp"] / "card" / "README.md"
    card.parent.mkdir()
    card.write_text("---\nlicense: mit\n---\n# My model\n\nTrained on noise.\n")
    block = resumed["callback"].report("model-card", path=card, training_type="pre-training")
    loaded = ModelCard.load(card)
    data = loaded.data.co2_eq_emissions
    assert data["emissions"] == resumed["second"].co2eq_kg * 1000.0  # the whole run, carry included
    assert data["training_type"] == "pre-training" and data["source"] == "carbon-core"
    assert loaded.data.license == "mit" and "Trained on noise." in loaded.text
    assert yaml.safe_load(block.strip().strip("-"))["co2_eq_emissions"] == data
    statement = resumed["callback"].report("paper")
    assert f"{resumed['second'].co2eq_kg:.3g} kgCO2eq" in " ".join(statement.split())


def test_the_cli_fills_a_card_and_writes_a_new_one(two_nodes: dict[str, Any]) -> None:
    from huggingface_hub import ModelCard

    tmp = two_nodes["tmp"]
    old = tmp / "old" / "README.md"
    old.parent.mkdir()
    old.write_text("---\nlicense: apache-2.0\ntags:\n- bert\n---\n# A model\n\nIts story.\n")
    cli("--format", "model-card", "-o", str(old.parent), *two_nodes["logs"])  # a folder: its README.md
    cli(
        "--format",
        "model-card",
        "-o",
        str(tmp / "new.md"),
        "--training-type",
        "pre-training",
        *two_nodes["logs"],
    )
    total_g = sum(n["final"]["co2eq_kg"] for n in two_nodes["nodes"]) * 1000.0
    filled, new = ModelCard.load(old), ModelCard.load(tmp / "new.md")
    assert (
        filled.data.license == "apache-2.0" and filled.data.tags == ["bert"] and "Its story." in filled.text
    )
    assert filled.data.co2_eq_emissions["emissions"] == pytest.approx(total_g, rel=1e-12)
    assert new.data.co2_eq_emissions["training_type"] == "pre-training"
    assert (tmp / "new.md").read_text().count("---") == 2 and new.text.strip() == ""


def test_paper_and_page_state_what_an_estimate_assumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run without RAPL: the statement and the page say what the CPU estimate assumed."""
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    from carbon_core import Tracker

    with Tracker(meters=["cpu-estimate"], gpus="none", zone="DE", log_dir=tmp_path / "logs", interval_s=0.05):
        sum(i * i for i in range(200_000))
    paper = cli(str(tmp_path / "logs"), "--format", "paper").stdout
    said = " ".join(paper.split())
    assert re.search(r"Estimate, CPU: .+ W per busy (vCPU|thread)", said), said
    page = cli(str(tmp_path / "logs"), "--format", "html").stdout
    assert "estimate assumed" in page and " W per busy " in page
