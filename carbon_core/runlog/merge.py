"""One job from the logs of its nodes: merged totals and the time series for the plot.

Several logs given together are one job (the nodes of a multi-node run): energy and
emissions add up, durations overlap (each node's start is placed by its header's
``started_at``), and a channel measured differently on two nodes counts with the less
precise method.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Optional

from carbon_core.bands import component_of, least_precise
from carbon_core.meters.base import COMPONENTS
from carbon_core.runlog.reader import NodeRun, RunLogError, channel_components, joules_of, load_node
from carbon_core.runlog.schema import TIME_FORMAT
from carbon_core.snapshot import NOT_MEASURED, Snapshot


@dataclass(frozen=True)
class Point:
    """The job at one moment: mean power per component over the interval ending at ``t``
    (seconds since the job's earliest start) and cumulative emissions (PUE included)."""

    t: float
    power_w: Mapping[str, float]
    co2eq_kg: float


def node_points(node: NodeRun) -> list[Point]:
    """One node's intervals as points, on the job's clock."""
    components = channel_components(node.header)
    out = [Point(node.offset_s, {}, 0.0)] if node.intervals else []
    before: dict[str, float] = {}
    co2_g = 0.0
    for iv in node.intervals:
        t0, t1 = float(iv.get("t0", 0.0)), float(iv.get("t1", 0.0))
        joules = joules_of(iv)
        co2_g += float(iv.get("co2eq_g") or 0.0)
        power: dict[str, float] = {}
        for name, value in joules.items():
            comp = components.get(name, component_of(name))
            delta = max(0.0, value - before.get(name, 0.0))
            power[comp] = power.get(comp, 0.0) + (delta / (t1 - t0) if t1 > t0 else 0.0)
        before = joules
        out.append(Point(node.offset_s + t1, power, co2_g / 1000.0))
    return out


def series(nodes: Sequence[NodeRun]) -> list[Point]:
    """The job's power per component and cumulative emissions over time (all nodes added up)."""
    per_node = [node_points(n) for n in nodes]
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
        values = [v for s in snaps if (v := s.energy_by_component()[comp]) is not None]
        parts[comp] = sum(values) if values else None
    methods: dict[str, str] = {}
    for s in snaps:
        for name, method in s.methods.items():
            if method != NOT_MEASURED:
                methods[name] = least_precise(methods.get(name, method), method)
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
        return series(self.nodes)


def _started(header: Mapping[str, Any]) -> Optional[float]:
    try:
        stamp = datetime.strptime(str(header.get("started_at")), TIME_FORMAT)
    except ValueError:
        return None
    return stamp.replace(tzinfo=timezone.utc).timestamp()


def on_one_clock(nodes: Sequence[NodeRun]) -> list[NodeRun]:
    """The nodes with ``offset_s`` set: seconds from the job's earliest start to theirs."""
    starts = [_started(n.header) for n in nodes]
    known = [s for s in starts if s is not None]
    origin = min(known) if known else 0.0
    return [replace(n, offset_s=(s - origin) if s else 0.0) for n, s in zip(nodes, starts)]


def load(*paths: str | os.PathLike[str]) -> LoadedRun:
    """One job's totals, nodes and time series from its log file(s) (one per node; a
    directory stands for its newest log).

    Raises :class:`~carbon_core.runlog.reader.RunLogError` (one line, naming the file) when
    a file is missing, unreadable or not a carbon-core run log.
    """
    if not paths:
        raise RunLogError("no run log given")
    nodes = on_one_clock([load_node(p) for p in paths])
    return LoadedRun(merge(nodes), tuple(nodes))
