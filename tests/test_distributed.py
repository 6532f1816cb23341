"""A real two-process job on the gloo backend (torchrun): every GPU once, every host once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch.distributed")
import fake_nvml
from powercap import FakePowercap

from carbon_core.accounting import J_PER_KWH
from carbon_core.distributed import Role, role_from_env

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
WORKERS = Path(__file__).parent / "workers"
GPUS = [
    fake_nvml.FakeGpu("GPU-00000000-0000-0000-0000-000000000000", energy_mj=[1000]),
    fake_nvml.FakeGpu("GPU-11111111-1111-1111-1111-111111111111", energy_mj=[1000]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(
    script: str, tmp_path, fake_nvml_lib, extra_env=None, launcher="torchrun", timeout=150
) -> list[dict]:
    tree = FakePowercap(tmp_path / "sys", sockets=1, dram=True)
    scenario = fake_nvml.write_scenario(tmp_path / "gpus.txt", GPUS)
    env = fake_nvml.subprocess_env(fake_nvml_lib, scenario)
    env.update(
        {
            "CARBON_POWERCAP_ROOT": str(tree.root),
            "TEST_POWERCAP_BASE": str(tree.base),
            "CARBON_LOG_DIR": "off",
            "OMP_NUM_THREADS": "1",
            "TEST_OUT_DIR": str(tmp_path),
            **(extra_env or {}),
        }
    )
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        str(WORKERS / script),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.timeout(180)
def test_job_totals_count_each_gpu_and_the_host_once(tmp_path, fake_nvml_lib):
    r0, r1 = run_job("core_job.py", tmp_path, fake_nvml_lib)
    _check_totals(r0, r1)
    # issue 19: the units and phases ride in the same all-reduce; the per-unit figures are job-wide
    for r in (r0, r1):
        samples, tokens, _ = r["job_units"]  # the job's, then this rank's own
        assert samples == r0["job_units"][2] + r1["job_units"][2] == 300 * 4 + 300 * 5
        assert tokens == 16 * samples
        joules = r["job_energy_kwh"] * J_PER_KWH
        assert r["job_metrics"]["carbon/energy_j_per_sample"] == pytest.approx(joules / samples, rel=1e-9)
        assert r["job_metrics"]["carbon/energy_j_per_token"] == pytest.approx(joules / tokens, rel=1e-9)
        assert set(r["job_phases_kwh"]) == {"train", "eval", "other"}
        assert sum(r["job_phases_kwh"].values()) == pytest.approx(r["job_energy_kwh"], rel=1e-9)
        assert r["job_metrics"]["carbon/phase/eval_kwh"] == r["job_phases_kwh"]["eval"]


@pytest.mark.timeout(180)
def test_budget_crossed_on_the_total_stops_both_ranks_at_the_same_step(tmp_path, fake_nvml_lib):
    # rank 0 emits 7.4 J worth (2.06 mg), rank 1 5 J (1.39 mg): only the total (3.44 mg) crosses 3 mg
    r0, r1 = run_job("core_job.py", tmp_path, fake_nvml_lib, {"TEST_BUDGET_KG": "3e-6"})
    assert r0["own"]["co2eq_kg"] < 3e-6 and r1["own"]["co2eq_kg"] < 3e-6
    assert r0["stopped_at"] is not None and r0["stopped_at"] == r1["stopped_at"] < 300


def _check_totals(r0: dict, r1: dict) -> None:
    assert r0["role"]["local_rank"] == 0 and r1["role"]["local_rank"] == 1
    # host meters only on local rank 0: CPU 3.6 J and DRAM 1.8 J, exactly, once
    assert r0["own"]["energy_cpu_kwh"] == pytest.approx(3.6 / J_PER_KWH, rel=1e-12)
    assert r0["own"]["energy_ram_kwh"] == pytest.approx(1.8 / J_PER_KWH, rel=1e-12)
    assert r1["own"]["energy_cpu_kwh"] is None and r1["own"]["energy_ram_kwh"] is None
    # one GPU per rank, both summed in the job total
    assert r0["own"]["energy_gpu_kwh"] == pytest.approx(2.0 / J_PER_KWH, rel=1e-12)
    assert r1["own"]["energy_gpu_kwh"] == pytest.approx(5.0 / J_PER_KWH, rel=1e-12)
    assert r0["devices"][0].startswith("gpu:0") and r1["devices"][0].startswith("gpu:1")
    for r in (r0, r1):
        assert r["job"]["energy_cpu_kwh"] == pytest.approx(3.6 / J_PER_KWH, rel=1e-12)
        assert r["job"]["energy_gpu_kwh"] == pytest.approx(7.0 / J_PER_KWH, rel=1e-12)
        assert r["job"]["co2eq_kg"] == pytest.approx(12.4 / J_PER_KWH, rel=1e-9)  # 1000 g/kWh
        # each rank's own energy rides along: rank 0 = CPU + DRAM + its GPU, rank 1 = its GPU
        assert r["job_metrics"]["carbon/rank0/energy_kwh"] == pytest.approx(7.4 / J_PER_KWH, rel=1e-9)
        assert r["job_metrics"]["carbon/rank1/energy_kwh"] == pytest.approx(5.0 / J_PER_KWH, rel=1e-9)


@pytest.mark.timeout(240)
def test_lightning_ddp_job_totals_count_each_gpu_and_the_host_once(tmp_path, fake_nvml_lib):
    r0, r1 = run_job("lightning_job.py", tmp_path, fake_nvml_lib, launcher="lightning")
    _check_totals(r0, r1)
    assert r0["stopped_at"] == r1["stopped_at"] == 60


@pytest.mark.timeout(240)
def test_lightning_ddp_budget_on_the_total_stops_both_ranks_at_the_same_step(tmp_path, fake_nvml_lib):
    r0, r1 = run_job("lightning_job.py", tmp_path, fake_nvml_lib, {"TEST_BUDGET_KG": "3e-6"}, "lightning")
    assert r0["own"]["co2eq_kg"] < 3e-6 and r1["own"]["co2eq_kg"] < 3e-6
    assert r0["stopped_at"] == r1["stopped_at"] < 60


def test_roles_from_launcher_environments():
    torchrun_env = {
        "RANK": "5",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "8",
        "LOCAL_WORLD_SIZE": "4",
        "GROUP_RANK": "1",
    }
    role = role_from_env(torchrun_env)
    assert role == Role(rank=5, local_rank=1, world_size=8, local_world_size=4, node_rank=1)
    assert not role.host_meters  # local rank 1: another process measures the host
    slurm = {
        "SLURM_PROCID": "4",
        "SLURM_LOCALID": "0",
        "SLURM_NTASKS": "8",
        "SLURM_NTASKS_PER_NODE": "4(x2)",
        "SLURM_NODEID": "1",
    }
    role = role_from_env(slurm)
    assert role == Role(rank=4, local_rank=0, world_size=8, local_world_size=4, node_rank=1)
    assert role.host_meters
    assert role_from_env({}).distributed is False


def _forecast_rank(rank: int, store_path: str, out: str) -> None:
    import torch.distributed as dist

    from carbon_core.distributed import job_totals
    from carbon_core.snapshot import Snapshot

    store = dist.FileStore(store_path, 2)
    dist.init_process_group("gloo", rank=rank, world_size=2, store=store)
    # the same spent kg, but each rank's sampler saw a slightly different progress
    own = Snapshot(co2eq_kg=0.025, energy_kwh=0.05, progress=(0.49, 0.51)[rank], predicted_co2eq_kg=0.1)
    job = job_totals(own)
    Path(out, f"forecast{rank}.json").write_text(json.dumps(job.predicted_co2eq_kg))
    dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_job_forecast_is_identical_on_every_rank(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_forecast_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    f0, f1 = (json.loads((tmp_path / f"forecast{r}.json").read_text()) for r in (0, 1))
    assert f0 == f1 == pytest.approx(0.05 / 0.5)  # summed kg over the ranks' mean progress
