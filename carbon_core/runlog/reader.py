"""Reading one run log back (format: :mod:`carbon_core.runlog.schema`) as a :class:`NodeRun`.

A torn last line (the writer died in the middle of it) is dropped silently; a damaged line
elsewhere is skipped and counted. A log with a ``final`` record is totalled from that
record's snapshot. A log without one (the run was killed, or is still going) is totalled
from its last full interval: the cumulative joules per channel there, the emissions of
every interval up to there, and a warning that says so. Errors are :class:`RunLogError`,
one line naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from carbon_core.accounting import J_PER_KWH
from carbon_core.bands import component_of
from carbon_core.meters.base import COMPONENTS
from carbon_core.runlog.schema import SCHEMA_PREFIX, SUPPORTED_MAJOR
from carbon_core.snapshot import NOT_MEASURED, Snapshot


class RunLogError(Exception):
    """A run log that cannot be read; the message is one line and names the file."""


@dataclass(frozen=True)
class NodeRun:
    """One log file: its header, totals, whether it ended properly, and its intervals.

    ``offset_s`` places its start on the clock of the job it belongs to."""

    path: Path
    header: Mapping[str, Any]
    snapshot: Snapshot
    complete: bool
    intervals: tuple[Mapping[str, Any], ...]
    offset_s: float = 0.0

    @property
    def label(self) -> str:
        host = str(self.header.get("host") or "host")
        rank, world = self.header.get("rank"), self.header.get("world_size")
        if rank is not None and isinstance(world, int) and world > 1:
            return f"{host}/rank{rank}"
        node = self.header.get("node_rank")
        return host if node in (None, 0) else f"{host}/node{node}"

    @property
    def run_id(self) -> str:
        return str(self.header.get("run_id") or "")


def channel_components(header: Mapping[str, Any]) -> dict[str, str]:
    """Channel -> component, from the header's ``channels`` (by name where it says none)."""
    channels = header.get("channels")
    out: dict[str, str] = {}
    if isinstance(channels, Mapping):
        for name, info in channels.items():
            comp = info.get("component") if isinstance(info, Mapping) else None
            out[str(name)] = str(comp) if comp in COMPONENTS else component_of(str(name))
    return out


def joules_of(record: Mapping[str, Any]) -> dict[str, float]:
    """An interval record's cumulative joules per channel (values that are not numbers left out)."""
    value = record.get("joules")
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, float] = {}
    for k, v in value.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def parse_lines(lines: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    """The full records among ``lines`` and how many damaged lines were skipped; a last line
    without its newline is torn and dropped. ``ValueError`` when the first line is not JSON."""
    records: list[dict[str, Any]] = []
    skipped = 0
    for number, line in enumerate(lines, 1):
        if number == len(lines) and not line.endswith("\n"):
            break  # torn last line
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == 1:
                raise ValueError("not a carbon-core run log (not JSON Lines)") from None
            skipped += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def read_file(path: Path) -> tuple[list[dict[str, Any]], int]:
    """All full records of one file and how many damaged lines were skipped."""
    try:
        with path.open(encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        raise RunLogError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunLogError(f"{path}: is a directory, not a run log") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunLogError(f"{path}: cannot read ({reason})") from None
    try:
        return parse_lines(lines)
    except ValueError as exc:
        raise RunLogError(f"{path}: {exc}") from None


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The full records of a run log, in order (see :func:`parse_lines`)."""
    return iter(read_file(Path(path))[0])


def _snapshot_from_intervals(
    header: Mapping[str, Any], intervals: Sequence[Mapping[str, Any]], warnings: list[str]
) -> Snapshot:
    components = channel_components(header)
    raw = header.get("channels")
    channels: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    methods = {
        str(n): str(info.get("method", "estimated"))
        for n, info in sorted(channels.items())
        if isinstance(info, Mapping)
    }
    joules = joules_of(intervals[-1]) if intervals else {}
    kwh: dict[str, Optional[float]] = {c: None for c in COMPONENTS}
    for name in set(components) | set(joules):
        comp = components.get(name, component_of(name))
        if comp in kwh:
            kwh[comp] = (kwh[comp] or 0.0) + joules.get(name, 0.0) / J_PER_KWH
    methods.update({c: NOT_MEASURED for c in COMPONENTS if kwh[c] is None})
    last = intervals[-1] if intervals else {}
    raw_config = header.get("config")
    config: Mapping[str, Any] = raw_config if isinstance(raw_config, Mapping) else {}
    t_end = float(last.get("t1", 0.0))
    warnings = [
        *warnings,
        (
            f"the run log has no final record (the run was killed or is still going): totals up to "
            f"its last interval, t = {t_end:.1f} s"
        ),
    ]
    return Snapshot(
        duration_s=t_end,
        energy_kwh=sum(v for v in kwh.values() if v is not None),
        energy_gpu_kwh=kwh["gpu"],
        energy_cpu_kwh=kwh["cpu"],
        energy_ram_kwh=kwh["ram"],
        co2eq_kg=sum(float(iv.get("co2eq_g") or 0.0) for iv in intervals) / 1000.0,
        power_w=float(last.get("power_w", 0.0)),
        intensity_gco2eq_per_kwh=float(last.get("intensity", 0.0)),
        zone=header.get("zone"),
        intensity_source=str(last.get("intensity_source") or header.get("intensity_source") or ""),
        methods=methods,
        warnings=tuple(warnings),
        devices=tuple(str(d) for d in header.get("devices") or ()),
        pue=float(config.get("pue", 1.0)),
    )


def node_from_records(path: Path, records: Sequence[Mapping[str, Any]], skipped: int = 0) -> NodeRun:
    """One log's records (``skipped``: damaged lines left out) as a :class:`NodeRun`."""
    header = records[0] if records and records[0].get("type") == "header" else None
    schema = str(header.get("schema", "")) if header else ""
    if header is None or not schema.startswith(SCHEMA_PREFIX):
        raise RunLogError(f"{path}: not a carbon-core run log (no header record)")
    major = schema[len(SCHEMA_PREFIX) :].split(".", 1)[0]
    if major != str(SUPPORTED_MAJOR):
        raise RunLogError(f"{path}: run log schema {schema!r} is newer than this carbon-core reads")
    intervals = tuple(r for r in records if r.get("type") == "interval")
    final = next((r for r in records if r.get("type") == "final"), None)
    damaged = [f"{skipped} damaged line(s) in the run log were skipped"] if skipped else []
    if final is not None and isinstance(final.get("snapshot"), Mapping):
        try:
            snapshot = Snapshot.from_dict(final["snapshot"])
        except (TypeError, ValueError) as exc:
            raise RunLogError(f"{path}: the final record is malformed ({exc})") from None
        if damaged:
            snapshot = replace(snapshot, warnings=(*snapshot.warnings, *damaged))
        return NodeRun(path, header, snapshot, True, intervals)
    warnings = [str(r.get("message")) for r in records if r.get("type") == "warning"] + damaged
    try:
        snapshot = _snapshot_from_intervals(header, intervals, warnings)
    except (TypeError, ValueError, AttributeError) as exc:
        raise RunLogError(f"{path}: malformed interval record ({exc})") from None
    return NodeRun(path, header, snapshot, False, intervals)


def resolve(path: str | os.PathLike[str]) -> Path:
    """A log path; a directory stands for its newest ``*.jsonl`` file."""
    p = Path(path)
    if p.is_dir():
        logs = sorted(p.glob("*.jsonl"), key=lambda f: (f.stat().st_mtime, f.name))
        if not logs:
            raise RunLogError(f"{p}: no run log (*.jsonl) in this directory")
        return logs[-1]
    return p


def load_node(path: str | os.PathLike[str]) -> NodeRun:
    """One log file (a directory: its newest log) read back; see the module docstring."""
    p = resolve(path)
    return node_from_records(p, *read_file(p))
