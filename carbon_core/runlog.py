"""The run log: one JSON Lines file per run (and per node), appended and flushed as it goes.

Schema ``carbon-core/run-log/1`` (documented in the README, "The run log"): every line is
one JSON object with a ``type``:

* ``header``: ``schema``, ``run_id``, ``started_at`` (ISO 8601 UTC), ``host``, ``node_rank``,
  ``versions``, ``zone``, ``intensity_source``, ``location_source``, ``channels``
  (channel -> component and method), ``devices``, ``hardware`` (per meter), ``config``
  (secrets removed);
* ``interval``: ``t0``, ``t1`` (s since start), ``joules`` (cumulative J per channel at
  ``t1``), ``energy_j``, ``co2eq_g`` (this interval, PUE included), ``intensity``
  (gCO2eq/kWh in force), ``intensity_source``, ``power_w``;
* ``warning``: ``t``, ``message``;
* ``final``: ``ended_at`` and ``snapshot`` (the final :class:`~carbon_core.snapshot.Snapshot`).

Each line is written whole and flushed to the OS at once, so a process killed with
SIGKILL loses at most the interval in flight and the file stays readable up to its last
full line. The file is created exclusively and never through a symlink, inside the
chosen directory only. A write that fails (disk full, directory gone) is reported once
and the log stops; training never notices.

Where: ``log_dir`` (argument), else ``CARBON_LOG_DIR``, else ``./carbon_runs``; ``"off"``
writes none. The file is named ``<UTC start>-<host>[-node<rank>]-<run id>.jsonl``.

Reading: :func:`read_records` yields the records and stops quietly at a torn last line;
:func:`load` turns one or several logs into a :class:`~carbon_core.runrecord.LoadedRun`
(totals as a :class:`~carbon_core.snapshot.Snapshot`, per node, and a time series). A log
without a final record (a run killed mid-way, or still going) is totalled from its last
interval, and the totals say so in their warnings. Several logs given together are one
job (the nodes of a multi-node run): their energy and emissions add up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from carbon_core.accounting import Interval
from carbon_core.faults import FaultLog
from carbon_core.snapshot import Snapshot

if TYPE_CHECKING:
    from carbon_core.runrecord import LoadedRun

SCHEMA = "carbon-core/run-log/1"


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class RunLog:
    """Appends records to one run's file; every method is safe to call after a failure."""

    def __init__(self, fh: IO[str] | None, path: Path | None, faults: FaultLog) -> None:
        self._fh = fh
        self.path = path
        self._faults = faults

    @classmethod
    def create(cls, log_dir: str | os.PathLike[str], header: Mapping[str, Any], faults: FaultLog) -> RunLog:
        """Create the run's file in ``log_dir`` and write its header (never raises)."""
        directory = Path(log_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        host = socket.gethostname().replace(os.sep, "_") or "host"
        node = header.get("node_rank")
        name = f"{stamp}-{host}{'' if node in (None, 0) else f'-node{node}'}-{header['run_id']}.jsonl"
        path = directory / name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(path, flags, 0o644)
            fh = os.fdopen(fd, "a", encoding="utf-8")
        except (OSError, ValueError) as exc:  # ValueError: a path with a NUL byte
            faults.warn("runlog:create", f"run log disabled: cannot create a file in {directory} ({exc})")
            return cls(None, None, faults)
        log = cls(fh, path, faults)
        log.write({"type": "header", "schema": SCHEMA, **header})
        return log

    def write(self, record: Mapping[str, Any]) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self._fh.flush()
        except (OSError, ValueError) as exc:
            self._faults.warn("runlog:write", f"run log {self.path} stopped: write failed ({exc})")
            self._close_quietly()

    def interval(self, iv: Interval) -> None:
        self.write(
            {
                "type": "interval",
                "t0": round(iv.t0, 6),
                "t1": round(iv.t1, 6),
                "joules": {k: round(v, 6) for k, v in iv.joules.items()},
                "energy_j": round(iv.energy_j, 6),
                "co2eq_g": iv.co2eq_g,
                "intensity": iv.intensity,
                "intensity_source": iv.intensity_source,
                "power_w": round(iv.power_w, 4),
            }
        )

    def warning(self, t: float, message: str) -> None:
        self.write({"type": "warning", "t": round(t, 3), "message": message})

    def final(self, snapshot: Snapshot) -> None:
        self.write({"type": "final", "ended_at": _now_iso(), "snapshot": snapshot_dict(snapshot)})
        self._close_quietly()

    def _close_quietly(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def snapshot_dict(snapshot: Snapshot) -> dict[str, Any]:
    out = asdict(snapshot)
    out["methods"] = dict(snapshot.methods)
    out["warnings"] = list(snapshot.warnings)
    out["devices"] = list(snapshot.devices)
    return out


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The full records of a run log: a torn last line (the writer died in the middle of
    it) is dropped, a damaged line skipped; see :mod:`carbon_core.runrecord`."""
    from carbon_core.runrecord import read_file

    return iter(read_file(Path(path))[0])


def load(*paths: str | os.PathLike[str]) -> LoadedRun:
    """One job's totals, nodes and time series from its log file(s).

    Raises :class:`~carbon_core.runrecord.RunLogError` (one line, naming the file) when a
    file is missing, unreadable or not a carbon-core run log.
    """
    from carbon_core.runrecord import load_run

    return load_run(paths)
