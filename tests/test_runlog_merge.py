"""One job from its nodes: merged totals, the time series and the job clock (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carbon_core.runlog.merge import merge, node_points, on_one_clock, series
from carbon_core.runlog.reader import NodeRun
from carbon_core.snapshot import NOT_MEASURED, Snapshot


def _node(host: str, snap: Snapshot, intervals: tuple[dict[str, Any], ...] = (), **header: Any) -> NodeRun:
    return NodeRun(Path(f"{host}.jsonl"), {"host": host, "run_id": host, **header}, snap, True, intervals)


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


def _iv(t0: float, t1: float, gpu_j: float, co2_g: float) -> dict[str, Any]:
    return {"t0": t0, "t1": t1, "joules": {"gpu:0": gpu_j, "cpu:dram-0": gpu_j / 10}, "co2eq_g": co2_g}


def test_node_points_are_power_per_component_on_the_job_clock() -> None:
    node = NodeRun(Path("a"), {}, A, True, (_iv(0, 1, 100.0, 1.0), _iv(1, 3, 300.0, 2.0)), offset_s=5.0)
    points = node_points(node)
    assert [p.t for p in points] == [5.0, 6.0, 8.0]
    assert points[1].power_w == {"gpu": 100.0, "ram": 10.0}
    assert points[2].power_w == {"gpu": 100.0, "ram": 10.0}
    assert [p.co2eq_kg for p in points] == pytest.approx([0.0, 0.001, 0.003])


def test_series_of_two_nodes_adds_power_and_emissions() -> None:
    a = NodeRun(Path("a"), {}, A, True, (_iv(0, 1, 100.0, 1.0), _iv(1, 2, 200.0, 1.0)))
    b = NodeRun(Path("b"), {}, B, True, (_iv(0, 2, 400.0, 4.0),), offset_s=0.0)
    points = series([a, b])
    assert [p.t for p in points] == [0.0, 1.0, 2.0]
    assert points[1].power_w == pytest.approx({"gpu": 300.0, "ram": 30.0})
    assert points[2].power_w == pytest.approx({"gpu": 300.0, "ram": 30.0})
    assert [p.co2eq_kg for p in points] == pytest.approx([0.0, 0.001, 0.006])


def test_on_one_clock_places_each_start() -> None:
    first = _node("a", A, started_at="2025-01-01T00:00:00Z")
    second = _node("b", B, started_at="2025-01-01T00:00:30Z")
    unknown = _node("c", B, started_at="yesterday")
    assert [n.offset_s for n in on_one_clock([second, first, unknown])] == [30.0, 0.0, 0.0]
