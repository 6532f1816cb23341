"""One job from its nodes: merged totals, the time series and the job clock (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carbon_core.runlog.merge import distinct, merge, node_points, on_one_clock, series
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
