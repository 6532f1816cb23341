"""Reading run-log records back without files: torn and damaged lines, header checks,
totals from a final record or from intervals, and the header the writer builds (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from carbon_core.meters.base import Channel
from carbon_core.runlog import SCHEMA, RunLogError, header
from carbon_core.runlog.reader import channel_components, joules_of, node_from_records, parse_lines
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


def test_parse_lines_drops_a_torn_last_line() -> None:
    lines = [_line(HEADER), _line(_interval(1.0, 10.0, 1.0)), '{"type":"interval","t0":1.0,"jou']
    records, skipped = parse_lines(lines)
    assert [r["type"] for r in records] == ["header", "interval"] and skipped == 0


def test_parse_lines_skips_and_counts_damaged_lines() -> None:
    lines = [_line(HEADER), "garbage\n", "[1, 2]\n", "\n", _line({"type": "warning"})]
    records, skipped = parse_lines(lines)
    assert [r["type"] for r in records] == ["header", "warning"] and skipped == 3


def test_parse_lines_first_line_not_json_is_not_a_run_log() -> None:
    with pytest.raises(ValueError, match="not JSON Lines"):
        parse_lines(["hello\n", _line(HEADER)])
    assert parse_lines([]) == ([], 0)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "no header"),
        ([{"type": "interval"}], "no header"),
        ([{"type": "header", "schema": "other/1"}], "no header"),
        ([{"type": "header", "schema": "carbon-core/run-log/2"}], "newer"),
    ],
)
def test_node_from_records_needs_a_known_header(records: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(RunLogError, match=message) as info:
        node_from_records(PATH, records)
    assert str(PATH) in str(info.value)


def test_a_minor_version_of_the_known_schema_is_read() -> None:
    node = node_from_records(PATH, [{**HEADER, "schema": SCHEMA + ".3"}])
    assert node.snapshot.energy_kwh == 0.0 and not node.complete


def test_totals_from_the_last_interval_without_a_final_record() -> None:
    records = [
        HEADER,
        _interval(1.0, 3.6e6, 0.0),
        {"type": "warning", "message": "w"},
        _interval(2.0, 7.2e6, 3.6e6),
    ]
    node = node_from_records(PATH, records, skipped=2)
    snap = node.snapshot
    assert not node.complete and len(node.intervals) == 2
    assert snap.energy_by_component() == {"gpu": 2.0, "cpu": None, "ram": 1.0}
    assert snap.energy_kwh == 3.0 and snap.co2eq_kg == pytest.approx(0.002)
    assert snap.duration_s == 2.0 and snap.pue == 1.5 and snap.intensity_gco2eq_per_kwh == 300.0
    assert snap.methods == {"gpu:0": "counter", "cpu:dram-0": "counter", "cpu": "not measured"}
    assert snap.warnings[0] == "w" and "2 damaged line(s)" in snap.warnings[1]
    assert "no final record" in snap.warnings[-1]


def test_totals_from_the_final_record() -> None:
    final = Snapshot(duration_s=5.0, energy_kwh=1.0, energy_gpu_kwh=1.0, warnings=("late",))
    node = node_from_records(PATH, [HEADER, {"type": "final", "snapshot": final.to_dict()}], skipped=1)
    assert node.complete
    assert node.snapshot.energy_gpu_kwh == 1.0 and node.snapshot.duration_s == 5.0
    assert node.snapshot.warnings[0] == "late" and "1 damaged line(s)" in node.snapshot.warnings[1]


def test_a_malformed_final_record_is_one_error() -> None:
    with pytest.raises(RunLogError, match="final record is malformed"):
        node_from_records(PATH, [HEADER, {"type": "final", "snapshot": {"methods": "x"}}])


def test_channel_components_and_joules() -> None:
    assert channel_components(HEADER) == {"gpu:0": "gpu", "cpu:dram-0": "ram"}
    assert channel_components({"channels": "nonsense"}) == {}
    assert joules_of({"joules": {"a": 1, "b": "x", "c": None}}) == {"a": 1.0}
    assert joules_of({"joules": [1, 2]}) == {}


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
        "intensity_source", "location_source", "channels", "devices", "hardware", "config",
    ]  # fmt: skip
    assert fields["channels"] == {"gpu:0": {"component": "gpu", "method": "counter"}}
    assert fields["versions"]["carbon_core"] == "0.1.0" and fields["started_at"].endswith("Z")
    assert fields["devices"] == ["gpu:0 Fake GPU"]
    json.dumps(fields)
