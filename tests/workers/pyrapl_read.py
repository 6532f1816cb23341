"""Reads the fake powercap tree (bind-mounted at /sys/class/powercap) through pyRAPL.

Run by tests/test_pyrapl.py inside a private mount namespace. Writes counters in place
(pyRAPL keeps the files open and seeks back, as it does on sysfs) and prints the meter's
cumulative joules after each step as JSON lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from carbon_core.meters.pyrapl import PyRaplMeter

zones = Path(sys.argv[1])  # the fake tree's intel-rapl:0 directory (its real path)


def add(rel: str, microjoules: int) -> None:
    path = zones / rel / "energy_uj"
    path.write_text(f"{int(path.read_text()) + microjoules}\n")


meter = PyRaplMeter()
print(json.dumps(sorted(c.name for c in meter.channels)))
add(".", 12_000_000)
add("intel-rapl:0:2", 3_000_000)
print(json.dumps(meter.read()))
add(".", 500_000)
print(json.dumps(meter.read()))
