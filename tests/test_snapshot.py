"""Snapshot as plain values: to_dict / from_dict, and energy per component (pure)."""

from __future__ import annotations

import json

import pytest

from carbon_core.snapshot import NOT_MEASURED, Snapshot

FULL = Snapshot(
    duration_s=12.5,
    energy_kwh=0.3,
    energy_gpu_kwh=0.2,
    energy_cpu_kwh=0.1,
    energy_ram_kwh=None,
    co2eq_kg=0.12,
    power_w=410.0,
    intensity_gco2eq_per_kwh=344.1,
    predicted_co2eq_kg=1.5,
    zone="DE",
    intensity_source="table:country:DE:2024",
    methods={"gpu:0": "counter", "cpu:package-0": "counter", "ram": NOT_MEASURED},
    warnings=("one", "two"),
    devices=("gpu:0 Fake GPU",),
    progress=0.25,
    pue=1.2,
    rank_energy_kwh=(0.1, 0.2),
)


@pytest.mark.parametrize("snap", [FULL, Snapshot()], ids=["full", "default"])
def test_to_dict_from_dict_round_trip(snap: Snapshot) -> None:
    data = snap.to_dict()
    assert Snapshot.from_dict(data) == snap
    assert Snapshot.from_dict(json.loads(json.dumps(data))) == snap  # through the run log's JSON


def test_to_dict_is_plain_json_values() -> None:
    data = FULL.to_dict()
    assert data["methods"] == dict(FULL.methods) and type(data["methods"]) is dict
    assert data["warnings"] == ["one", "two"] and data["devices"] == ["gpu:0 Fake GPU"]
    assert data["rank_energy_kwh"] == [0.1, 0.2]
    assert data["energy_ram_kwh"] is None and data["zone"] == "DE"
    assert json.loads(json.dumps(data)) == data


def test_from_dict_ignores_unknown_keys_and_defaults_missing_ones() -> None:
    snap = Snapshot.from_dict({"energy_kwh": 2.0, "some_future_field": 1, "warnings": None})
    assert snap == Snapshot(energy_kwh=2.0)


def test_from_dict_rejects_methods_that_are_not_a_mapping() -> None:
    with pytest.raises(TypeError, match="methods"):
        Snapshot.from_dict({"methods": "counter"})


def test_energy_by_component() -> None:
    assert FULL.energy_by_component() == {"gpu": 0.2, "cpu": 0.1, "ram": None}
    assert Snapshot().energy_by_component() == {"gpu": None, "cpu": None, "ram": None}
