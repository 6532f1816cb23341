"""One job from its nodes: merged totals, the time series and the job clock (pure)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from carbon_core.accounting import Carry
from carbon_core.runlog.merge import (
    assemble,
    distinct,
    jobs,
    merge,
    node_points,
    on_one_clock,
    series,
    without_carry,
)
from carbon_core.runlog.reader import MAX_POINTS, NodeRun, Point
from carbon_core.snapshot import NOT_MEASURED, Snapshot


def _node(host: str, snap: Snapshot, points: tuple[Point, ...] = (), **header: Any) -> NodeRun:
    return NodeRun(Path(f"{host}.jsonl"), {"host": host, "run_id": host, **header}, snap, True, points)


A = Snapshot(
    duration_s=10.0,
    energy_kwh=3.0,
    energy_gpu_kwh=2.0,
    energy_cpu_kwh=1.0,
    co2eq_kg=1.0,
    intensity_gco2eq_per_kwh=300.0,
    zone="DE",
    intensity_source="table:country:DE:2024",
    methods={"gpu:0": "counter", "cpu:package-0": "counter", "ram": NOT_MEASURED},
    warnings=("slow disk",),
    devices=("gpu:0 A",),
    predicted_co2eq_kg=2.0,
    progress=0.5,
    pue=1.0,
)
B = Snapshot(
    duration_s=8.0,
    energy_kwh=1.5,
    energy_gpu_kwh=1.0,
    energy_ram_kwh=0.5,
    co2eq_kg=0.5,
    intensity_gco2eq_per_kwh=100.0,
    zone="FR",
    intensity_source="table:country:FR:2024",
    methods={"gpu:0": "power-sampled", "ram": "estimated", "cpu": NOT_MEASURED},
    devices=("gpu:0 B",),
    progress=0.25,
    pue=1.2,
)


def test_merge_of_two_nodes() -> None:
    snap = merge([_node("a", A), _node("b", B, node_rank=1)])
    assert snap.energy_by_component() == {"gpu": 3.0, "cpu": 1.0, "ram": 0.5}
    assert snap.energy_kwh == 4.5 and snap.co2eq_kg == 1.5 and snap.pue == 1.2
    assert snap.intensity_gco2eq_per_kwh == pytest.approx(1.5 * 1000.0 / (4.5 * 1.2))  # energy-weighted
    assert snap.methods == {"cpu:package-0": "counter", "gpu:0": "power-sampled", "ram": "estimated"}
    assert snap.zone == "DE, FR" and snap.intensity_source == "table:country:DE:2024, table:country:FR:2024"
    assert snap.warnings == ("[a] slow disk",)
    assert snap.devices == ("[a] gpu:0 A", "[b/node1] gpu:0 B")
    assert snap.duration_s == 10.0 and snap.progress == 0.25
    assert snap.predicted_co2eq_kg is None  # one node has no prediction


def test_merge_keeps_a_component_nobody_measured_out() -> None:
    snap = merge([_node("a", A), _node("b", A)])
    assert snap.energy_ram_kwh is None and snap.methods["ram"] == NOT_MEASURED
    assert snap.intensity_gco2eq_per_kwh == 300.0 and snap.predicted_co2eq_kg == 4.0


def test_merge_of_one_node_is_its_snapshot() -> None:
    assert merge([_node("a", A)]) is A


def test_merge_warns_when_the_logs_do_not_overlap() -> None:
    late = NodeRun(Path("b"), {"host": "b"}, B, True, (), offset_s=3600.0)
    snap = merge([_node("a", A), late])
    assert snap.duration_s == pytest.approx(3608.0)
    assert any("do not overlap" in w for w in snap.warnings)


def _pt(t: float, gpu_w: float, co2_g: float) -> Point:
    return Point(t, {"gpu": gpu_w, "ram": gpu_w / 10}, co2_g / 1000)


def test_node_points_are_power_per_component_on_the_job_clock() -> None:
    node = NodeRun(Path("a"), {}, A, True, (_pt(1, 100.0, 1.0), _pt(3, 100.0, 3.0)), offset_s=5.0)
    points = node_points(node)
    assert [p.t for p in points] == [5.0, 6.0, 8.0]
    assert points[0].power_w == {} and points[2].power_w == {"gpu": 100.0, "ram": 10.0}
    assert [p.co2eq_kg for p in points] == pytest.approx([0.0, 0.001, 0.003])


def test_series_of_two_nodes_adds_power_and_emissions() -> None:
    a = NodeRun(Path("a"), {}, A, True, (_pt(1, 100.0, 1.0), _pt(2, 200.0, 2.0)))
    b = NodeRun(Path("b"), {}, B, True, (_pt(2, 200.0, 4.0),), offset_s=0.0)
    points = series([a, b])
    assert [p.t for p in points] == [0.0, 1.0, 2.0]
    assert points[1].power_w == pytest.approx({"gpu": 300.0, "ram": 30.0})
    assert points[2].power_w == pytest.approx({"gpu": 400.0, "ram": 40.0})
    assert [p.co2eq_kg for p in points] == pytest.approx([0.0, 0.001, 0.006])


def test_series_counts_a_node_only_while_it_runs() -> None:
    a = NodeRun(Path("a"), {}, A, True, (_pt(10, 100.0, 1.0),))
    b = NodeRun(Path("b"), {}, B, True, (_pt(2, 50.0, 1.0),), offset_s=4.0)
    points = series([a, b])
    assert [p.t for p in points] == [0.0, 4.0, 6.0, 10.0]
    assert [p.power_w.get("gpu") for p in points] == [None, 100.0, 150.0, 100.0]
    assert [p.co2eq_kg for p in points] == pytest.approx([0.0, 0.0, 0.001, 0.002])


def test_series_of_many_long_nodes_is_bounded_and_keeps_the_energy() -> None:
    nodes = [
        NodeRun(
            Path(f"n{k}"), {}, A, True, tuple(_pt(i, 100.0 + k, i / 1000) for i in range(1, 3001)), offset_s=k
        )
        for k in range(8)
    ]
    points = series(nodes)
    assert len(points) <= MAX_POINTS + 1 and points[-1].t == 3007.0
    assert points[-1].co2eq_kg == pytest.approx(8 * 0.003)
    energy = sum(p.power_w["gpu"] * (p.t - q.t) for q, p in zip(points, points[1:]))
    assert energy == pytest.approx(sum(3000 * (100.0 + k) for k in range(8)))


def test_on_one_clock_places_each_start() -> None:
    first = _node("a", A, started_at="2025-01-01T00:00:00Z")
    second = _node("b", B, started_at="2025-01-01T00:00:30Z")
    unknown = _node("c", B, started_at="yesterday")
    assert [n.offset_s for n in on_one_clock([second, first, unknown])] == [30.0, 0.0, 0.0]


def _log(
    name: str, run_id: str, offset: float, duration: float, complete: bool = True, **header: Any
) -> NodeRun:
    snap = Snapshot(duration_s=duration, energy_kwh=1.0)
    head = {"host": "h", "rank": 0, "run_id": run_id, **header}
    return NodeRun(Path(name), head, snap, complete, offset_s=offset, intervals=int(duration))


def test_distinct_counts_a_run_once_and_keeps_its_fuller_log() -> None:
    cut, whole = _log("cut.jsonl", "r1", 0, 50, complete=False), _log("whole.jsonl", "r1", 0, 100)
    nodes, notes = distinct([cut, whole, _log("cut.jsonl", "r1", 0, 50, complete=False)])
    assert nodes == [whole]
    assert notes == [
        "cut.jsonl and whole.jsonl are the same run (run id r1): counted once",
        "whole.jsonl and cut.jsonl are the same run (run id r1): counted once",
    ]
    assert distinct([cut, cut])[1] == ["cut.jsonl is given twice: counted once"]


def test_distinct_warns_about_logs_of_one_rank_that_overlap() -> None:
    logs = [
        _log("a", "r1", 0, 100),
        _log("b", "r2", 10, 20),
        _log("c", "r3", 50, 10),
        _log("d", "r4", 100, 5),
    ]
    nodes, notes = distinct([*logs, _log("e", "r5", 20, 100, rank=1), _log("f", "r6", 20, 100, host="g")])
    assert len(nodes) == 6
    assert [n.split(" overlap")[0] for n in notes] == ["a and b", "a and c"]
    assert (
        notes[0]
        == "a and b overlap in time on one host and rank (h): both are counted; is one a copy of the other?"
    )
    assert distinct([_log("a", "r1", 0, 10), _log("b", "r2", 9.5, 10)])[1] == []  # within the clock's second


# -- the merge rules: nodes of one job, resumed runs, unrelated runs ------------------------------
NOTHING = Carry()


def _part(name: str, offset: float, snap: Snapshot, carried: Carry = NOTHING, **header: Any) -> NodeRun:
    head = {"host": "h", "run_id": name, **header}
    return NodeRun(Path(f"{name}.jsonl"), head, snap, True, offset_s=offset, intervals=10, carried=carried)


def test_jobs_by_job_id_by_overlap_and_one_process_runs_alone() -> None:
    one = {"world_size": 1, "node_rank": 0}
    logs = [
        _part("a0", 0, A, job_id="j1", rank=0, world_size=2),
        _part("a1", 5000, A, job_id="j1", rank=1, world_size=2),  # a job id joins even apart
        _part("b0", 100, B, rank=0, world_size=2),
        _part("b1", 101, B, rank=1, world_size=2),  # no job id: overlapping ranks join
        _part("c", 300, B, rank=0, world_size=2),  # a later job of the same shape
        _part("s1", 0, B, **one),
        _part("s2", 1, B, **one),  # a concurrent one-process run (a sweep) is a run of its own
    ]
    found = [[n.run_id for n in job.nodes] for job in jobs(logs)]
    assert sorted(found) == [["a0", "a1"], ["b0", "b1"], ["c"], ["s1"], ["s2"]]


def test_a_multi_node_checkpoint_is_matched_by_its_totals() -> None:
    first = [_part(f"q{r}", 0, A, job_id="q", rank=r, world_size=2) for r in (0, 1)]
    # the checkpoint holds the job's totals at a logging step: less than the job's final ones
    carry = Carry(duration_s=9.0, energy_gpu_kwh=3.5, energy_cpu_kwh=1.5, co2eq_kg=1.8)
    resumed = replace(
        A, duration_s=19.0, energy_kwh=7.0, energy_gpu_kwh=5.5, energy_cpu_kwh=1.5, co2eq_kg=2.8
    )
    later = [
        _part("p0", 20, resumed, carry, job_id="p", rank=0, world_size=2),
        _part("p1", 20, A, job_id="p", rank=1, world_size=2),
    ]
    run = assemble([*first, *later])  # offsets set by hand
    assert run.snapshot.co2eq_kg == pytest.approx(2 * 1.0 + (2.8 - 1.8) + 1.0)
    assert run.snapshot.energy_kwh == pytest.approx(2 * 3.0 + (7.0 - 5.0) + 3.0)
    (rule,) = [r for r in run.rules if r.startswith("resumed run")]
    assert "matched by totals" in rule and len(run.runs) == 1
    # a checkpoint that holds more than that job ever measured is not from it
    too_much = [replace(later[0], carried=replace(carry, co2eq_kg=5.0)), later[1]]
    apart = assemble([*first, *too_much])
    assert len(apart.runs) == 2 and apart.rules[-1].startswith("unrelated runs: 2 runs")
    assert any(r.startswith("resumed run, first part not given") for r in apart.rules)
    assert apart.snapshot.co2eq_kg == pytest.approx(2 * 1.0 + 2.8 + 1.0)  # the carry is counted


def test_without_carry_is_what_the_part_measured_itself() -> None:
    carry = Carry(duration_s=4.0, energy_gpu_kwh=1.0, co2eq_kg=0.25)
    own = without_carry(A, carry)
    assert own.duration_s == 6.0 and own.energy_gpu_kwh == 1.0 and own.energy_cpu_kwh == 1.0
    assert own.energy_kwh == 2.0 and own.co2eq_kg == 0.75 and own.energy_ram_kwh is None
    assert without_carry(A, Carry()) is A
