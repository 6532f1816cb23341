"""Several run logs read as one report: each joule counted once, by the rule that fits.

The logs are first made distinct (:func:`distinct`: a run given twice, the same file or a
copy with the same ``run_id``, counts once; two logs of one host and rank that overlap in
time are named in a warning), placed on one clock (each log's start from its header's
``started_at``), then put together by three rules, each named in :attr:`LoadedRun.rules`:

* **nodes of one job** (:func:`jobs`): logs with the same ``job_id``, or logs without one
  that overlap in time and whose headers do not say ``world_size`` 1: energy and
  emissions added up, the duration from the first start to the last end, a channel measured
  differently on two nodes counted with the less precise method (:func:`merge`);
* **resumed run** (:func:`resumed_from`): a run resumed from a checkpoint carries the
  checkpoint's totals in its final snapshot (:attr:`~.reader.NodeRun.carried`). When the
  log of the part before the checkpoint is among those given (its running totals at one of
  its intervals equal the carried ones; a multi-node checkpoint, which holds the job's totals
  at a logging step, is matched by its totals), the later part counts only what it measured
  itself, and the earlier part counts whole (what it ran past the checkpoint was spent too):
  the durations add up. When it is not given, the carried totals count as the log says;
* **unrelated runs**: whatever no rule above joins is listed separately and added up; the
  duration is the sum of the runs'.

The time series is one sweep over the nodes' downsampled points (:func:`series`), so
merging and plotting take time linear in the number of points; it holds what the logs
measured themselves (a checkpoint's carried totals are not in it).
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from itertools import groupby
from typing import Any, Optional

from carbon_core.accounting import Carry
from carbon_core.bands import component_methods, least_precise
from carbon_core.meters.base import COMPONENTS
from carbon_core.phases import Span
from carbon_core.runlog.reader import (
    CARRY_MIN_S,
    MAX_POINTS,
    Downsampler,
    NodeRun,
    Point,
    RunLogError,
    load_node,
    totals_along,
)
from carbon_core.runlog.schema import TIME_FORMAT
from carbon_core.snapshot import NOT_MEASURED, Phase, Snapshot, add_phases, marked, split_of

__all__ = [
    "ONE_LOG",
    "Job",
    "LoadedRun",
    "Point",
    "Row",
    "RunGroup",
    "assemble",
    "combine",
    "distinct",
    "jobs",
    "load",
    "merge",
    "node_points",
    "on_one_clock",
    "resumed_from",
    "series",
    "without_carry",
]


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


def _plus(x: Optional[float], y: Optional[float]) -> Optional[float]:
    return x if y is None else y if x is None else x + y


def _minus(x: Optional[float], y: Optional[float]) -> Optional[float]:
    return x if x is None or y is None else max(0.0, x - y)


def _all_phases(snaps: Iterable[Snapshot]) -> dict[str, Phase]:
    """The snapshots' splits added up (one without a split counts as ``other``), none when
    nothing was marked in any."""
    out: dict[str, Phase] = {}
    for s in snaps:
        out = add_phases(out, split_of(s))
    return marked(out)


def _same_or_joined(values: Iterable[Optional[str]]) -> Optional[str]:
    unique = sorted({v for v in values if v})
    return ", ".join(unique) if unique else None


def combine(
    parts: Sequence[tuple[str, Snapshot]], duration_s: float, warnings: Sequence[str] = ()
) -> Snapshot:
    """Labelled snapshots added up: energy and emissions summed, a channel measured
    differently counted with the less precise method, the energy-weighted intensity when they
    differ, each part's warnings and devices prefixed with its label; ``duration_s`` and
    ``warnings`` (about the parts as a set) are the caller's."""
    snaps = [s for _, s in parts]
    energy_of: dict[str, Optional[float]] = {}
    for comp in COMPONENTS:
        values = [v for s in snaps if (v := s.energy_by_component()[comp]) is not None]
        energy_of[comp] = sum(values) if values else None
    methods: dict[str, str] = {}
    for s in snaps:
        for name, method in s.methods.items():
            if method != NOT_MEASURED:
                methods[name] = least_precise(methods.get(name, method), method)
    methods.update({c: NOT_MEASURED for c in COMPONENTS if energy_of[c] is None})
    energy = sum(v for v in energy_of.values() if v is not None)
    co2 = sum(s.co2eq_kg for s in snaps)
    pue = max(s.pue for s in snaps)
    intensities = {s.intensity_gco2eq_per_kwh for s in snaps}
    if len(intensities) == 1:
        intensity = intensities.pop()
    else:  # energy-weighted: what the job's energy was multiplied by, on average
        intensity = co2 * 1000.0 / (energy * pue) if energy > 0 else 0.0
    labelled = [f"[{label}] {w}" for label, s in parts for w in s.warnings]
    samples: Optional[float] = None
    tokens: Optional[float] = None
    for s in snaps:
        samples, tokens = _plus(samples, s.samples), _plus(tokens, s.tokens)
    predicted = [s.predicted_co2eq_kg for s in snaps]
    progress = [s.progress for s in snaps if s.progress is not None]
    return Snapshot(
        duration_s=duration_s,
        energy_kwh=energy,
        energy_gpu_kwh=energy_of["gpu"],
        energy_cpu_kwh=energy_of["cpu"],
        energy_ram_kwh=energy_of["ram"],
        co2eq_kg=co2,
        power_w=sum(s.power_w for s in snaps),
        intensity_gco2eq_per_kwh=intensity,
        predicted_co2eq_kg=None if None in predicted else sum(p or 0.0 for p in predicted),
        zone=_same_or_joined(s.zone for s in snaps),
        intensity_source=_same_or_joined(s.intensity_source for s in snaps) or "",
        methods=dict(sorted(methods.items())),
        warnings=tuple(dict.fromkeys([*labelled, *warnings])),
        devices=tuple(f"[{label}] {d}" for label, s in parts for d in s.devices),
        assumed=tuple(dict.fromkeys(a for s in snaps for a in s.assumed)),
        progress=min(progress) if progress else None,
        pue=pue,
        samples=samples,
        tokens=tokens,
        phases=_all_phases(snaps),
    )


def _span(nodes: Sequence[NodeRun], snaps: Sequence[Snapshot]) -> tuple[float, float]:
    ends = [(n.offset_s, n.offset_s + s.duration_s) for n, s in zip(nodes, snaps)]
    return min(a for a, _ in ends), max(b for _, b in ends)


def _apart(nodes: Sequence[NodeRun], snaps: Sequence[Snapshot]) -> list[str]:
    """The warning for nodes of one job that do not overlap in time."""
    starts = [n.offset_s for n in nodes]
    ends = [n.offset_s + s.duration_s for n, s in zip(nodes, snaps)]
    if len(nodes) > 1 and max(starts) > min(ends) + 60:
        return ["these logs do not overlap in time: are they really one job?"]
    return []


def merge(nodes: Sequence[NodeRun], notes: Sequence[str] = ()) -> Snapshot:
    """The totals of the nodes of one job: energy and emissions added up, the duration from
    the first start to the last end (``notes``: warnings about the logs themselves)."""
    if len(nodes) == 1:
        snap = nodes[0].snapshot
        return replace(snap, warnings=(*snap.warnings, *notes)) if notes else snap
    snaps = [n.snapshot for n in nodes]
    first, last = _span(nodes, snaps)
    return combine([(n.label, n.snapshot) for n in nodes], last - first, [*_apart(nodes, snaps), *notes])


def _measured(snap: Snapshot, comp: str) -> bool:
    return bool(component_methods(snap, comp)) or not any(
        m == NOT_MEASURED and k == comp for k, m in snap.methods.items()
    )


def without_carry(snap: Snapshot, carried: Carry) -> Snapshot:
    """What a resumed run measured itself: its snapshot less the checkpoint's totals."""
    if carried == Carry():
        return snap
    own: dict[str, Optional[float]] = {}
    for comp, kwh in snap.energy_by_component().items():
        before: Optional[float] = getattr(carried, f"energy_{comp}_kwh")
        own[comp] = None if kwh is None or not _measured(snap, comp) else max(0.0, kwh - (before or 0.0))
    return replace(
        snap,
        duration_s=max(0.0, snap.duration_s - carried.duration_s),
        energy_kwh=sum(v for v in own.values() if v is not None),
        energy_gpu_kwh=own["gpu"],
        energy_cpu_kwh=own["cpu"],
        energy_ram_kwh=own["ram"],
        co2eq_kg=max(0.0, snap.co2eq_kg - carried.co2eq_kg),
        predicted_co2eq_kg=None,
        methods={k: v for k, v in snap.methods.items() if own.get(k, 0.0) is not None},
        samples=_minus(snap.samples, carried.samples),
        tokens=_minus(snap.tokens, carried.tokens),
        phases=marked(add_phases(split_of(snap), carried.with_phases({}), -1.0)),
    )


def _add(a: Carry, b: Carry) -> Carry:
    return Carry(
        duration_s=a.duration_s + b.duration_s,
        energy_gpu_kwh=_plus(a.energy_gpu_kwh, b.energy_gpu_kwh),
        energy_cpu_kwh=_plus(a.energy_cpu_kwh, b.energy_cpu_kwh),
        energy_ram_kwh=_plus(a.energy_ram_kwh, b.energy_ram_kwh),
        co2eq_kg=a.co2eq_kg + b.co2eq_kg,
        samples=_plus(a.samples, b.samples),
        tokens=_plus(a.tokens, b.tokens),
        phases=add_phases(a.phases, b.phases),
    )


# -- jobs: the nodes of one job ---------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """The logs of one job (one per node or rank), on the clock of the whole report."""

    nodes: tuple[NodeRun, ...]
    #: why these logs are one job ("one log", "job id 1234", "...overlapping in time")
    why: str

    @property
    def start(self) -> float:
        return min(n.offset_s for n in self.nodes)

    @property
    def end(self) -> float:
        return max(_end(n) for n in self.nodes)

    @property
    def carried(self) -> Carry:
        """The totals its checkpoint carried in (rank 0 carries a distributed job's)."""
        out = Carry()
        for n in self.nodes:
            out = _add(out, n.carried)
        return out

    @property
    def label(self) -> str:
        first = self.nodes[0]
        more = f" and {len(self.nodes) - 1} more log(s)" if len(self.nodes) > 1 else ""
        return f"{first.label} ({first.run_id}){more}"

    def totals(self) -> Snapshot:
        return merge(self.nodes)


def _alone(node: NodeRun) -> bool:
    """Whether the log's header says it is a job of one process (``world_size`` 1, node 0)."""
    h = node.header
    return h.get("world_size") == 1 and h.get("node_rank") in (None, 0)


def jobs(nodes: Sequence[NodeRun]) -> list[Job]:
    """The nodes grouped into jobs, by start: logs with one ``job_id``; else logs that overlap
    in time and whose headers do not say they are one-process runs (a distributed job's
    ranks; a log without ``world_size``); else each log alone (concurrent one-process runs,
    such as a sweep, are separate runs)."""
    by_id: dict[str, list[NodeRun]] = {}
    found: list[Job] = []
    loose: list[NodeRun] = []
    for node in nodes:
        job = node.header.get("job_id")
        if isinstance(job, str) and job:
            by_id.setdefault(job, []).append(node)
        elif _alone(node):
            found.append(Job((node,), "one log"))
        else:
            loose.append(node)
    found.extend(Job(tuple(group), f"job id {job}") for job, group in by_id.items())
    loose.sort(key=lambda n: n.offset_s)
    overlapping = "logs of ranks or nodes overlapping in time, no job id"
    group: list[NodeRun] = []
    for node in loose:
        if group and node.offset_s + CLOCK_S >= max(_end(n) for n in group):
            found.append(Job(tuple(group), overlapping))
            group = []
        group.append(node)
    if group:
        found.append(Job(tuple(group), overlapping))
    found = [replace(j, why="one log") if len(j.nodes) == 1 else j for j in found]
    return sorted(found, key=lambda j: (j.start, j.end))


# -- resumed runs -------------------------------------------------------------------------------
#: carried totals equal an earlier log's running totals when they agree within these (the log
#: rounds seconds and joules to 1e-6; emissions are summed in the same order)
MATCH_S = 1e-3
MATCH_REL = 1e-9
MATCH_KWH = 1e-11


def _close(a: Optional[float], b: Optional[float], abs_tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=MATCH_REL, abs_tol=abs_tol)


def _equal(a: Carry, b: Carry) -> bool:
    return (
        abs(a.duration_s - b.duration_s) <= MATCH_S
        and _close(a.co2eq_kg, b.co2eq_kg, 1e-15)
        and all(
            _close(getattr(a, f"energy_{c}_kwh"), getattr(b, f"energy_{c}_kwh"), MATCH_KWH)
            for c in COMPONENTS
        )
    )


def _checkpoint_in(node: NodeRun, carried: Carry) -> Optional[float]:
    """The time (s since the log's start) at which ``node``'s running totals equal
    ``carried``: where a checkpoint holding them was taken; None if nowhere."""
    if carried.duration_s > node.snapshot.duration_s + MATCH_S:
        return None
    try:
        for totals in totals_along(node):
            if _equal(totals, carried):
                return totals.duration_s - node.carried.duration_s
            if totals.duration_s > carried.duration_s + MATCH_S:
                return None
    except RunLogError:
        return None
    return None


def _within(carried: Carry, total: Snapshot) -> bool:
    """Whether ``carried`` could be ``total``'s at some moment (no more of anything)."""
    slack = 1.0 + MATCH_REL
    return (
        carried.duration_s <= total.duration_s + 1.0
        and carried.co2eq_kg <= total.co2eq_kg * slack + 1e-15
        and all(
            (getattr(carried, f"energy_{c}_kwh") or 0.0)
            <= (total.energy_by_component()[c] or 0.0) * slack + MATCH_KWH
            for c in COMPONENTS
        )
    )


def resumed_from(later: Job, earlier: Sequence[Job]) -> Optional[tuple[int, str]]:
    """The index in ``earlier`` of the job ``later`` resumes from a checkpoint of, and how it
    was matched; None when ``later`` carries nothing in or its earlier part is not there.

    A job that ended before ``later`` started matches when its running totals at one of its
    intervals equal what ``later`` carried in (one log), or, for a multi-node job whose
    checkpoint holds the job's totals at a logging step, when they are no more than its
    totals. The latest-ending match wins."""
    carried = later.carried
    if carried.duration_s <= CARRY_MIN_S:
        return None
    ended = [i for i, job in enumerate(earlier) if job is not later and job.end <= later.start + CLOCK_S]
    for i in sorted(ended, key=lambda i: earlier[i].end, reverse=True):
        job = earlier[i]
        if len(job.nodes) == 1:
            at = _checkpoint_in(job.nodes[0], carried)
            if at is not None:
                return i, f"its running totals at {at:.3f} s equal what the checkpoint carried"
        elif _within(carried, job.totals()):
            return i, "a multi-node checkpoint holds the job's totals at a logging step: matched by totals"
    return None


# -- a report of many logs ----------------------------------------------------------------------
#: the rule of a report of one log (nothing merged)
ONE_LOG = "one run, one log: its own totals"


@dataclass(frozen=True)
class Row:
    """What one log adds to the report: its snapshot, less the totals it carried in from a
    checkpoint when the log of the part before it is given too (``subtracted``)."""

    node: NodeRun
    snapshot: Snapshot
    run: int  #: the index of its run in :attr:`LoadedRun.runs`
    subtracted: Carry = field(default_factory=Carry)

    @property
    def label(self) -> str:
        return f"{self.node.label} ({self.node.run_id})"


@dataclass(frozen=True)
class RunGroup:
    """One training run: its jobs (one, or the parts of a resumed run), each joule once."""

    jobs: tuple[Job, ...]
    snapshot: Snapshot
    #: the rules that made this run's totals, one sentence each
    rules: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.jobs[0].label


@dataclass(frozen=True)
class LoadedRun:
    """Run logs read back: the total (each joule once), the logs, the runs they make up, the
    rows a report shows, the rules applied, and a time series."""

    snapshot: Snapshot
    nodes: tuple[NodeRun, ...]
    #: what is wrong with the logs as a set (a run given twice, logs of one rank overlapping)
    notes: tuple[str, ...] = ()
    runs: tuple[RunGroup, ...] = ()
    rows: tuple[Row, ...] = ()
    #: the merge rules applied, one sentence each (every report shows them)
    rules: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every log ends with a final record."""
        return all(n.complete for n in self.nodes)

    def series(self) -> list[Point]:
        """The job's power per component and cumulative emissions over time (all nodes)."""
        return series(self.nodes)

    @property
    def phases(self) -> Mapping[str, Phase]:
        """The total's split by phase (``train``, ``validation``, ...; empty when the logs
        record none); it adds up to the total's energy and emissions."""
        return self.snapshot.phases

    def spans(self) -> list[Span]:
        """Every log's marked phase spans on the clock of :meth:`series`, by start."""
        return sorted(
            (Span(s.name, n.offset_s + s.t0, n.offset_s + s.t1) for n in self.nodes for s in n.spans),
            key=lambda s: (s.t0, s.t1),
        )


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


def _roots(links: Mapping[int, int], count: int) -> list[int]:
    """Each job's first part: links (later -> earlier) followed back."""
    out = []
    for i in range(count):
        seen = {i}
        while i in links and links[i] not in seen:
            i = links[i]
            seen.add(i)
        out.append(min(seen) if i in links else i)  # a loop (impossible in time) ends anywhere
    return out


def _fmt_carry(c: Carry) -> str:
    energy = sum(v for comp in COMPONENTS if (v := getattr(c, f"energy_{comp}_kwh")) is not None)
    return f"{c.duration_s:.1f} s, {energy * 1000:.3g} Wh, {c.co2eq_kg * 1000:.3g} gCO2eq"


def _run(
    members: Sequence[int], found: Sequence[Job], links: Mapping[int, tuple[int, str]], run: int
) -> tuple[RunGroup, list[Row]]:
    rows: list[Row] = []
    rules: list[str] = []
    durations = []
    for i in members:
        job = found[i]
        link = links.get(i)
        snaps = []
        for node in job.nodes:
            take = node.carried if link is not None else Carry()
            snap = without_carry(node.snapshot, take)
            snaps.append(snap)
            rows.append(Row(node, snap, run, take))
        first, last = _span(job.nodes, snaps)
        durations.append(last - first)
        if len(job.nodes) > 1:
            rules.append(
                f"nodes of one job ({job.why}): {len(job.nodes)} logs added up "
                f"({', '.join(f'{n.label} ({n.run_id})' for n in job.nodes)}); "
                "its duration runs from the first start to the last end"
            )
        if link is not None:
            before = found[link[0]]
            past = before.end - before.start - (job.carried.duration_s - before.carried.duration_s)
            rules.append(
                f"resumed run: {job.label} continues {before.label} from a checkpoint ({link[1]}): "
                f"{before.label} counts whole, {job.label} only from the checkpoint on (its "
                f"{_fmt_carry(job.carried)} carried in are not counted again); durations added"
                + (
                    f"; {before.label} ran {past:.1f} s past the checkpoint, spent and counted"
                    if past > 0.05
                    else ""
                )
            )
        elif job.carried.duration_s > CARRY_MIN_S:
            rules.append(
                f"resumed run, first part not given: {job.label} carried {_fmt_carry(job.carried)} in from "
                "a checkpoint whose run's log is not among these: counted as the checkpoint holds them"
            )
    parts = [(r.label, r.snapshot) for r in rows]
    job_notes = [w for i in members for w in _apart(found[i].nodes, [n.snapshot for n in found[i].nodes])]
    snap = combine(parts, sum(durations), job_notes) if len(rows) > 1 else rows[0].snapshot
    return RunGroup(tuple(found[i] for i in members), snap, tuple(rules)), rows


def assemble(nodes: Sequence[NodeRun], notes: Sequence[str] = ()) -> LoadedRun:
    """Distinct logs on one clock (:func:`distinct`, :func:`on_one_clock`) put together by
    the rules of the module docstring."""
    found = jobs(nodes)
    links: dict[int, tuple[int, str]] = {}
    for i, job in enumerate(found):
        match = resumed_from(job, found)
        if match is not None:
            links[i] = match
    roots = _roots({i: j for i, (j, _) in links.items()}, len(found))
    order = list(dict.fromkeys(roots))
    runs: list[RunGroup] = []
    rows: list[Row] = []
    for k, root in enumerate(order):
        group, group_rows = _run([i for i in range(len(found)) if roots[i] == root], found, links, k)
        runs.append(group)
        rows.extend(group_rows)
    rules = [rule for g in runs for rule in g.rules]
    if len(runs) == 1:
        total = (
            replace(runs[0].snapshot, warnings=(*runs[0].snapshot.warnings, *notes))
            if notes
            else runs[0].snapshot
        )
    else:
        rules.append(
            f"unrelated runs: {len(runs)} runs (no shared job, no checkpoint linking them) listed "
            "separately and added up; the duration is the sum of theirs"
        )
        total = combine(
            [(r.label, r.snapshot) for r in rows], sum(g.snapshot.duration_s for g in runs), notes
        )
    if not rules:
        rules.append(ONE_LOG)
    return LoadedRun(total, tuple(nodes), tuple(notes), tuple(runs), tuple(rows), tuple(rules))


def load(*paths: str | os.PathLike[str]) -> LoadedRun:
    """The report of the given log file(s) (a directory stands for its newest log): each run
    counted once, the nodes of a job added up, a resumed run's parts joined, unrelated runs
    added up (see the module docstring).

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
    return assemble(nodes, notes)
