"""Issue 19: energy and CO2eq per sample and per token, and per phase, in the core.

The split itself is checked on a scripted clock (exact figures); the Tracker end to end on a
meter of constant power (real sampler thread, real accounting, real run log read back)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_for

from carbon_core import Tracker
from carbon_core.accounting import J_PER_KWH, Carry
from carbon_core.distributed import phase_vector, phases_of
from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, Meter
from carbon_core.phases import PhaseClock, PhaseSplit
from carbon_core.runlog import load, read_records
from carbon_core.snapshot import Phase, Snapshot
from carbon_core.summary import render

WATTS = 200.0


class Steady(Meter):
    """A device that draws a constant power: its joules are watts x seconds since it was built."""

    name = "steady"

    def __init__(self, watts: float = WATTS) -> None:
        super().__init__()
        self.watts, self.t0 = watts, time.monotonic()
        self.channels = (Channel("gpu:0", "gpu", "counter"),)

    def read(self) -> dict[str, float]:
        return {"gpu:0": self.watts * (time.monotonic() - self.t0)}


def _tracker(tmp_path: Path, **kw: object) -> Tracker:
    return Tracker(interval_s=0.05, intensity=500.0, meters=[Steady()], log_dir=str(tmp_path), **kw)  # type: ignore[arg-type]


class Clock:
    """A scripted monotonic clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


# -- the split, on a scripted clock: exact figures -----------------------------------------------


def test_each_interval_is_split_by_the_time_each_phase_was_active() -> None:
    clock = Clock()
    phases, split = PhaseClock(FaultLog(), now=clock), PhaseSplit(0.0)
    clock.t = 0.2
    train = phases.open("train")
    clock.t = 0.7
    phases.close(train)
    shares = split.add(0.0, 1.0, 100.0, 40.0, phases.switches)  # 100 J, 40 g over [0, 1]
    assert shares == pytest.approx({"other": 50.0, "train": 50.0})
    # a 5 ms validation inside a 1 s interval gets its 5 ms worth, not nothing
    clock.t = 1.1
    val = phases.open("validation")
    clock.t = 1.102
    save = phases.open("checkpoint")  # nested: the innermost phase is the active one
    clock.t = 1.103
    phases.close(save)
    clock.t = 1.105
    phases.close(val)
    shares = split.add(1.0, 2.0, 60.0, 24.0, phases.switches)
    assert shares["validation"] == pytest.approx(0.004 * 60.0)
    assert shares["checkpoint"] == pytest.approx(0.001 * 60.0)
    assert sum(shares.values()) == 60.0  # exactly: the last share is the remainder
    totals = split.totals()
    assert totals["validation"].energy_kwh * J_PER_KWH == pytest.approx(0.24)
    assert totals["validation"].co2eq_kg * 1000 == pytest.approx(0.004 * 24.0)
    assert totals["validation"].duration_s == pytest.approx(0.004)
    assert totals["train"].duration_s == pytest.approx(0.5)
    assert sum(p.energy_kwh for p in totals.values()) * J_PER_KWH == pytest.approx(160.0, rel=1e-15)
    spans = split.take_spans()
    assert [(s.name, s.t0, s.t1) for s in spans] == [
        ("validation", 1.1, 1.102), ("checkpoint", 1.102, 1.103), ("validation", 1.103, 1.105),
    ]  # fmt: skip


def test_a_phase_opened_twice_nests_and_closing_the_outer_closes_what_is_inside() -> None:
    clock = Clock()
    phases = PhaseClock(FaultLog(), now=clock)
    outer = phases.open("eval")
    inner = phases.open("eval")
    phases.close(inner)
    assert phases.active == "eval"
    phases.open("data")  # left open inside
    phases.close(outer)
    assert phases.active == "other" and not phases.is_open(outer)
    phases.close(outer)  # a token closed already: nothing
    assert phases.active == "other"


def test_job_phases_are_summed_slot_by_slot_and_unnamed_slots_count_in_other() -> None:
    rank0 = {"train": Phase(2.0, 1.0, 10.0), "other": Phase(1.0, 0.5, 4.0), "tokenize": Phase(0.5, 0.25, 1.0)}
    rank1 = {
        "train": Phase(3.0, 1.5, 12.0),
        "tokenize": Phase(0.25, 0.125, 2.0),
        "rank1-only": Phase(1.0, 0.5, 1.0),
    }
    summed = [a + b for a, b in zip(phase_vector(rank0), phase_vector(rank1))]
    job = phases_of(summed, rank0)
    assert job["train"] == Phase(5.0, 2.5, 11.0)  # seconds: the mean over the ranks that have it
    assert job["tokenize"] == Phase(0.75, 0.375, 1.5)
    assert "rank1-only" not in job and job["other"] == Phase(2.0, 1.0, 4.0)  # rank 0 cannot name it
    assert sum(p.energy_kwh for p in job.values()) == pytest.approx(7.75)  # still the job's total


# -- the Tracker end to end ----------------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Tracker, Snapshot, dict[str, float]]]:
    """A run with steps (train), a validation shorter than one interval, a checkpoint inside
    it, a phase of the user's own and one left open at stop; samples and tokens counted."""
    t = _tracker(tmp_path / "logs", embodied_kg_per_hour=0.03)
    seen: dict[str, float] = {}
    t.start()
    for _ in range(12):
        with t.phase("train"):
            time.sleep(0.01)
        t.count(samples=8, tokens=8 * 64)
    t.progress(12, 12, samples=4)  # a last, smaller batch, through progress()
    before = time.monotonic()
    with t.phase("validation"):
        inside = time.monotonic()
        time.sleep(0.005)
        with t.phase("checkpoint"):
            time.sleep(0.002)
        seen["validation_inner_s"] = time.monotonic() - inside
    seen["validation_outer_s"] = time.monotonic() - before
    assert wait_for(lambda: t.intervals >= 3)
    t.phases.open("tokenize")  # never closed: stop closes it
    time.sleep(0.01)
    final = t.stop()
    yield t, final, seen


def test_phases_add_up_to_the_total_and_short_ones_get_their_share(run) -> None:
    _, final, seen = run
    assert set(final.phases) == {"train", "validation", "checkpoint", "other", "tokenize"}
    assert sum(p.energy_kwh for p in final.phases.values()) == pytest.approx(final.energy_kwh, rel=1e-9)
    assert sum(p.co2eq_kg for p in final.phases.values()) == pytest.approx(final.co2eq_kg, rel=1e-9)
    assert sum(p.duration_s for p in final.phases.values()) == pytest.approx(final.duration_s, rel=1e-9)
    validation = final.phases["validation"]  # shorter than one 50 ms interval; the checkpoint inside it
    inside = validation.duration_s + final.phases["checkpoint"].duration_s
    assert seen["validation_inner_s"] <= inside <= seen["validation_outer_s"]
    assert validation.energy_kwh > 0 and final.phases["checkpoint"].energy_kwh > 0
    assert final.phases["tokenize"].duration_s > 0  # left open: closed at stop, counted up to it
    metrics = final.to_metrics()
    for name, phase in final.phases.items():
        assert metrics[f"carbon/phase/{name}_kwh"] == phase.energy_kwh


def test_per_sample_and_per_token_are_the_totals_over_the_units(run) -> None:
    _, final, _ = run
    assert final.samples == 12 * 8 + 4 and final.tokens == 12 * 8 * 64
    metrics = final.to_metrics()
    joules = final.energy_kwh * J_PER_KWH
    assert metrics["carbon/energy_j_per_sample"] == pytest.approx(joules / 100, rel=1e-12)
    assert metrics["carbon/co2eq_g_per_sample"] == pytest.approx(final.co2eq_kg * 1000 / 100, rel=1e-12)
    assert metrics["carbon/energy_j_per_token"] == pytest.approx(joules / 6144, rel=1e-12)
    assert metrics["carbon/co2eq_g_per_token"] == pytest.approx(final.co2eq_kg * 1000 / 6144, rel=1e-12)


def test_the_summary_shows_units_and_phases(run) -> None:
    _, final, _ = run
    text = render(final, warnings=False)
    assert "  per sample: " in text and "(100 samples)" in text and "(6,144 tokens)" in text
    rows = {
        ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  ") and ln.split()[0] in final.phases
    }
    assert set(rows) == set(final.phases)
    assert text.index(rows["train"]) < text.index(rows["checkpoint"])  # largest first
    assert all("%" in row and row.rstrip().endswith(" s") for row in rows.values())


def test_the_run_log_holds_units_phases_and_the_sci_block(run) -> None:
    t, final, _ = run
    records = list(read_records(t.log_path))
    last = records[-1]
    assert last["type"] == "final" and last["snapshot"]["samples"] == 100
    assert last["per_unit"]["energy_j_per_token"] == pytest.approx(final.energy_j_per_token)
    sci = last["sci"]
    assert sci["R_unit"] == "token" and sci["R"] == 6144
    hours = final.duration_s / 3600
    assert sci["M_g"] == pytest.approx(30.0 * hours) and sci["M_source"].startswith(
        "given: embodied_kg_per_hour=0.03"
    )
    assert sci["sci_g_per_unit"] == pytest.approx((final.co2eq_kg * 1000 + 30.0 * hours) / 6144)
    assert sci["O_g"] == pytest.approx(sci["E_kwh"] * sci["I_gco2eq_per_kwh"])
    intervals = [r for r in records if r["type"] == "interval"]
    for r in intervals:
        assert sum(r["phases"].values()) == pytest.approx(r["energy_j"], rel=1e-6, abs=2e-6)
    spans = [(r["name"], r["t0"] < r["t1"]) for r in records if r["type"] == "phase"]
    assert spans == [("validation", True), ("checkpoint", True), ("validation", True), ("tokenize", True)]

    loaded = load(t.log_path)  # read back: the report's split and spans
    assert loaded.phases == final.phases
    assert [s.name for s in loaded.spans()] == ["validation", "checkpoint", "validation", "tokenize"]
    assert loaded.snapshot.samples == 100 and loaded.snapshot.tokens == 6144


def test_without_embodied_emissions_the_sci_block_has_no_m(tmp_path: Path) -> None:
    with _tracker(tmp_path) as t:
        t.count(samples=10)
        assert wait_for(lambda: t.intervals >= 1)
    sci = list(read_records(t.log_path))[-1]["sci"]
    assert "M_g" not in sci and "M_source" not in sci
    assert sci["R_unit"] == "sample" and sci["sci_g_per_unit"] == pytest.approx(sci["O_g"] / 10)


def test_a_log_without_its_final_record_still_has_its_split(run, tmp_path: Path) -> None:
    t, final, _ = run
    lines = Path(t.log_path).read_text().splitlines()
    cut = tmp_path / "killed.jsonl"
    cut.write_text("\n".join(lines[:-1]) + "\n")  # SIGKILL before the final record
    loaded = load(cut)
    assert not loaded.complete
    assert sum(p.energy_kwh for p in loaded.phases.values()) == pytest.approx(
        loaded.snapshot.energy_kwh, rel=1e-5
    )
    assert loaded.phases["validation"].energy_kwh == pytest.approx(
        final.phases["validation"].energy_kwh, rel=1e-3
    )
    assert loaded.snapshot.samples == 100


def test_html_page_and_figure_show_the_phases(run) -> None:
    pytest.importorskip("matplotlib")
    from carbon_core.report import render as report
    from carbon_core.report.figure import figure

    t, _, _ = run
    loaded = load(t.log_path)
    page = report(loaded, "html")
    assert "No phase split" not in page and "<td>validation</td>" in page and "per token: " in page
    fig = figure(loaded)
    power_ax, co2_ax = fig.axes
    labels = power_ax.get_legend_handles_labels()[1]
    assert any(label.startswith("validation (") and "% of the energy" in label for label in labels), labels
    assert any(label.startswith("checkpoint (") for label in labels)
    assert len(co2_ax.patches) == len(power_ax.patches) == 4  # one shaded span per span, on both panels


def test_bad_units_and_names_are_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carbon_core")
    with _tracker(tmp_path) as t:
        for bad in (-1, 0, math.nan, math.inf, "32", True, None):
            t.count(samples=bad)  # type: ignore[arg-type]
        t.count(samples=16, tokens=-5)
        t.count(tokens=float("nan"))
        with t.phase("no/slashes"):
            pass
        with t.phase(""):
            pass
    final = t.snapshot()
    assert final.samples == 16 and final.tokens is None
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if m.startswith("samples=")]) == 1
    assert len([m for m in said if m.startswith("tokens=")]) == 1
    assert len([m for m in said if m.startswith("phase name")]) == 1
    assert set(final.phases) <= {"other"}


def test_a_resumed_run_keeps_its_units_and_phases(run, tmp_path: Path) -> None:
    t, final, _ = run
    state = t.state_dict()
    assert json.loads(json.dumps(state)) == state  # a checkpoint's JSON
    resumed = _tracker(tmp_path / "second")
    resumed.load_state_dict(state)
    with resumed:
        resumed.count(samples=20)
        with resumed.phase("validation"):
            assert wait_for(lambda: resumed.intervals >= 1)
    later = resumed.snapshot()
    assert later.samples == 120 and later.tokens == 6144
    assert later.phases["tokenize"] == final.phases["tokenize"]
    assert later.phases["validation"].energy_kwh > final.phases["validation"].energy_kwh
    assert sum(p.energy_kwh for p in later.phases.values()) == pytest.approx(later.energy_kwh, rel=1e-9)
    # a checkpoint written before phases existed: its energy counts in "other"
    old = Carry.from_state({"duration_s": 5.0, "energy_gpu_kwh": 0.001, "co2eq_kg": 0.0005})
    assert old.with_phases({}) == {"other": Phase(0.001, 0.0005, 5.0)}
