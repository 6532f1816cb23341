"""The machine-readable reports: ``json`` (the total, its bands, the merge rules, each run
and each log) and ``csv`` (one row per log, a row per run when there are several, and the
total; the rows of the logs add up to the total).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any, Optional

from carbon_core.bands import uncertainty
from carbon_core.report import facts
from carbon_core.runlog.merge import LoadedRun, Row
from carbon_core.snapshot import Snapshot


def _node_json(row: Row) -> dict[str, Any]:
    n = row.node
    return {
        "path": str(n.path),
        "run_id": n.run_id,
        "host": n.header.get("host"),
        "node_rank": n.header.get("node_rank"),
        "rank": n.header.get("rank"),
        "job_id": n.header.get("job_id"),
        "started_at": n.header.get("started_at"),
        "complete": n.complete,
        "run": row.run,
        "snapshot": n.snapshot.to_dict(),
        "carried_in": n.carried.state(),
        "counted": row.snapshot.to_dict(),
    }


def as_json(run: LoadedRun) -> dict[str, Any]:
    """The total (the snapshot's fields), completeness, bands, the merge rules, and the
    detail: each run's totals and each log's own and counted figures."""
    return {
        **run.snapshot.to_dict(),
        "complete": run.complete,
        "uncertainty": uncertainty(run.snapshot),
        "merge": {
            "rules": list(run.rules),
            "runs": [{"label": g.label, "rules": list(g.rules), **g.snapshot.to_dict()} for g in run.runs],
        },
        "hardware": facts.hardware(run),
        "location": facts.location(run),
        "carbon_core_versions": facts.versions(run),
        "nodes": [_node_json(r) for r in run.rows],
    }


CSV_COLUMNS = (
    "row",
    "run",
    "log",
    "host",
    "node_rank",
    "rank",
    "run_id",
    "started_at",
    "complete",
    "duration_s",
    "energy_gpu_kwh",
    "energy_cpu_kwh",
    "energy_ram_kwh",
    "energy_kwh",
    "energy_low_kwh",
    "energy_high_kwh",
    "co2eq_kg",
    "co2eq_low_kg",
    "co2eq_high_kg",
    "pue",
    "intensity_gco2eq_per_kwh",
    "zone",
    "intensity_source",
    "carried_in_not_counted_s",
)


def _figures(snap: Snapshot) -> dict[str, Any]:
    bands = uncertainty(snap)
    return {
        "duration_s": snap.duration_s,
        **{f"energy_{c}_kwh": v for c, v in snap.energy_by_component().items()},
        "energy_kwh": snap.energy_kwh,
        "energy_low_kwh": bands["energy_kwh"][0],
        "energy_high_kwh": bands["energy_kwh"][1],
        "co2eq_kg": snap.co2eq_kg,
        "co2eq_low_kg": bands["co2eq_kg"][0],
        "co2eq_high_kg": bands["co2eq_kg"][1],
        "pue": snap.pue,
        "intensity_gco2eq_per_kwh": snap.intensity_gco2eq_per_kwh,
        "zone": snap.zone,
        "intensity_source": snap.intensity_source,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return repr(value) if isinstance(value, float) else str(value)


def as_csv(run: LoadedRun) -> str:
    """One row per log (``row`` = ``node``: what it adds to the total), one per run when there
    are several (``run``), and the total (``total``). Empty cells: not measured or not known."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def put(kind: str, run_no: Optional[int], snap: Snapshot, extra: Mapping[str, Any]) -> None:
        cells = {"row": kind, "run": None if run_no is None else run_no + 1, **_figures(snap), **extra}
        writer.writerow([_cell(cells.get(c)) for c in CSV_COLUMNS])

    for r in run.rows:
        h = r.node.header
        put(
            "node",
            r.run,
            r.snapshot,
            {
                "log": str(r.node.path),
                "host": h.get("host"),
                "node_rank": h.get("node_rank"),
                "rank": h.get("rank"),
                "run_id": r.node.run_id,
                "started_at": h.get("started_at"),
                "complete": r.node.complete,
                "carried_in_not_counted_s": r.subtracted.duration_s or None,
            },
        )
    if len(run.runs) > 1:
        for k, group in enumerate(run.runs):
            put("run", k, group.snapshot, {"log": group.label})
    put("total", None, run.snapshot, {"complete": run.complete})
    return out.getvalue()
