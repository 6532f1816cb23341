"""An example plug-in meter: an accelerator whose driver writes its cumulative joules to a file.

``EXAMPLE_GPU_ENERGY_FILE`` names the file (one number, joules since the device started);
without it the device is absent. ``BrokenMeter`` breaks the contract (an unknown component),
to show that a broken plug-in costs one warning and nothing else.
"""

from __future__ import annotations

import os
from typing import Any

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, Meter
from carbon_core.meters.registry import HardwareAbsent


class ExampleGpuMeter(Meter):
    name = "example-gpu"
    measures = "gpu"

    def __init__(self, faults: FaultLog | None = None, **options: Any) -> None:
        super().__init__(faults)
        self.path = os.environ.get("EXAMPLE_GPU_ENERGY_FILE", "")
        if not self.path or not os.path.exists(self.path):
            raise HardwareAbsent("no example accelerator here (EXAMPLE_GPU_ENERGY_FILE is not set)")
        self.options = options  # gpus and local_rank, as the built-in GPU meters get them
        self.start = self._joules()
        self.last = 0.0
        self.channels = (Channel("gpu:example0", "gpu", "counter"),)
        self.info = {"devices": ["gpu:example0 Example accelerator"], "options": sorted(options)}

    def _joules(self) -> float:
        with open(self.path) as fh:
            return float(fh.read())

    def read(self) -> dict[str, float]:
        try:
            self.last = max(self.last, self._joules() - self.start)
        except (OSError, ValueError) as exc:
            self.faults.warn("example-gpu:read", f"example-gpu: cannot read {self.path} ({exc})")
        return {"gpu:example0": self.last}


class BrokenMeter(Meter):
    name = "example-broken"
    measures = "disk"

    def read(self) -> dict[str, float]:
        return {}
