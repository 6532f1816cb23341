"""Reading run logs back: one job's totals, its nodes and its time series.

A log with a ``final`` record is totalled from that record's snapshot. A log without one
(the run was killed, or is still going) is totalled from its last full interval: the
cumulative joules per channel there, the emissions of every interval up to there, and a
warning that says so. Several logs given together are one job (the nodes of a multi-node
run): energy and emissions add up, durations overlap (each node's start is placed by its
header's ``started_at``), and a channel measured differently on two nodes counts with the
less precise method. See :mod:`carbon_core.runlog` for the schema.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from carbon_core.accounting import J_PER_KWH
from carbon_core.meters.base import COMPONENTS
from carbon_core.snapshot import NOT_MEASURED, Snapshot
from carbon_core.summary import component_of

#: methods from the most to the least precise
PRECISION = ("counter", "power-sampled", "estimated")
SCHEMA_PREFIX = "carbon-core/run-log/"
SUPPORTED_MAJOR = 1


class RunLogError(Exception):
    """A run log that cannot be read; the message is one line and names the file."""


@dataclass(frozen=True)
class Point:
    """The job at one moment: mean power per component over the interval ending at ``t``
    (seconds since the job's earliest start) and cumulative emissions (PUE included)."""

    t: float
    power_w: Mapping[str, float]
    co2eq_kg: float


@dataclass(frozen=True)
class NodeRun:
    """One log file: its header, totals, whether it ended properly, and its intervals."""

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

    def points(self) -> list[Point]:
        """This node's intervals as points, on the job's clock."""
        components = _channel_components(self.header)
        out = [Point(self.offset_s, {}, 0.0)] if self.intervals else []
        before: dict[str, float] = {}
        co2_g = 0.0
        for iv in self.intervals:
            t0, t1 = float(iv.get("t0", 0.0)), float(iv.get("t1", 0.0))
            joules = _floats(iv.get("joules"))
            co2_g += float(iv.get("co2eq_g") or 0.0)
            power: dict[str, float] = {}
            for name, value in joules.items():
                comp = components.get(name, component_of(name))
                delta = max(0.0, value - before.get(name, 0.0))
                power[comp] = power.get(comp, 0.0) + (delta / (t1 - t0) if t1 > t0 else 0.0)
            before = joules
            out.append(Point(self.offset_s + t1, power, co2_g / 1000.0))
        return out


@dataclass(frozen=True)
class LoadedRun:
    """A job read back from its log(s): merged totals, per-node runs, a time series."""

    snapshot: Snapshot
    nodes: tuple[NodeRun, ...]

    @property
    def complete(self) -> bool:
        """True when every log ends with a final record."""
        return all(n.complete for n in self.nodes)

    def series(self) -> list[Point]:
        """The job's power per component and cumulative emissions over time (all nodes)."""
        per_node = [n.points() for n in self.nodes]
        if len(per_node) == 1:
            return per_node[0]
        times = sorted({p.t for pts in per_node for p in pts})
        out: list[Point] = []
        for i, t in enumerate(times):
            mid = (times[i - 1] + t) / 2 if i else t
            power: dict[str, float] = {}
            co2 = 0.0
            for pts in per_node:
                if not pts:
                    continue
                ends = [p.t for p in pts]
                k = bisect_right(ends, mid)  # first point ending after mid: its interval holds mid
                if i and 0 < k < len(pts):
                    for comp, w in pts[k].power_w.items():
                        power[comp] = power.get(comp, 0.0) + w
                j = bisect_right(ends, t) - 1
                co2 += pts[j].co2eq_kg if j >= 0 else 0.0
            out.append(Point(t, power, co2))
        return out


def _channel_components(header: Mapping[str, Any]) -> dict[str, str]:
    channels = header.get("channels")
    out: dict[str, str] = {}
    if isinstance(channels, Mapping):
        for name, info in channels.items():
            comp = info.get("component") if isinstance(info, Mapping) else None
            out[str(name)] = str(comp) if comp in COMPONENTS else component_of(str(name))
    return out


def _floats(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, float] = {}
    for k, v in value.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def read_file(path: Path) -> tuple[list[dict[str, Any]], int]:
    """All full records of one file and how many damaged lines were skipped (a torn last
    line is dropped silently: the writer died in the middle of it)."""
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
    records: list[dict[str, Any]] = []
    skipped = 0
    for number, line in enumerate(lines, 1):
        if number == len(lines) and not line.endswith("\n"):
            break  # torn last line
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == 1:
                raise RunLogError(f"{path}: not a carbon-core run log (not JSON Lines)") from None
            skipped += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def _snapshot_from_dict(data: Mapping[str, Any]) -> Snapshot:
    known = {f.name for f in fields(Snapshot)}
    values = {k: v for k, v in data.items() if k in known}
    for key in ("warnings", "devices"):
        values[key] = tuple(str(x) for x in values.get(key) or ())
    values["methods"] = {str(k): str(v) for k, v in (values.get("methods") or {}).items()}
    return Snapshot(**values)


def _snapshot_from_intervals(
    header: Mapping[str, Any], intervals: Sequence[Mapping[str, Any]], warnings: list[str]
) -> Snapshot:
    components = _channel_components(header)
    raw = header.get("channels")
    channels: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    methods = {
        str(n): str(info.get("method", "estimated"))
        for n, info in sorted(channels.items())
        if isinstance(info, Mapping)
    }
    joules = _floats(intervals[-1].get("joules")) if intervals else {}
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


def _started(header: Mapping[str, Any]) -> Optional[float]:
    try:
        stamp = datetime.strptime(str(header.get("started_at")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return stamp.replace(tzinfo=timezone.utc).timestamp()


def load_node(path: str | os.PathLike[str]) -> NodeRun:
    """One log file read back (see the module docstring)."""
    p = Path(path)
    records, skipped = read_file(p)
    header = records[0] if records and records[0].get("type") == "header" else None
    schema = str(header.get("schema", "")) if header else ""
    if header is None or not schema.startswith(SCHEMA_PREFIX):
        raise RunLogError(f"{p}: not a carbon-core run log (no header record)")
    major = schema[len(SCHEMA_PREFIX) :].split(".", 1)[0]
    if major != str(SUPPORTED_MAJOR):
        raise RunLogError(f"{p}: run log schema {schema!r} is newer than this carbon-core reads")
    intervals = tuple(r for r in records if r.get("type") == "interval")
    final = next((r for r in records if r.get("type") == "final"), None)
    damaged = [f"{skipped} damaged line(s) in the run log were skipped"] if skipped else []
    if final is not None and isinstance(final.get("snapshot"), Mapping):
        try:
            snapshot = _snapshot_from_dict(final["snapshot"])
        except (TypeError, ValueError) as exc:
            raise RunLogError(f"{p}: the final record is malformed ({exc})") from None
        if damaged:
            snapshot = replace(snapshot, warnings=(*snapshot.warnings, *damaged))
        return NodeRun(p, header, snapshot, True, intervals)
    warnings = [str(r.get("message")) for r in records if r.get("type") == "warning"] + damaged
    try:
        snapshot = _snapshot_from_intervals(header, intervals, warnings)
    except (TypeError, ValueError, AttributeError) as exc:
        raise RunLogError(f"{p}: malformed interval record ({exc})") from None
    return NodeRun(p, header, snapshot, False, intervals)


def _least_precise(a: str, b: str) -> str:
    rank = {m: i for i, m in enumerate(PRECISION)}
    return a if rank.get(a, len(PRECISION)) >= rank.get(b, len(PRECISION)) else b


def _same_or_joined(values: Iterable[Optional[str]]) -> Optional[str]:
    unique = sorted({v for v in values if v})
    return ", ".join(unique) if unique else None


def merge(nodes: Sequence[NodeRun]) -> Snapshot:
    """The job's totals: the nodes' energy and emissions added up."""
    if len(nodes) == 1:
        return nodes[0].snapshot
    snaps = [n.snapshot for n in nodes]
    parts: dict[str, Optional[float]] = {}
    for comp in COMPONENTS:
        values = [v for s in snaps if (v := getattr(s, f"energy_{comp}_kwh")) is not None]
        parts[comp] = sum(values) if values else None
    methods: dict[str, str] = {}
    for s in snaps:
        for name, method in s.methods.items():
            if method != NOT_MEASURED:
                methods[name] = _least_precise(methods.get(name, method), method)
    methods.update({c: NOT_MEASURED for c in COMPONENTS if parts[c] is None})
    energy = sum(v for v in parts.values() if v is not None)
    co2 = sum(s.co2eq_kg for s in snaps)
    pue = max(s.pue for s in snaps)
    intensities = {s.intensity_gco2eq_per_kwh for s in snaps}
    if len(intensities) == 1:
        intensity = intensities.pop()
    else:  # energy-weighted: what the job's energy was multiplied by, on average
        intensity = co2 * 1000.0 / (energy * pue) if energy > 0 else 0.0
    warnings: list[str] = []
    for n in nodes:
        warnings.extend(f"[{n.label}] {w}" for w in n.snapshot.warnings if f"[{n.label}] {w}" not in warnings)
    ends = [(n.offset_s, n.offset_s + n.snapshot.duration_s) for n in nodes]
    if len(nodes) > 1 and max(a for a, _ in ends) > min(b for _, b in ends) + 60:
        warnings.append("these logs do not overlap in time: are they really one job?")
    predicted = [s.predicted_co2eq_kg for s in snaps]
    progress = [s.progress for s in snaps if s.progress is not None]
    return Snapshot(
        duration_s=max(b for _, b in ends) - min(a for a, _ in ends),
        energy_kwh=energy,
        energy_gpu_kwh=parts["gpu"],
        energy_cpu_kwh=parts["cpu"],
        energy_ram_kwh=parts["ram"],
        co2eq_kg=co2,
        power_w=sum(s.power_w for s in snaps),
        intensity_gco2eq_per_kwh=intensity,
        predicted_co2eq_kg=None if None in predicted else sum(p or 0.0 for p in predicted),
        zone=_same_or_joined(s.zone for s in snaps),
        intensity_source=_same_or_joined(s.intensity_source for s in snaps) or "",
        methods=dict(sorted(methods.items())),
        warnings=tuple(warnings),
        devices=tuple(f"[{n.label}] {d}" for n in nodes for d in n.snapshot.devices),
        progress=min(progress) if progress else None,
        pue=pue,
    )


def resolve(path: str | os.PathLike[str]) -> Path:
    """A log path; a directory stands for its newest ``*.jsonl`` file."""
    p = Path(path)
    if p.is_dir():
        logs = sorted(p.glob("*.jsonl"), key=lambda f: (f.stat().st_mtime, f.name))
        if not logs:
            raise RunLogError(f"{p}: no run log (*.jsonl) in this directory")
        return logs[-1]
    return p


def load_run(paths: Sequence[str | os.PathLike[str]]) -> LoadedRun:
    """The job whose logs are ``paths`` (one per node); see the module docstring."""
    if not paths:
        raise RunLogError("no run log given")
    nodes = [load_node(resolve(p)) for p in paths]
    starts = [_started(n.header) for n in nodes]
    known = [s for s in starts if s is not None]
    origin = min(known) if known else 0.0
    nodes = [
        NodeRun(n.path, n.header, n.snapshot, n.complete, n.intervals, (s - origin) if s else 0.0)
        for n, s in zip(nodes, starts)
    ]
    return LoadedRun(merge(nodes), tuple(nodes))
