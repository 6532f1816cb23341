"""Running the scripts beside this file as a user would, and reading what they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

SCRIPTS = Path(__file__).resolve().parent
_UNITS = {"kg": 1.0, "g": 1e-3, "mg": 1e-6}


def _env(env: Optional[dict[str, Optional[str]]]) -> dict[str, str]:
    merged = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def run_script(
    name: str, *args: str, cwd: Path, env: Optional[dict[str, Optional[str]]] = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``python <name> <args>`` in ``cwd``; ``env`` entries set (None: unset) over this process's
    environment (the test suite's: no CARBON_* but CARBON_LOG_DIR=off)."""
    cwd.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(SCRIPTS / name), *args]
    return subprocess.run(command, cwd=cwd, env=_env(env), capture_output=True, text=True, timeout=timeout)


def run_in_terminal(
    name: str, *args: str, cwd: Path, env: Optional[dict[str, Optional[str]]] = None, timeout: float = 240
) -> tuple[int, str]:
    """As :func:`run_script`, but stdout and stderr are one terminal (a pseudo-terminal), as
    in a person's shell: progress bars redraw their line. Returns (exit code, what it showed)."""
    import pty
    import selectors
    import time

    cwd.mkdir(parents=True, exist_ok=True)
    primary, secondary = pty.openpty()
    command = [sys.executable, str(SCRIPTS / name), *args]
    child = subprocess.Popen(command, cwd=cwd, env=_env(env), stdin=subprocess.DEVNULL, stdout=secondary,
                             stderr=secondary)  # fmt: skip
    os.close(secondary)
    shown, deadline = bytearray(), time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(primary, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=1.0):
                continue
            try:
                data = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            shown += data
    os.close(primary)
    if child.poll() is None:  # past the deadline
        child.kill()
    return child.wait(), shown.decode(errors="replace")


def summary_co2eq_kg(text: str) -> float:
    """The CO2eq total of the one carbon-core summary in ``text`` (as printed: 3 significant
    figures), in kg."""
    found = re.findall(r"^  CO2eq ([0-9.]+) (kg|g|mg) \(", text, flags=re.MULTILINE)
    assert len(found) == 1, text
    value, unit = found[0]
    return float(value) * _UNITS[unit]
