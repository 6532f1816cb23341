"""One rank of a two-process job (run under torchrun by tests/test_distributed.py).

Rank 0 also plays the hardware: after every rank's tracker has started it advances the
fake powercap counters and the fake NVML energy counters by scripted amounts.
Writes rank<N>.json: this rank's own final figures, the job totals, the stop step.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch.distributed as dist

from carbon_core import Tracker

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fake_nvml
from powercap import FakePowercap

scenario, powercap_base = os.environ["FAKE_NVML_SCENARIO"], os.environ["TEST_POWERCAP_BASE"]
budget = float(os.environ["TEST_BUDGET_KG"]) if os.environ.get("TEST_BUDGET_KG") else None
dist.init_process_group("gloo")
rank = dist.get_rank()
tracker = Tracker(interval_s=0.02, intensity=1000.0, log_dir="off", budget_kg=budget)
tracker.start()
dist.barrier()
stopped_at = None
for step in range(1, 301):
    if rank == 0 and step == 5:  # the scripted energy: 3.6 J package-0, 1.8 J dram-0, 2 J and 5 J GPUs
        tree = FakePowercap.attach(powercap_base)
        tree.add("package-0", 3_600_000)
        tree.add("dram-0", 1_800_000)
        fake_nvml.write_scenario(
            scenario,
            [
                fake_nvml.FakeGpu("GPU-00000000-0000-0000-0000-000000000000", energy_mj=[1000 + 2000]),
                fake_nvml.FakeGpu("GPU-11111111-1111-1111-1111-111111111111", energy_mj=[1000 + 5000]),
            ],
        )
    with tracker.phase("train"):
        time.sleep(0.01)
    tracker.count(samples=4 + rank, tokens=(4 + rank) * 16)  # issue 19: units summed by the all-reduce
    if step % 50 == 0:
        with tracker.phase("eval"):  # a phase of the user's own, on every rank
            time.sleep(0.005)
    if step % 10 == 0:  # logging time: a collective on every rank at the same step
        job, decision = tracker.job_snapshot()
        if decision.stop:
            stopped_at = step
            break
final = tracker.stop()
job, _ = tracker.job_snapshot()
out = os.path.join(os.environ["TEST_OUT_DIR"], f"rank{rank}.json")
with open(out, "w") as fh:
    json.dump(
        {
            "rank": rank,
            "stopped_at": stopped_at,
            "role": tracker.role.__dict__,
            "own": {
                k: getattr(final, k)
                for k in ("energy_cpu_kwh", "energy_ram_kwh", "energy_gpu_kwh", "co2eq_kg")
            },
            "job": {
                k: getattr(job, k) for k in ("energy_cpu_kwh", "energy_ram_kwh", "energy_gpu_kwh", "co2eq_kg")
            },
            "devices": list(final.devices),
            "job_metrics": job.to_metrics(),
            "job_units": [job.samples, job.tokens, final.samples],
            "job_phases_kwh": {name: p.energy_kwh for name, p in job.phases.items()},
            "job_energy_kwh": job.energy_kwh,
        },
        fh,
    )
dist.destroy_process_group()
