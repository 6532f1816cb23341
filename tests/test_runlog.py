"""The run log: writing it, reading it back (torn, killed, multi-node)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from carbon_core.accounting import Interval
from carbon_core.faults import FaultLog
from carbon_core.runlog import SCHEMA, RunLog, RunLogError, load, read_records
from carbon_core.snapshot import Snapshot

J_PER_KWH = 3.6e6


def _header(run_id: str = "abc123", node_rank: int | None = None, **kw: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "run_id": run_id,
        "started_at": "2025-01-01T00:00:00Z",
        "host": "h1",
        "node_rank": node_rank,
        "zone": "DE",
        "intensity_source": "table:country:DE:2024",
        "channels": {
            "gpu:0": {"component": "gpu", "method": "counter"},
            "cpu:package-0": {"component": "cpu", "method": "counter"},
            "cpu:dram-0": {"component": "ram", "method": "counter"},
        },
        "devices": ["gpu:0 Fake GPU"],
        "config": {"pue": 1.2},
    }
    header.update(kw)
    return header


def _intervals(n: int, gpu_w: float = 300.0, cpu_w: float = 60.0, dt: float = 1.0) -> list[Interval]:
    out = []
    for i in range(n):
        t0, t1 = i * dt, (i + 1) * dt
        joules = {"gpu:0": gpu_w * t1, "cpu:package-0": cpu_w * t1, "cpu:dram-0": 5.0 * t1}
        energy = (gpu_w + cpu_w + 5.0) * dt
        out.append(
            Interval(t0, t1, joules, energy, energy / J_PER_KWH * 1.2 * 344.1, 344.1, "table:country:DE:2024")
        )
    return out


def _write(tmp_path: Path, n: int = 5, final: bool = True, **header: Any) -> Path:
    faults = FaultLog()
    log = RunLog.create(tmp_path, _header(**header), faults)
    assert log.path is not None, faults.messages
    ivs = _intervals(n)
    for iv in ivs:
        log.interval(iv)
    log.warning(1.0, "a warning")
    if final:
        t = ivs[-1].t1
        log.final(
            Snapshot(
                duration_s=t,
                energy_kwh=365.0 * t / J_PER_KWH,
                energy_gpu_kwh=300.0 * t / J_PER_KWH,
                energy_cpu_kwh=60.0 * t / J_PER_KWH,
                energy_ram_kwh=5.0 * t / J_PER_KWH,
                co2eq_kg=sum(iv.co2eq_g for iv in ivs) / 1000.0,
                intensity_gco2eq_per_kwh=344.1,
                zone="DE",
                intensity_source="table:country:DE:2024",
                pue=1.2,
                methods={"gpu:0": "counter", "cpu:package-0": "counter", "cpu:dram-0": "counter"},
            )
        )
    return log.path


def test_header_intervals_final_roundtrip(tmp_path: Path) -> None:
    path = _write(tmp_path)
    records = list(read_records(path))
    assert [r["type"] for r in records] == ["header", *["interval"] * 5, "warning", "final"]
    assert records[0]["schema"] == SCHEMA
    run = load(path)
    assert run.complete
    snap = run.snapshot
    assert snap.energy_gpu_kwh == pytest.approx(1500.0 / J_PER_KWH)
    assert snap.zone == "DE" and snap.pue == 1.2


def test_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, node_rank=2)
    assert path.parent == tmp_path
    assert path.name.endswith("-node2-abc123.jsonl")


def test_create_failure_disables_the_log(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    faults = FaultLog()
    log = RunLog.create(blocker, _header(), faults)
    assert log.path is None
    log.interval(_intervals(1)[0])  # no error
    assert any("run log disabled" in m for m in faults.messages)


def test_log_without_final_is_totalled_from_last_interval(tmp_path: Path) -> None:
    path = _write(tmp_path, n=4, final=False)
    run = load(path)
    assert not run.complete
    snap = run.snapshot
    assert snap.duration_s == pytest.approx(4.0)
    assert snap.energy_gpu_kwh == pytest.approx(1200.0 / J_PER_KWH)
    assert snap.energy_cpu_kwh == pytest.approx(240.0 / J_PER_KWH)
    assert snap.energy_ram_kwh == pytest.approx(20.0 / J_PER_KWH)  # RAPL dram is RAM
    assert snap.co2eq_kg == pytest.approx(1460.0 / J_PER_KWH * 1.2 * 344.1 / 1000.0)
    assert snap.pue == 1.2 and snap.intensity_gco2eq_per_kwh == 344.1
    assert "a warning" in snap.warnings
    assert any("no final record" in w for w in snap.warnings)


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, n=3, final=False)
    with path.open("a") as fh:
        fh.write('{"type":"interval","t0":3.0,"t1":4.0,"joules":{"gpu:0":12')
    assert [r["type"] for r in read_records(path)][-1] == "warning"
    run = load(path)
    assert run.snapshot.duration_s == pytest.approx(3.0)
    assert run.snapshot.energy_gpu_kwh == pytest.approx(900.0 / J_PER_KWH)


def test_damaged_middle_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, n=3, final=False)
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(2, "garbage\n")
    path.write_text("".join(lines))
    run = load(path)
    assert run.snapshot.duration_s == pytest.approx(3.0)
    assert any("damaged" in w for w in run.snapshot.warnings)


def test_series_gives_power_per_component_and_cumulative_co2(tmp_path: Path) -> None:
    run = load(_write(tmp_path, n=3))
    points = run.series()
    assert [p.t for p in points] == [0.0, 1.0, 2.0, 3.0]
    assert points[2].power_w == pytest.approx({"gpu": 300.0, "cpu": 60.0, "ram": 5.0})
    assert points[-1].co2eq_kg == pytest.approx(run.snapshot.co2eq_kg)


def test_two_nodes_of_one_job_add_up(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", n=4, run_id="job-a", node_rank=0)
    b = _write(
        tmp_path / "b",
        n=4,
        run_id="job-b",
        node_rank=1,
        host="h2",
        channels={"gpu:0": {"component": "gpu", "method": "power-sampled"}},
    )
    single = load(a).snapshot
    run = load(a, b)
    assert len(run.nodes) == 2
    assert run.snapshot.energy_kwh == pytest.approx(2 * single.energy_kwh)
    assert run.snapshot.co2eq_kg == pytest.approx(2 * single.co2eq_kg)
    assert run.snapshot.duration_s == pytest.approx(single.duration_s)
    points = run.series()
    assert points[-1].co2eq_kg == pytest.approx(run.snapshot.co2eq_kg)
    assert max(p.power_w.get("gpu", 0.0) for p in points) == pytest.approx(600.0)


def test_merge_keeps_the_less_precise_method(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", n=2, final=False, run_id="run-a")
    b = _write(
        tmp_path / "b",
        n=2,
        final=False,
        run_id="run-b",
        host="h2",
        channels={"gpu:0": {"component": "gpu", "method": "power-sampled"}},
    )
    methods = load(a, b).snapshot.methods
    assert methods["gpu:0"] == "power-sampled"
    assert methods["cpu:package-0"] == "counter"


def test_directory_means_its_newest_log(tmp_path: Path) -> None:
    path = _write(tmp_path, n=2)
    assert load(tmp_path).nodes[0].path == path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("hello\n", "not a carbon-core run log"),
        (json.dumps({"type": "interval"}) + "\n", "no header"),
        (json.dumps({"type": "header", "schema": "carbon-core/run-log/9"}) + "\n", "newer"),
    ],
)
def test_bad_logs_raise_one_line_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "x.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RunLogError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_header_only_log(tmp_path: Path) -> None:
    log = RunLog.create(tmp_path, _header(), FaultLog())
    assert log.path is not None
    snap = load(log.path).snapshot
    assert snap.energy_kwh == 0.0 and snap.duration_s == 0.0


def test_node_labels_name_the_rank_in_a_distributed_job(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", n=2, rank=0, world_size=2, run_id="rank0")
    b = _write(tmp_path / "b", n=2, rank=1, world_size=2, run_id="rank1")
    assert [n.label for n in load(a, b).nodes] == ["h1/rank0", "h1/rank1"]
    assert load(_write(tmp_path / "c", n=2)).nodes[0].label == "h1"
