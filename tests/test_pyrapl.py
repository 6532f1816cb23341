"""The optional pyRAPL backend, reading a fake powercap tree through pyRAPL itself.

pyRAPL only reads /sys/class/powercap, so the test mounts the fake tree there inside a
private mount namespace of a child process (root and `unshare` needed; skipped otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from powercap import FakePowercap

pytest.importorskip("pyRAPL")
WORKER = Path(__file__).parent / "workers" / "pyrapl_read.py"


def _namespace_works() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs none /sys/class"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _namespace_works(), reason="needs root and unshare to mount a fake /sys/class/powercap"
)
def test_pyrapl_backend_reports_the_scripted_deltas(tmp_path):
    tree = FakePowercap(tmp_path, sockets=1, dram=True)
    mount = (
        "mount -t tmpfs none /sys/class && mkdir /sys/class/powercap && "
        f"mount --bind {tree.root} /sys/class/powercap && "
        f"exec {sys.executable} {WORKER} {tree.zones['package-0']}"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    channels, first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert channels == ["cpu:dram-0", "cpu:package-0"]
    assert first == {"cpu:package-0": 12.0, "cpu:dram-0": 3.0}
    assert second == {"cpu:package-0": 12.5, "cpu:dram-0": 3.0}
