"""Forecast of a run's emissions from its progress, and the carbon-budget decision.

Both live in the core so that every adapter behaves the same: an adapter reports
progress and acts on :class:`StopDecision`; it decides nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: no forecast before this fraction of the run is done ...
MIN_PROGRESS = 0.02
#: ... nor before this many sampler intervals have been accounted
MIN_INTERVALS = 2


def forecast(co2eq_kg: float, progress: Optional[float], intervals: int) -> Optional[float]:
    """Whole-run emissions extrapolated linearly from the rate so far.

    Method: ``co2eq_so_far / fraction_done``, i.e. the emissions per unit of progress so
    far, times the whole run. Warm-up rule: ``None`` until at least ``MIN_PROGRESS`` (2 %)
    of the run is done and ``MIN_INTERVALS`` (2) sampler intervals have been measured, so
    start-up costs and the first noisy intervals do not produce wild figures. A run whose
    later steps draw more (or less) power than its earlier ones is mispredicted in
    proportion; the figure converges to the truth as ``fraction_done`` approaches 1.
    """
    if progress is None or progress < MIN_PROGRESS or intervals < MIN_INTERVALS:
        return None
    return co2eq_kg / min(progress, 1.0)


@dataclass(frozen=True)
class StopDecision:
    """The core's answer to "should training stop?"; ``reason`` is for people.

    A stop keeps the figures it was taken on (``on``: ``"spent"`` or ``"predicted"``, the
    totals and the budget, in kg), so that whoever acts on it can say it in their own words
    (:func:`carbon_core.summary.stop_line`).
    """

    stop: bool
    reason: str = ""
    on: str = ""
    co2eq_kg: Optional[float] = None
    predicted_kg: Optional[float] = None
    budget_kg: Optional[float] = None


CONTINUE = StopDecision(False)


class Budget:
    """A carbon budget in kg, checked against the spent or the predicted emissions.

    Two decisions are kept: this process's own (taken by the sampler on its own totals) and
    the job's (taken on the job's totals, the same on every rank of a distributed job). Each,
    once it says stop, keeps saying stop.
    """

    def __init__(self, budget_kg: float, stop_on: str = "spent") -> None:
        self.budget_kg = budget_kg
        self.stop_on = stop_on
        self.decision = CONTINUE
        self.job_decision = CONTINUE

    def check(self, co2eq_kg: float, predicted_kg: Optional[float], *, job: bool = False) -> StopDecision:
        """Update and return the decision (the job's when ``job``) on these totals."""
        before = self.job_decision if job else self.decision
        if before.stop:
            return before
        decision = self._decide(co2eq_kg, predicted_kg)
        if decision.stop:  # said by whoever acts on it, once, at a step they know
            if job:
                self.job_decision = decision
            else:
                self.decision = decision
        return decision

    def _decide(self, co2eq_kg: float, predicted_kg: Optional[float]) -> StopDecision:
        if co2eq_kg >= self.budget_kg:
            on = "spent"
            reason = f"carbon budget spent: {co2eq_kg:.6g} kgCO2eq >= budget {self.budget_kg:.6g} kg"
        elif self.stop_on == "predicted" and predicted_kg is not None and predicted_kg > self.budget_kg:
            reason = (
                f"carbon budget predicted to be exceeded: the run is forecast to emit "
                f"{predicted_kg:.6g} kgCO2eq > budget {self.budget_kg:.6g} kg "
                f"({co2eq_kg:.6g} kg spent so far)"
            )
            on = "predicted"
        else:
            return CONTINUE
        return StopDecision(True, reason, on, co2eq_kg, predicted_kg, self.budget_kg)
