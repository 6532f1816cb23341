"""One job from the logs of its nodes: merged totals and the time series for the plot.

Several logs given together are one job (the nodes of a multi-node run): energy and
emissions add up, durations overlap (each node's start is placed by its header's
``started_at``), and a channel measured differently on two nodes counts with the less
precise method. A run given twice (the same file, or a copy: the same ``run_id``) counts
once, and two logs of one host and rank that overlap in time are named in a warning
(:func:`distinct`). The time series is one sweep over the nodes' downsampled points
(:func:`series`), so merging and plotting take time linear in the number of points.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from itertools import groupby
from typing import Any, Optional

from carbon_core.bands import least_precise
from carbon_core.meters.base import COMPONENTS
from carbon_core.runlog.reader import MAX_POINTS, Downsampler, NodeRun, Point, RunLogError, load_node
from carbon_core.runlog.schema import TIME_FORMAT
from carbon_core.snapshot import NOT_MEASURED, Snapshot

__all__ = ["LoadedRun", "Point", "distinct", "load", "merge", "node_points", "on_one_clock", "series"]


def node_points(node: NodeRun) -> list[Point]:
    """One node's series on the job's clock, starting from its start."""
    if not node.points:
        return []
    shift = node.offset_s
    return [Point(shift, {}, 0.0), *(Point(shift + p.t, p.power_w, p.co2eq_kg) for p in node.points)]


def _times(j: int, points: Sequence[Point]) -> Iterator[tuple[float, int, int]]:
    return ((p.t, j, i) for i, p in enumerate(points))


def series(nodes: Sequence[NodeRun], limit: int = MAX_POINTS) -> list[Point]:
    """The job's power per component and cumulative emissions over time (all nodes added up),
    in at most ``limit`` + 1 points.

    One sweep over the nodes' points in time order (linear in their number): between two
    consecutive times, each node that has started and not ended adds the power of its
    interval holding that span; the emissions are each node's up to that time."""
    per_node = [pts for pts in (node_points(n) for n in nodes) if pts]
    if len(per_node) <= 1:
        return per_node[0] if per_node else []
    events = heapq.merge(*(_times(j, pts) for j, pts in enumerate(per_node)))
    passed = [0] * len(per_node)  # per node: how many of its points lie at or before the time
    co2_of = [0.0] * len(per_node)
    power: dict[str, float] = {}
    active: dict[str, int] = {}  # per component: how many nodes add to power[component]
    co2 = 0.0

    def running(j: int, sign: int) -> None:  # node j's interval in progress joins or leaves the sum
        pts = per_node[j]
        if 0 < passed[j] < len(pts):
            for comp, watts in pts[passed[j]].power_w.items():
                active[comp] = active.get(comp, 0) + sign
                power[comp] = power.get(comp, 0.0) + sign * watts if active[comp] else 0.0

    first: Optional[Point] = None
    before = 0.0
    out = Downsampler(limit)
    for t, group in groupby(events, key=lambda e: e[0]):
        span = {c: max(0.0, w) for c, w in power.items() if active[c]}  # the power from before to t
        for _, j, i in group:
            running(j, -1)
            passed[j] = i + 1
            running(j, +1)
            co2 += per_node[j][i].co2eq_kg - co2_of[j]
            co2_of[j] = per_node[j][i].co2eq_kg
        if first is None:
            first = Point(t, {}, co2)
        else:
            out.add(t, t - before, span, co2)
        before = t
    return [first, *out.points()] if first else []


def _same_or_joined(values: Iterable[Optional[str]]) -> Optional[str]:
    unique = sorted({v for v in values if v})
    return ", ".join(unique) if unique else None


def merge(nodes: Sequence[NodeRun], notes: Sequence[str] = ()) -> Snapshot:
    """The job's totals: the nodes' energy and emissions added up (``notes``: warnings about
    the logs themselves, added to the job's)."""
    if len(nodes) == 1:
        snap = nodes[0].snapshot
        return replace(snap, warnings=(*snap.warnings, *notes)) if notes else snap
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
    warnings = list(dict.fromkeys(f"[{n.label}] {w}" for n in nodes for w in n.snapshot.warnings))
    ends = [(n.offset_s, n.offset_s + n.snapshot.duration_s) for n in nodes]
    if len(nodes) > 1 and max(a for a, _ in ends) > min(b for _, b in ends) + 60:
        warnings.append("these logs do not overlap in time: are they really one job?")
    warnings.extend(notes)
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
    #: what is wrong with the logs as a set (a run given twice, logs of one rank overlapping)
    notes: tuple[str, ...] = ()

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
    return [replace(n, offset_s=0.0 if s is None else s - origin) for n, s in zip(nodes, starts)]


#: ``started_at`` is in whole seconds: two logs of one rank that overlap by less may follow each other
CLOCK_S = 1.0


def _fuller(a: NodeRun, b: NodeRun) -> bool:
    """Whether ``a`` holds more of the run than ``b`` (a final record, then more intervals)."""
    return (a.complete, a.intervals, a.snapshot.duration_s) > (b.complete, b.intervals, b.snapshot.duration_s)


def _end(node: NodeRun) -> float:
    return node.offset_s + node.snapshot.duration_s


def distinct(nodes: Sequence[NodeRun]) -> tuple[list[NodeRun], list[str]]:
    """The nodes with each run counted once (logs with the same ``run_id``: the fuller one), and
    one warning for each run given twice and each pair of logs of one host and rank that
    overlap in time (both are counted: they may be two runs of one process)."""
    out: list[NodeRun] = []
    index: dict[str, int] = {}
    notes: list[str] = []
    for node in nodes:
        j = index.get(node.run_id) if node.run_id else None
        if j is None:
            index[node.run_id] = len(out)
            out.append(node)
            continue
        other = out[j]
        same = other.path.resolve() == node.path.resolve()
        notes.append(
            f"{node.path} is given twice: counted once"
            if same
            else f"{other.path} and {node.path} are the same run (run id {node.run_id}): counted once"
        )
        out[j] = node if _fuller(node, other) else other
    places: dict[tuple[str, str, str], list[NodeRun]] = {}
    for node in out:
        h = node.header
        places.setdefault((str(h.get("host")), str(h.get("node_rank")), str(h.get("rank"))), []).append(node)
    for group in places.values():
        group.sort(key=lambda n: n.offset_s)
        latest = group[0]  # of the logs so far, the one that ends last
        for node in group[1:]:
            if node.offset_s + CLOCK_S < _end(latest):
                notes.append(
                    f"{latest.path} and {node.path} overlap in time on one host and rank ({node.label}):"
                    " both are counted; is one a copy of the other?"
                )
            latest = node if _end(node) > _end(latest) else latest
    return out, notes


def load(*paths: str | os.PathLike[str]) -> LoadedRun:
    """One job's totals, nodes and time series from its log file(s) (one per node; a
    directory stands for its newest log).

    Raises :class:`~carbon_core.runlog.reader.RunLogError` when a file is missing, unreadable
    or not a carbon-core run log: one line for each such file, naming it.
    """
    if not paths:
        raise RunLogError("no run log given")
    read: list[NodeRun] = []
    errors: list[str] = []
    for path in paths:
        try:
            read.append(load_node(path))
        except RunLogError as exc:
            errors.append(str(exc))
    if errors:
        raise RunLogError("\n".join(errors))
    nodes, notes = distinct(on_one_clock(read))
    return LoadedRun(merge(nodes, notes), tuple(nodes), tuple(notes))
