"""Writing a run log (format: :mod:`carbon_core.runlog.schema`), appended and flushed as it goes.

Each line is written whole and flushed to the OS at once, so a process killed with
SIGKILL loses at most the interval in flight and the file stays readable up to its last
full line. The file is created exclusively and never through a symlink, inside the
chosen directory only. A write that fails (disk full, directory gone) is reported once
and the log stops; training never notices.

The file is named ``<UTC start>-<host>[-node<rank>]-<run id>.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Optional

from carbon_core.accounting import Interval
from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel
from carbon_core.phases import Span
from carbon_core.runlog.schema import SCHEMA, TIME_FORMAT
from carbon_core.snapshot import Snapshot
from carbon_core.units import sci_block


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _now_iso() -> str:
    return time.strftime(TIME_FORMAT, time.gmtime())


def header(
    *,
    run_id: str,
    job_id: Optional[str],
    node_rank: Optional[int],
    rank: Optional[int],
    world_size: Optional[int],
    version: str,
    zone: Optional[str],
    intensity_source: str,
    location_source: Optional[str],
    channels: Mapping[str, Channel],
    devices: Sequence[str],
    hardware: Mapping[str, Mapping[str, Any]],
    config: Mapping[str, Any],
    location: Optional[str] = None,
) -> dict[str, Any]:
    """The header record's fields (``type`` and ``schema`` are added by :meth:`RunLog.create`);
    ``started_at``, ``host`` and the Python version are taken here and now."""
    return {
        "run_id": run_id,
        "job_id": job_id,
        "started_at": _now_iso(),
        "host": platform.node(),
        "node_rank": node_rank,
        "rank": rank,
        "world_size": world_size,
        "versions": {"carbon_core": version, "python": platform.python_version()},
        "zone": zone,
        "intensity_source": intensity_source,
        "location_source": location_source,
        "location": location,
        "channels": {n: {"component": c.component, "method": c.method} for n, c in channels.items()},
        "devices": list(devices),
        "hardware": dict(hardware),
        "config": dict(config),
    }


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
        """Append one record and flush it; the first failure stops the log, with one warning."""
        if self._fh is None:
            return
        try:
            self._fh.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            self._fh.flush()
        except (OSError, ValueError) as exc:
            self._faults.warn("runlog:write", f"run log {self.path} stopped: write failed ({exc})")
            self._close_quietly()

    def interval(
        self,
        iv: Interval,
        phases: Optional[Mapping[str, float]] = None,
        samples: Optional[float] = None,
        tokens: Optional[float] = None,
    ) -> None:
        """One interval; ``phases``: its joules split by phase (they add up to ``energy_j``);
        ``samples``, ``tokens``: counted by this run so far (not what a checkpoint carried in)."""
        units = {k: v for k, v in (("samples", samples), ("tokens", tokens)) if v is not None}
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
                **({"phases": dict(phases)} if phases else {}),
                **units,
            }
        )

    def phase(self, span: Span) -> None:
        """One closed span of a marked phase (validation, checkpoint, a name given to ``Tracker.phase``)."""
        self.write({"type": "phase", "name": span.name, "t0": round(span.t0, 6), "t1": round(span.t1, 6)})

    def warning(self, t: float, message: str) -> None:
        self.write({"type": "warning", "t": round(t, 3), "message": message})

    def final(self, snapshot: Snapshot, embodied_kg_per_hour: Optional[float] = None) -> None:
        """The final record: the final snapshot (units and phases included), the per-unit
        figures and the SCI block (:func:`~carbon_core.units.sci_block`)."""
        self.write(
            {
                "type": "final",
                "ended_at": _now_iso(),
                "snapshot": snapshot.to_dict(),
                "per_unit": snapshot.per_unit(),
                "sci": sci_block(snapshot, embodied_kg_per_hour),
            }
        )
        self._close_quietly()

    def _close_quietly(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()
