"""One node of a two-node job (run twice by tests/test_report_formats.py, NODE_RANK 0 and 1).

Each node has its own fake RAPL tree and its own fake GPU (its host-wide meters run, as on
a real node, in its local rank 0), writes its run log to TEST_LOG_DIR, and adds scripted
energy once its tracker has sampled: (node + 1) x (3.6 J package, 1.8 J DRAM, 2 J GPU).
Writes node<N>.json: its own final figures and the job's totals (one all-reduce).
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

node = int(os.environ["NODE_RANK"])
scale = node + 1
uuid = f"GPU-{node}{node}{node}{node}{node}{node}{node}{node}-0000-0000-0000-000000000000"
dist.init_process_group("gloo")
tracker = Tracker(interval_s=0.05, zone="DE", log_dir=os.environ["TEST_LOG_DIR"])
tracker.start()
dist.barrier()


def sampled(n: int) -> None:
    deadline = time.monotonic() + 30
    while tracker.intervals < n and time.monotonic() < deadline:
        time.sleep(0.01)


sampled(2)
FakePowercap.attach(os.environ["TEST_POWERCAP_BASE"]).add("package-0", 3_600_000 * scale)
FakePowercap.attach(os.environ["TEST_POWERCAP_BASE"]).add("dram-0", 1_800_000 * scale)
fake_nvml.write_scenario(
    os.environ[fake_nvml.SCENARIO_ENV], [fake_nvml.FakeGpu(uuid, energy_mj=[1000 + 2000 * scale])]
)
sampled(tracker.intervals + 3)
dist.barrier()
job, _ = tracker.job_snapshot()
final = tracker.stop()
with open(os.path.join(os.environ["TEST_OUT_DIR"], f"node{node}.json"), "w") as fh:
    json.dump({"final": final.to_dict(), "job": job.to_dict(), "log": tracker.log_path}, fh)
dist.destroy_process_group()
