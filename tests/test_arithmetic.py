"""The arithmetic, pure and instant: accounting, forecast, budget, carried totals, faults.

No tracker, no thread, no clock: each test hands in the readings and times a sampler
would, and checks the figures a user would read.
"""

from __future__ import annotations

import math

import pytest

from carbon_core.accounting import J_PER_KWH, Accounting, Carry
from carbon_core.budget import MIN_INTERVALS, MIN_PROGRESS, Budget, forecast
from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel


def _accounting(pue: float = 1.0) -> Accounting:
    acc = Accounting(pue)
    acc.add_channels((Channel("cpu:package-0", "cpu", "counter"), Channel("gpu:0", "gpu", "counter")))
    return acc


def test_each_interval_is_charged_at_the_intensity_in_force_then() -> None:
    acc = _accounting()
    first = acc.add(3600.0, {"cpu:package-0": 3.6e6}, 100.0, "a")  # 1 kWh in an hour at 100 g/kWh
    second = acc.add(7200.0, {"cpu:package-0": 2 * 3.6e6}, 500.0, "b")  # 1 kWh more at 500 g/kWh
    assert (first.co2eq_g, second.co2eq_g) == (pytest.approx(100.0), pytest.approx(500.0))
    assert acc.co2eq_g == pytest.approx(600.0)  # a step function, not 2 kWh x the mean intensity
    assert (second.t0, second.t1, second.intensity_source) == (3600.0, 7200.0, "b")
    assert second.power_w == pytest.approx(1000.0)


@pytest.mark.parametrize("pue", [1.0, 1.2, 1.58])
def test_pue_multiplies_emissions_not_energy(pue: float) -> None:
    acc = _accounting(pue)
    acc.add(3600.0, {"gpu:0": 7.2e6}, 250.0, "t")  # 2 kW for an hour
    assert acc.kwh("gpu") == pytest.approx(2.0)
    assert acc.co2eq_g == pytest.approx(2.0 * 250.0 * pue)


def test_a_counter_that_goes_back_adds_nothing_and_keeps_its_total() -> None:
    acc = _accounting()
    acc.add(1.0, {"cpu:package-0": 1000.0}, 100.0, "t")
    back = acc.add(2.0, {"cpu:package-0": 400.0}, 100.0, "t")
    assert back.energy_j == 0.0 and acc.joules["cpu:package-0"] == 1000.0


def test_components_sum_their_channels_and_unmeasured_is_none() -> None:
    acc = _accounting()
    acc.add(7200.0, {"cpu:package-0": J_PER_KWH, "gpu:0": 3 * J_PER_KWH}, 100.0, "t")
    assert (acc.kwh("cpu"), acc.kwh("gpu"), acc.kwh("ram"), acc.kwh()) == (1.0, 3.0, None, 4.0)
    assert acc.methods() == {"cpu:package-0": "counter", "gpu:0": "counter", "ram": "not measured"}


@pytest.mark.parametrize(
    ("progress", "intervals", "expected"),
    [
        (None, 10, None),  # no progress known
        (MIN_PROGRESS / 2, 10, None),  # too early in the run
        (0.5, MIN_INTERVALS - 1, None),  # too few intervals measured
        (0.5, MIN_INTERVALS, 2.0),  # 1 kg at half-way: 2 kg for the run
        (0.25, 5, 4.0),
        (1.5, 5, 1.0),  # progress past the end counts as done
    ],
)
def test_forecast_is_the_rate_so_far_after_the_warm_up(
    progress: float | None, intervals: int, expected: float | None
) -> None:
    assert forecast(1.0, progress, intervals) == expected


def test_budget_stops_once_spent_and_keeps_saying_stop() -> None:
    budget = Budget(1.0)
    assert not budget.check(0.99, None).stop
    decision = budget.check(1.0, None)
    assert decision.stop and "spent" in decision.reason
    assert budget.check(0.0, None) is decision  # sticky
    assert not budget.job_decision.stop  # the job's decision is its own


def test_budget_on_prediction_stops_only_when_asked_to() -> None:
    assert not Budget(1.0, "spent").check(0.1, 5.0).stop
    decision = Budget(1.0, "predicted").check(0.1, 5.0)
    assert decision.stop and "predicted" in decision.reason and "0.1 kg spent" in decision.reason
    assert not Budget(1.0, "predicted").check(0.1, None).stop  # no forecast yet: no stop


def test_job_decision_is_taken_on_the_job_totals_only() -> None:
    budget = Budget(1.0)
    assert budget.check(1.5, None, job=True).stop
    assert budget.job_decision.stop and not budget.decision.stop


def test_carry_keeps_finite_non_negative_totals_only() -> None:
    carry = Carry.from_state(
        {"duration_s": 10, "co2eq_kg": "0.5", "energy_gpu_kwh": -1, "energy_cpu_kwh": math.nan, "x": 1}
    )
    assert carry == Carry(duration_s=10.0, co2eq_kg=0.5)
    assert carry.state() == {"duration_s": 10.0, "co2eq_kg": 0.5}
    assert Carry.from_state(carry.state()) == carry


def test_carry_adds_to_a_component_only_where_either_side_measured_it() -> None:
    carry = Carry(energy_gpu_kwh=2.0)
    assert carry.energy_kwh("gpu", 1.0) == 3.0
    assert carry.energy_kwh("gpu", None) == 2.0  # measured before the checkpoint only
    assert carry.energy_kwh("cpu", 1.0) == 1.0
    assert carry.energy_kwh("cpu", None) is None  # never measured: not a silent 0


def test_an_implausible_reading_is_never_energy_and_a_one_off_glitch_is_forgotten() -> None:
    acc = _accounting()
    acc.add(1.0, {"gpu:0": 300.0}, 100.0, "t")  # 300 W
    glitch = acc.add(2.0, {"gpu:0": 300.0 + 1e12}, 100.0, "t")  # a counter read 10^15 mJ too high
    assert glitch.rejected == ("gpu:0",) and glitch.energy_j == 0.0
    after = acc.add(3.0, {"gpu:0": 900.0}, 100.0, "t")  # back to normal: 600 J over two seconds
    assert after.rejected == () and acc.joules["gpu:0"] == 900.0


def test_a_counter_that_jumps_for_good_is_counted_on_from_the_jump() -> None:
    acc = _accounting()
    acc.add(1.0, {"gpu:0": 300.0}, 100.0, "t")
    assert acc.add(2.0, {"gpu:0": 5e9}, 100.0, "t").rejected == ("gpu:0",)
    later = acc.add(3.0, {"gpu:0": 5e9 + 300.0}, 100.0, "t")
    assert later.rejected == () and later.energy_j == 300.0
    assert acc.joules["gpu:0"] == 600.0  # the jump's own interval is lost, nothing else


@pytest.mark.parametrize("absurd", [1e308, 1e300, 3.0e3 * 3.0 + 1.0])
def test_absurd_custom_readings_never_reach_the_totals(absurd: float) -> None:
    acc = _accounting()
    for t in range(1, 4):
        acc.add(float(t), {"gpu:0": absurd * t}, 100.0, "t")
    assert math.isfinite(acc.co2eq_g) and acc.joules["gpu:0"] <= 3000.0 * 3


def test_faults_are_reported_once_per_key_and_a_copy_goes_its_own_way() -> None:
    faults = FaultLog()
    assert faults.warn("k", "first") and not faults.warn("k", "again")
    run = faults.copy()
    assert run.warn("r", "in the run") and not run.warn("k", "setup fault, already reported")
    assert faults.messages == ("first",) and run.messages == ("first", "in the run")
