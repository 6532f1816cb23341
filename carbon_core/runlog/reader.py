"""Reading one run log back (format: :mod:`carbon_core.runlog.schema`) as a :class:`NodeRun`.

The file is read line by line (:func:`~carbon_core.runlog.schema.records`: torn, damaged and
hostile lines) in constant memory: what is kept is the header, the last interval, running
sums, the first warnings, and a time series for the plot downsampled to at most
:data:`MAX_POINTS` points (:class:`Downsampler`). A line that is not a JSON object is skipped
and counted; a record whose fields have the wrong type or hold a number that is not finite
(``1e999``, ``10**400``) or out of range is an error: :class:`RunLogError`, one line naming
the file and the line. A log with a ``final`` record is totalled from that record's
snapshot; a log without one (the run was killed, or is still going) from its last interval:
the cumulative joules per channel there, the emissions of every interval up to there, and a
warning that says so.

A resumed run's final snapshot includes the totals its checkpoint carried in (see
:class:`~carbon_core.accounting.Carry`), its intervals only what it measured itself; so the
carried totals are the difference, :attr:`NodeRun.carried` (merging uses them to count each
joule once). A log without a final record holds only what the run measured itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from carbon_core.accounting import J_PER_KWH, Carry
from carbon_core.bands import component_of
from carbon_core.meters.base import COMPONENTS
from carbon_core.phases import Span
from carbon_core.runlog import schema
from carbon_core.runlog.schema import SCHEMA_PREFIX, SUPPORTED_MAJOR, records
from carbon_core.runlog.schema import RunLogError as RunLogError  # where it has always been
from carbon_core.snapshot import NOT_MEASURED, OTHER, Phase, Snapshot, add_phases, marked

#: the plot's series keeps at most this many points per log (and per job)
MAX_POINTS = 4000
#: warning records kept per log (distinct messages, each cut to MAX_MESSAGE characters)
MAX_WARNINGS = 100
MAX_MESSAGE = 500
#: phase spans kept per log (later ones are counted in a warning); phase names kept per log
#: (the energy of further names counts in ``other``)
MAX_SPANS = 2000
MAX_PHASES = 64
#: a final snapshot that lasts longer than the log's last interval by more than this carries
#: totals from a checkpoint (both are the same clock reading, rounded to 1 us in the log)
CARRY_MIN_S = 1e-3


@dataclass(frozen=True)
class Point:
    """One moment: mean power per component over the interval ending at ``t`` (seconds) and
    cumulative emissions (kg, PUE included)."""

    t: float
    power_w: Mapping[str, float]
    co2eq_kg: float


class Downsampler:
    """A series of intervals in at most ``limit`` points: once ``limit`` are held, neighbours
    are merged pairwise (and later intervals grouped as many at a time), so the memory is
    bounded and the cost linear. A merged point's power is the duration-weighted mean of its
    intervals' (the energy is kept) and its emissions those at its end."""

    def __init__(self, limit: int = MAX_POINTS) -> None:
        self.limit = max(2, limit)
        self.stride = 1  # intervals per point
        self._done: list[tuple[float, float, dict[str, float], float]] = []  # t, dt, power, co2
        self._energy: dict[str, float] = {}
        self._dt = 0.0
        self._count = 0
        self._last: tuple[float, dict[str, float], float] = (0.0, {}, 0.0)

    @staticmethod
    def _merge(
        a: tuple[float, float, dict[str, float], float], b: tuple[float, float, dict[str, float], float]
    ) -> tuple[float, float, dict[str, float], float]:
        dt = a[1] + b[1]
        if dt <= 0:
            return b[0], 0.0, b[2], b[3]
        pa, pb = a[2], b[2]
        power = {c: (pa.get(c, 0.0) * a[1] + pb.get(c, 0.0) * b[1]) / dt for c in pa.keys() | pb.keys()}
        return b[0], dt, power, b[3]

    def add(self, t: float, dt: float, power: dict[str, float], co2eq_kg: float) -> None:
        """One interval of ``dt`` seconds ending at ``t``."""
        dt = max(0.0, dt)
        if self.stride == 1:
            self._push((t, dt, power, co2eq_kg))
            return
        energy = self._energy  # the open point's joules per component
        for comp, watts in power.items():
            energy[comp] = energy.get(comp, 0.0) + watts * dt
        self._dt += dt
        self._count += 1
        self._last = (t, power, co2eq_kg)
        if self._count == self.stride:
            self._push(self._open())
            self._energy, self._dt, self._count = {}, 0.0, 0

    def _open(self) -> tuple[float, float, dict[str, float], float]:
        t, power, co2 = self._last
        dt = self._dt
        return t, dt, ({c: e / dt for c, e in self._energy.items()} if dt > 0 else power), co2

    def _push(self, item: tuple[float, float, dict[str, float], float]) -> None:
        self._done.append(item)
        if len(self._done) >= self.limit:
            done = self._done
            self._done = [self._merge(done[i], done[i + 1]) for i in range(0, len(done) - 1, 2)]
            if len(done) % 2:
                self._done.append(done[-1])
            self.stride *= 2

    def points(self) -> list[Point]:
        held = [*self._done, *([self._open()] if self._count else [])]
        return [Point(t, power, co2) for t, _, power, co2 in held]


@dataclass(frozen=True)
class NodeRun:
    """One log file: its header, totals, whether it ended properly, and its series.

    ``points`` are on the log's own clock (its start is 0; at most :data:`MAX_POINTS`);
    ``offset_s`` places its start on the clock of the job it belongs to."""

    path: Path
    header: Mapping[str, Any]
    snapshot: Snapshot
    complete: bool
    points: tuple[Point, ...] = ()
    offset_s: float = 0.0
    intervals: int = field(default=0, compare=False)  #: how many interval records it holds
    #: the totals a checkpoint carried into this run (in ``snapshot``, not in its intervals)
    carried: Carry = field(default_factory=Carry, compare=False)
    #: the spans of its marked phases (validation, checkpoint, names given to ``Tracker.phase``),
    #: on the log's own clock, at most :data:`MAX_SPANS`
    spans: tuple[Span, ...] = field(default=(), compare=False)

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


class _Reading:
    """What is kept of one log while it is read: constant memory whatever its length."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path, self.header = path, header
        self.components = channel_components(header)
        self.known: dict[str, Optional[str]] = {}  # channel -> component (None: not in the totals)
        self.intervals = self.skipped = self.more_warnings = 0
        self.co2_g, self.t = 0.0, 0.0
        self.last: Mapping[str, Any] = {}
        self.last_joules: dict[str, float] = {}
        self.warnings: list[str] = []
        self.final: Optional[Snapshot] = None
        self.series = Downsampler()
        #: this run's own phase split and units, from its intervals
        self.phase_j: dict[str, float] = {}
        self.phase_g: dict[str, float] = {}
        self.phase_s: dict[str, float] = {}
        self.samples: Optional[float] = None
        self.tokens: Optional[float] = None
        self.spans: list[Span] = []
        self.more_spans = 0

    def add(self, number: int, record: Optional[dict[str, Any]]) -> None:
        if record is None:
            self.skipped += 1
            return
        kind = record.get("type")
        try:
            if kind == "interval":
                self._interval(record)
            elif kind == "warning":
                self._warning(schema.check_warning(record))
            elif kind == "phase":
                self._span(*schema.check_phase(record))
            elif kind == "final" and self.final is None:
                self.final = Snapshot.from_dict(schema.check_final(record))
        except (TypeError, ValueError) as exc:
            what = "the final record is malformed" if kind == "final" else f"malformed {kind} record"
            raise RunLogError(f"{self.path}: line {number}: {what} ({exc})") from None

    def _component(self, name: str) -> Optional[str]:
        found = self.components.get(name) or component_of(name)
        comp = found if found in COMPONENTS else None  # the plot, as the totals, has only these
        if len(self.known) < 256:
            self.known[name] = comp
        return comp

    def _interval(self, record: Mapping[str, Any]) -> None:
        t0, t1, joules, co2_g = schema.check_interval(record)
        self.intervals += 1
        self.co2_g += co2_g
        span, before, known = t1 - t0, self.last_joules, self.known
        power: dict[str, float] = {}
        for name, value in joules.items():
            comp = known[name] if name in known else self._component(name)
            if comp is not None:
                delta = value - before.get(name, 0.0)
                power[comp] = power.get(comp, 0.0) + (delta / span if delta > 0 and span > 0 else 0.0)
        self.t = max(self.t, t1)  # the plot's clock never runs backwards
        self.series.add(self.t, span, power, self.co2_g / 1000.0)
        self.last, self.last_joules = record, joules
        split = schema.interval_phases(record) or {
            OTHER: schema.number(record, "energy_j")
        }  # none: all "other"
        self._phases(split, span, co2_g)
        if "samples" in record or "tokens" in record:
            self.samples = schema.optional_number(record, "samples")
            self.tokens = schema.optional_number(record, "tokens")

    def _phases(self, joules: Mapping[str, float], span: float, co2_g: float) -> None:
        """An interval's split: its emissions and seconds shared as its joules are (the writer
        split all three by the time each phase was active)."""
        total = sum(joules.values())
        for name, j in joules.items():
            if name not in self.phase_j and len(self.phase_j) >= MAX_PHASES:
                name = OTHER
            fraction = j / total if total > 0 else 0.0
            self.phase_j[name] = self.phase_j.get(name, 0.0) + j
            self.phase_g[name] = self.phase_g.get(name, 0.0) + co2_g * fraction
            self.phase_s[name] = self.phase_s.get(name, 0.0) + span * fraction

    def _span(self, name: str, t0: float, t1: float) -> None:
        if len(self.spans) < MAX_SPANS:
            self.spans.append(Span(name, t0, max(t0, t1)))
        else:
            self.more_spans += 1

    def own_phases(self) -> dict[str, Phase]:
        """The phase split of what this run measured itself (its intervals; none when nothing
        was marked)."""
        return marked(
            {
                n: Phase(j / J_PER_KWH, self.phase_g.get(n, 0.0) / 1000.0, self.phase_s.get(n, 0.0))
                for n, j in self.phase_j.items()
            }
        )

    def _warning(self, message: str) -> None:
        message = " ".join(message.split())[:MAX_MESSAGE]
        if message in self.warnings:
            return
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
        else:
            self.more_warnings += 1

    def node(self) -> NodeRun:
        damaged = [f"{self.skipped} damaged line(s) in the run log were skipped"] if self.skipped else []
        if self.more_spans:
            damaged.append(f"{self.more_spans} more phase span(s) than the {MAX_SPANS} kept are not plotted")
        points, spans = tuple(self.series.points()), tuple(self.spans)
        if self.final is not None:
            snapshot = replace(self.final, warnings=(*self.final.warnings, *damaged))
            carried = self._carried(self.final)
            return NodeRun(
                self.path, self.header, snapshot, True, points, 0.0, self.intervals, carried, spans
            )
        more = [f"... and {self.more_warnings} more warning(s)"] if self.more_warnings else []
        snapshot = self._snapshot_from_intervals([*self.warnings, *more, *damaged])
        return NodeRun(self.path, self.header, snapshot, False, points, intervals=self.intervals, spans=spans)

    def _own_kwh(self) -> dict[str, Optional[float]]:
        """kWh per component measured by this run itself: the last interval's cumulative joules."""
        kwh: dict[str, Optional[float]] = {c: None for c in COMPONENTS}
        for name in set(self.components) | set(self.last_joules):
            comp = self.components.get(name) or component_of(name)
            if comp in kwh:
                kwh[comp] = (kwh[comp] or 0.0) + self.last_joules.get(name, 0.0) / J_PER_KWH
        return kwh

    def _carried(self, final: Snapshot) -> Carry:
        """What the final snapshot holds beyond this run's own intervals: a checkpoint's totals."""
        duration = final.duration_s - schema.number(self.last, "t1")
        if not self.intervals or duration <= CARRY_MIN_S:
            return Carry()
        own = self._own_kwh()
        before = {
            c: None if v is None else max(0.0, v - (own[c] or 0.0))
            for c, v in final.energy_by_component().items()
        }
        return Carry(
            duration_s=duration,
            energy_gpu_kwh=before["gpu"],
            energy_cpu_kwh=before["cpu"],
            energy_ram_kwh=before["ram"],
            co2eq_kg=max(0.0, final.co2eq_kg - self.co2_g / 1000.0),
            samples=_less(final.samples, self.samples),
            tokens=_less(final.tokens, self.tokens),
            phases=add_phases(final.phases, self.own_phases(), -1.0) if final.phases else {},
        )

    def _snapshot_from_intervals(self, warnings: list[str]) -> Snapshot:
        header = self.header
        channels = header.get("channels") or {}
        methods = {str(n): str(info.get("method") or "estimated") for n, info in sorted(channels.items())}
        kwh = self._own_kwh()
        methods.update({c: NOT_MEASURED for c in COMPONENTS if kwh[c] is None})
        last = self.last
        t_end = schema.number(last, "t1")
        note = "the run log has no final record (the run was killed or is still going): totals up to its last"
        return Snapshot(
            duration_s=t_end,
            energy_kwh=sum(v for v in kwh.values() if v is not None),
            energy_gpu_kwh=kwh["gpu"],
            energy_cpu_kwh=kwh["cpu"],
            energy_ram_kwh=kwh["ram"],
            co2eq_kg=self.co2_g / 1000.0,
            power_w=schema.number(last, "power_w"),
            intensity_gco2eq_per_kwh=schema.number(last, "intensity"),
            zone=header.get("zone"),
            intensity_source=str(last.get("intensity_source") or header.get("intensity_source") or ""),
            methods=methods,
            warnings=(*warnings, f"{note} interval, t = {t_end:.1f} s"),
            devices=tuple(header.get("devices") or ()),
            pue=schema.number(header.get("config") or {}, "pue", 1.0),
            samples=self.samples,
            tokens=self.tokens,
            phases=self.own_phases(),
        )


def _less(total: Optional[float], own: Optional[float]) -> Optional[float]:
    """What ``total`` holds beyond ``own`` (None when ``total`` is None or holds nothing more)."""
    if total is None:
        return None
    rest = total - (own or 0.0)
    return rest if rest > 0 else None


def _header(path: Path, number: int, record: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The first record, checked to be a header of a schema this reader knows."""
    raw = record.get("schema") if record and record.get("type") == "header" else None
    if not isinstance(raw, str) or not raw.startswith(SCHEMA_PREFIX) or record is None:
        raise RunLogError(f"{path}: not a carbon-core run log (no header record)")
    if raw[len(SCHEMA_PREFIX) :].split(".", 1)[0] != str(SUPPORTED_MAJOR):
        raise RunLogError(f"{path}: run log schema {raw[:60]!r} is newer than this carbon-core reads")
    try:
        schema.check_header(record)
    except ValueError as exc:
        raise RunLogError(f"{path}: line {number}: malformed header ({exc})") from None
    return record


def read_node(path: Path, lines: Iterator[tuple[int, Optional[dict[str, Any]]]]) -> NodeRun:
    """One log from its ``(line number, record)`` pairs (see :func:`records`)."""
    first = next(lines, None)
    if first is None:
        raise RunLogError(f"{path}: not a carbon-core run log (no header record)")
    reading = _Reading(path, _header(path, *first))
    for number, record in lines:
        reading.add(number, record)
    return reading.node()


def totals_along(node: NodeRun) -> Iterator[Carry]:
    """The log's running totals (what it carried in included) at the end of each interval:
    what a checkpoint taken then holds. Reads the file again, in constant memory."""
    components = channel_components(node.header)
    before = node.carried
    co2_g = 0.0
    for _, record in records(node.path):
        if record is None or record.get("type") != "interval":
            continue
        try:
            _, t1, joules, interval_g = schema.check_interval(record)
        except (TypeError, ValueError):
            return
        co2_g += interval_g
        kwh: dict[str, Optional[float]] = {c: None for c in COMPONENTS}
        for name, value in joules.items():
            comp = components.get(name) or component_of(name)
            if comp in kwh:
                kwh[comp] = (kwh[comp] or 0.0) + value / J_PER_KWH
        yield Carry(
            duration_s=before.duration_s + t1,
            energy_gpu_kwh=before.energy_kwh("gpu", kwh["gpu"]),
            energy_cpu_kwh=before.energy_kwh("cpu", kwh["cpu"]),
            energy_ram_kwh=before.energy_kwh("ram", kwh["ram"]),
            co2eq_kg=before.co2eq_kg + co2_g / 1000.0,
        )


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The full records of a run log, in order (damaged lines and a torn last line left out)."""
    return (r for _, r in records(Path(path)) if r is not None)


def resolve(path: str | os.PathLike[str]) -> Path:
    """A log path; a directory stands for its newest ``*.jsonl`` file."""
    p = Path(path)
    if p.is_dir():
        logs = [f for f in p.glob("*.jsonl") if f.is_file()]
        logs.sort(key=lambda f: (f.stat().st_mtime, f.name))
        if not logs:
            raise RunLogError(f"{p}: no run log (*.jsonl) in this directory")
        return logs[-1]
    return p


def load_node(path: str | os.PathLike[str]) -> NodeRun:
    """One log file (a directory: its newest log) read back; see the module docstring."""
    p = resolve(path)
    return read_node(p, records(p))
