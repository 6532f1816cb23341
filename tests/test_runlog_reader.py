"""Reading run logs back: torn, damaged and overlong lines, header and field checks, totals
from a final record or from intervals, the bounded series, and the header the writer builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from carbon_core.meters.base import Channel
from carbon_core.runlog import SCHEMA, RunLogError, header
from carbon_core.runlog.reader import (
    MAX_WARNINGS,
    Downsampler,
    NodeRun,
    channel_components,
    load_node,
    read_node,
    read_records,
)
from carbon_core.runlog.schema import MAX_LINE_BYTES
from carbon_core.snapshot import Snapshot

HEADER = {
    "type": "header",
    "schema": SCHEMA,
    "run_id": "r1",
    "channels": {"gpu:0": {"component": "gpu", "method": "counter"}, "cpu:dram-0": {"method": "counter"}},
    "config": {"pue": 1.5},
}
PATH = Path("run.jsonl")


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record) + "\n"


def _interval(t1: float, gpu_j: float, dram_j: float, co2_g: float = 1.0) -> dict[str, Any]:
    return {
        "type": "interval",
        "t0": t1 - 1.0,
        "t1": t1,
        "joules": {"gpu:0": gpu_j, "cpu:dram-0": dram_j},
        "co2eq_g": co2_g,
        "intensity": 300.0,
        "power_w": 10.0,
    }


def _file(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "run.jsonl"
    path.write_bytes(b"".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    return path


def _read(records: list[dict[str, Any]]) -> NodeRun:
    return read_node(PATH, iter(enumerate(records, 1)))  # type: ignore[arg-type]


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    path = _file(
        tmp_path, _line(HEADER), _line(_interval(1.0, 10.0, 1.0)), '{"type":"interval","t0":1.0,"jou'
    )
    assert [r["type"] for r in read_records(path)] == ["header", "interval"]
    node = load_node(path)
    assert node.intervals == 1 and not any("damaged" in w for w in node.snapshot.warnings)


def test_damaged_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    lines = [_line(HEADER), "garbage\n", "[1, 2]\n", "\n", b"\xff\xfe\x00\n", '{"a": 1} x\n']
    path = _file(tmp_path, *lines, _line({"type": "warning", "message": "w"}))
    assert [r["type"] for r in read_records(path)] == ["header", "warning"]
    assert "5 damaged line(s)" in load_node(path).snapshot.warnings[-2]


@pytest.mark.parametrize("line", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "1" * 5000 + "}"])
def test_json_past_the_parser_limits_is_one_error(tmp_path: Path, line: str) -> None:
    with pytest.raises(
        RunLogError, match=r"line 2: not a run log record \(is nested too deep or holds an int"
    ):
        load_node(_file(tmp_path, _line(HEADER), line + "\n"))


def test_an_overlong_line_is_skipped_without_being_held(tmp_path: Path) -> None:
    path = _file(
        tmp_path, _line(HEADER), "x" * (3 * MAX_LINE_BYTES) + "\n", _line(_interval(1.0, 3.6e6, 0.0))
    )
    node = load_node(path)
    assert node.intervals == 1 and node.snapshot.energy_gpu_kwh == 1.0
    assert any("1 damaged line(s)" in w for w in node.snapshot.warnings)


@pytest.mark.parametrize("first", ["hello\n", "[1]\n", "x" * (MAX_LINE_BYTES + 10)])
def test_a_first_line_that_is_not_a_json_object_is_not_a_run_log(tmp_path: Path, first: str) -> None:
    with pytest.raises(RunLogError, match="not JSON Lines"):
        load_node(_file(tmp_path, first, _line(HEADER)))


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "no header"),
        ([{"type": "interval"}], "no header"),
        ([{"type": "header", "schema": "other/1"}], "no header"),
        ([{"type": "header", "schema": 7}], "no header"),
        ([{"type": "header", "schema": "carbon-core/run-log/2"}], "newer"),
    ],
)
def test_a_node_needs_a_known_header(records: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(RunLogError, match=message) as info:
        _read(records)
    assert str(PATH) in str(info.value)


def test_a_minor_version_of_the_known_schema_is_read() -> None:
    node = _read([{**HEADER, "schema": SCHEMA + ".3"}])
    assert node.snapshot.energy_kwh == 0.0 and not node.complete


def test_totals_from_the_last_interval_without_a_final_record(tmp_path: Path) -> None:
    records = [
        HEADER,
        _interval(1.0, 3.6e6, 0.0),
        {"type": "warning", "message": "w"},
        _interval(2.0, 7.2e6, 3.6e6),
    ]
    node = load_node(_file(tmp_path, *map(_line, records[:2]), "x\n", "y\n", *map(_line, records[2:])))
    snap = node.snapshot
    assert not node.complete and node.intervals == 2
    assert snap.energy_by_component() == {"gpu": 2.0, "cpu": None, "ram": 1.0}
    assert snap.energy_kwh == 3.0 and snap.co2eq_kg == pytest.approx(0.002)
    assert snap.duration_s == 2.0 and snap.pue == 1.5 and snap.intensity_gco2eq_per_kwh == 300.0
    assert snap.methods == {"gpu:0": "counter", "cpu:dram-0": "counter", "cpu": "not measured"}
    assert snap.warnings[0] == "w" and "2 damaged line(s)" in snap.warnings[1]
    assert "no final record" in snap.warnings[-1]


def test_totals_from_the_final_record(tmp_path: Path) -> None:
    final = Snapshot(duration_s=5.0, energy_kwh=1.0, energy_gpu_kwh=1.0, warnings=("late",))
    node = load_node(
        _file(tmp_path, _line(HEADER), "x\n", _line({"type": "final", "snapshot": final.to_dict()}))
    )
    assert node.complete
    assert node.snapshot.energy_gpu_kwh == 1.0 and node.snapshot.duration_s == 5.0
    assert node.snapshot.warnings[0] == "late" and "1 damaged line(s)" in node.snapshot.warnings[1]


def test_warnings_kept_are_bounded() -> None:
    records = [HEADER, *({"type": "warning", "message": f"w{i}"} for i in range(MAX_WARNINGS + 50))]
    warnings = _read([*records, {"type": "warning", "message": "w1"}]).snapshot.warnings
    assert len(warnings) == MAX_WARNINGS + 2 and "50 more warning(s)" in warnings[-2]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"type": "final", "snapshot": {"methods": "x"}}, "final record is malformed"),
        ({"type": "final", "snapshot": [1]}, "final record is malformed"),
        ({"type": "final", "snapshot": {"energy_kwh": 1e999}}, "'energy_kwh' is out of range"),
        ({"type": "interval", "t1": "late"}, "'t1' is a string, not a number"),
        ({"type": "interval", "joules": {"gpu:0": 10**400}}, "joules.*out of range"),
        ({"type": "interval", "co2eq_g": -1.0}, "'co2eq_g' is out of range"),
        ({"type": "interval", "power_w": float("nan")}, "'power_w' is out of range"),
        ({"type": "warning", "message": ["x"]}, "'message' is a list"),
    ],
)
def test_a_record_with_wrong_fields_is_one_error_naming_the_line(
    record: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunLogError, match=message) as info:
        _read([HEADER, _interval(1.0, 1.0, 1.0), record])
    assert str(info.value).startswith(f"{PATH}: line 3: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "field",
    [{"host": 1}, {"rank": "0"}, {"rank": 2**40}, {"world_size": True}, {"channels": []},
     {"channels": {"a": 1}}, {"devices": "gpu"}, {"config": {"pue": "x"}}, {"started_at": 0}],
)  # fmt: skip
def test_a_header_with_wrong_fields_is_one_error(field: dict[str, Any]) -> None:
    with pytest.raises(RunLogError, match="line 1: malformed header"):
        _read([{**HEADER, **field}])


def test_channel_components() -> None:
    assert channel_components(HEADER) == {"gpu:0": "gpu", "cpu:dram-0": "ram"}
    assert channel_components({"channels": "nonsense"}) == {}


def test_the_downsampler_keeps_the_energy_in_a_bounded_series() -> None:
    exact = Downsampler(limit=10)
    for i in range(1, 10):
        exact.add(float(i), 1.0, {"gpu": float(i)}, i / 10)
    assert [p.power_w["gpu"] for p in exact.points()] == [float(i) for i in range(1, 10)]  # below the limit
    ds = Downsampler(limit=10)
    n = 10_000
    for i in range(1, n + 1):
        ds.add(float(i), 1.0, {"gpu": 100.0 + i % 7, "cpu": 5.0}, i / 1000)
    points = ds.points()
    assert 5 <= len(points) <= 10 and points[-1].t == n and points[-1].co2eq_kg == n / 1000
    times = [0.0] + [p.t for p in points]
    energy = sum(p.power_w["gpu"] * (b - a) for p, a, b in zip(points, times, times[1:]))
    assert energy == pytest.approx(sum(100.0 + i % 7 for i in range(1, n + 1)))


def test_header_keeps_the_documented_keys_in_order() -> None:
    fields = header(
        run_id="r1",
        job_id="j1",
        node_rank=0,
        rank=1,
        world_size=2,
        version="0.1.0",
        zone="DE",
        intensity_source="table:country:DE:2024",
        location_source=None,
        channels={"gpu:0": Channel("gpu:0", "gpu", "counter")},
        devices=("gpu:0 Fake GPU",),
        hardware={"nvml": {"driver": "1"}},
        config={"pue": 1.0},
    )
    assert list(fields) == [
        "run_id", "job_id", "started_at", "host", "node_rank", "rank", "world_size", "versions", "zone",
        "intensity_source", "location_source", "location", "channels", "devices", "hardware", "config",
    ]  # fmt: skip
    assert fields["channels"] == {"gpu:0": {"component": "gpu", "method": "counter"}}
    assert fields["versions"]["carbon_core"] == "0.1.0" and fields["started_at"].endswith("Z")
    assert fields["devices"] == ["gpu:0 Fake GPU"]
    json.dumps(fields)
