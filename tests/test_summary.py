"""The end-of-run summary: figures, methods, bands, equivalents and what-if."""

from __future__ import annotations

import pytest

from carbon_core.bands import BANDS, component_band, uncertainty
from carbon_core.intensity import lookup
from carbon_core.snapshot import Snapshot
from carbon_core.summary import CAR_G_PER_KM, car_distance, fmt_energy, fmt_mass, render, what_if


def _snap(**kw: object) -> Snapshot:
    base: dict[str, object] = dict(
        duration_s=3600.0,
        energy_kwh=1.1,
        energy_gpu_kwh=1.0,
        energy_cpu_kwh=0.1,
        energy_ram_kwh=None,
        co2eq_kg=1.1 * 0.3441,
        intensity_gco2eq_per_kwh=344.1,
        zone="DE",
        intensity_source="table:country:DE:2024",
        methods={"gpu:0": "counter", "cpu:estimate": "estimated", "ram": "not measured"},
    )
    base.update(kw)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_bands_by_method() -> None:
    snap = _snap()
    assert component_band(snap, "gpu") == BANDS["counter"] == (-0.05, 0.05)
    assert component_band(snap, "cpu") == BANDS["estimated"] == (-0.5, 1.0)
    assert component_band(snap, "ram") is None


def test_component_band_is_its_least_precise_method() -> None:
    snap = _snap(methods={"gpu:0": "counter", "gpu:1": "power-sampled", "cpu:estimate": "estimated"})
    assert component_band(snap, "gpu") == BANDS["power-sampled"]


def test_rapl_dram_counts_as_ram() -> None:
    snap = _snap(
        energy_ram_kwh=0.01,
        energy_kwh=1.11,
        methods={"gpu:0": "counter", "cpu:package-0": "counter", "cpu:dram-0": "counter"},
    )
    assert component_band(snap, "ram") == BANDS["counter"]
    assert component_band(snap, "cpu") == BANDS["counter"]


def test_uncertainty_adds_component_bands_linearly() -> None:
    snap = _snap()
    band = uncertainty(snap)
    lo, hi = band["energy_kwh"]
    assert lo == pytest.approx(1.0 * 0.95 + 0.1 * 0.5)
    assert hi == pytest.approx(1.0 * 1.05 + 0.1 * 2.0)
    clo, chi = band["co2eq_kg"]
    assert clo == pytest.approx(snap.co2eq_kg * lo / 1.1)
    assert chi == pytest.approx(snap.co2eq_kg * hi / 1.1)
    assert "ram" not in band


def test_uncertainty_of_an_empty_run() -> None:
    band = uncertainty(Snapshot())
    assert band["energy_kwh"] == [0.0, 0.0]
    assert band["co2eq_kg"] == [0.0, 0.0]


def test_render_names_methods_source_band_and_equivalent() -> None:
    text = render(_snap())
    assert "counter" in text and "estimated" in text
    assert "-5 % / +5 %" in text and "-50 % / +100 %" in text
    assert "RAM" in text and "not measured" in text
    assert "table:country:DE:2024" in text and "yearly average" in text
    assert "106.8 gCO2/km" in text and "EEA 2024" in text
    assert "SE" in text and "NO" in text and "FR" in text


def test_render_without_warnings() -> None:
    snap = _snap(warnings=("something odd happened",))
    assert "something odd happened" in render(snap)
    assert "something odd happened" not in render(snap, warnings=False)


def test_render_shows_prediction_when_known() -> None:
    assert "predicted" in render(_snap(predicted_co2eq_kg=2.0))
    assert "predicted" not in render(_snap())


def test_car_distance() -> None:
    assert car_distance(CAR_G_PER_KM / 1000.0) == "1.00 km"
    assert car_distance(CAR_G_PER_KM / 1000.0 / 2) == "500 m"


def test_what_if_lists_only_cleaner_direct_zones() -> None:
    zones = [z for z, _, _ in what_if(_snap())]
    assert zones == ["SE", "NO", "FR", "CA-QC"]  # CA-QC: Quebec's own figure (Electricity Maps)
    kg = dict((z, k) for z, k, _ in what_if(_snap(pue=1.5)))
    sweden = lookup("SE")
    assert sweden is not None and kg["SE"] == pytest.approx(1.1 * 1.5 * sweden.gco2eq_per_kwh / 1000.0)
    assert [z for z, _, _ in what_if(_snap(), ("GB-13", "SE"))] == ["SE"]  # GB-13: only through GB


def test_what_if_skips_own_and_dirtier_zones() -> None:
    snap = _snap(zone="SE", intensity_gco2eq_per_kwh=35.8, intensity_source="table:country:SE:2024")
    assert [z for z, _, _ in what_if(snap)] == ["NO"]


@pytest.mark.parametrize(("kwh", "text"), [(2.5, "2.50 kWh"), (0.0182, "18.2 Wh"), (7.78e-9, "0.00778 mWh")])
def test_fmt_energy(kwh: float, text: str) -> None:
    assert fmt_energy(kwh) == text


@pytest.mark.parametrize(
    ("kg", "text"), [(12.0, "12.0 kg"), (0.25, "250 g"), (6.28e-6, "6.28 mg"), (0.0, "0 mg")]
)
def test_fmt_mass(kg: float, text: str) -> None:
    assert fmt_mass(kg) == text


def test_render_shows_the_mean_intensity_when_it_changed() -> None:
    text = render(_snap(co2eq_kg=1.1 * 0.2))  # 200 g/kWh on average, 344.1 at the end
    assert "200.0 gCO2eq/kWh on average (latest 344.1)" in text
    assert "on average" not in render(_snap())
