"""Uncertainty bands by measurement method, and which component a channel is (pure)."""

from __future__ import annotations

import pytest

from carbon_core.bands import (
    BANDS,
    component_band,
    component_methods,
    component_of,
    least_precise,
    uncertainty,
)
from carbon_core.snapshot import NOT_MEASURED, Snapshot


@pytest.mark.parametrize(
    ("channel", "component"),
    [("gpu:0", "gpu"), ("cpu:package-0", "cpu"), ("cpu:dram-0", "ram"), ("ram", "ram"), ("cpu", "cpu")],
)
def test_component_of(channel: str, component: str) -> None:
    assert component_of(channel) == component


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("counter", "counter", "counter"),
        ("counter", "power-sampled", "power-sampled"),
        ("estimated", "power-sampled", "estimated"),
        ("counter", "mystery", "mystery"),  # an unknown method counts as the least precise
    ],
)
def test_least_precise(a: str, b: str, expected: str) -> None:
    assert least_precise(a, b) == expected
    assert least_precise(b, a) == expected


@pytest.mark.parametrize(
    ("method", "band"),
    [
        ("counter", (-0.05, 0.05)),
        ("power-sampled", (-0.15, 0.15)),
        ("estimated", (-0.50, 1.00)),
        ("mystery", (-0.50, 1.00)),  # an unknown method gets the estimate's band
    ],
)
def test_band_per_method(method: str, band: tuple[float, float]) -> None:
    snap = Snapshot(energy_kwh=1.0, energy_gpu_kwh=1.0, methods={"gpu:0": method})
    assert component_band(snap, "gpu") == band
    lo, hi = uncertainty(snap)["energy_kwh"]
    assert (lo, hi) == pytest.approx((1.0 + band[0], 1.0 + band[1]))


def test_bands_are_ordered_from_the_most_precise() -> None:
    assert list(BANDS) == ["counter", "power-sampled", "estimated"]
    widths = [hi - lo for lo, hi in BANDS.values()]
    assert widths == sorted(widths)


def test_methods_of_a_component_most_precise_first() -> None:
    snap = Snapshot(
        energy_gpu_kwh=1.0,
        methods={"gpu:1": "power-sampled", "gpu:0": "counter", "cpu:dram-0": "counter", "cpu": NOT_MEASURED},
    )
    assert component_methods(snap, "gpu") == ["counter", "power-sampled"]
    assert component_methods(snap, "ram") == ["counter"]
    assert component_methods(snap, "cpu") == []


def test_a_component_not_measured_has_no_band_and_is_not_in_the_total() -> None:
    snap = Snapshot(
        energy_kwh=1.0,
        energy_gpu_kwh=1.0,
        co2eq_kg=0.5,
        methods={"gpu:0": "counter", "cpu": NOT_MEASURED, "ram": NOT_MEASURED},
    )
    assert component_band(snap, "cpu") is None
    band = uncertainty(snap)
    assert set(band) == {"gpu", "energy_kwh", "co2eq_kg"}
    assert band["gpu"] == {
        "energy_kwh": pytest.approx([0.95, 1.05]),
        "relative": [-0.05, 0.05],
        "methods": ["counter"],
    }
    assert band["co2eq_kg"] == pytest.approx([0.475, 0.525])
