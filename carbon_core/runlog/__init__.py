"""The run log: one JSON Lines file per run (and per node), written as the run goes and
read back afterwards.

Layers, each importing only those before it: :mod:`.schema` (the format), :mod:`.writer`
(:class:`RunLog`), :mod:`.reader` (one file back as a :class:`NodeRun`), :mod:`.merge`
(one job from its nodes: :func:`load`, totals and the time series). Where the log goes:
``log_dir`` (argument), else ``CARBON_LOG_DIR``, else ``./carbon_runs``; ``"off"`` writes none.
"""

from __future__ import annotations

from carbon_core.runlog.merge import LoadedRun, Point, load
from carbon_core.runlog.reader import NodeRun, RunLogError, read_records
from carbon_core.runlog.schema import SCHEMA
from carbon_core.runlog.writer import RunLog, header, new_run_id

__all__ = [
    "SCHEMA",
    "LoadedRun",
    "NodeRun",
    "Point",
    "RunLog",
    "RunLogError",
    "header",
    "load",
    "new_run_id",
    "read_records",
]
