"""When to run: the arithmetic over an intensity series (pure; no network, no clock read).

- :class:`Series`: a provider's slots for one zone (a forecast or recent history), with the
  time-weighted mean over any span it covers.
- :func:`plan_start`: the start, within a window, that minimises the forecast emissions of a
  job of a given length. The emissions of a start ``s`` are the integral of the intensity over
  ``[s, s + duration]`` (constant power assumed: the job's energy is unknown in advance), and
  that integral is piecewise linear in ``s``, bent only where ``s`` or ``s + duration`` crosses
  a slot boundary; so the minimum is at one of those points or at an end of the window, and
  checking them all is exact.
- :func:`hindsight`: what the cleanest start in the preceding hours would have emitted for a
  finished run's own energy profile, interval by interval, from the provider's recent history.
- :func:`parse_duration`, :func:`parse_within`: ``6h``, ``90m``, ``1h30m``; a window given as a
  length or as an ISO 8601 end time with its offset.

A bad value is a :class:`PlanError` (a ``ValueError``) that names the parameter and the value.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from carbon_core.intensity.providers._series import Slot

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[dhms])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
#: the cell width of :func:`hindsight`'s grid is the series' shortest slot, within these bounds
MIN_CELL_S = 300.0
MAX_CELL_S = 3600.0


class PlanError(ValueError):
    """A value :func:`plan_start` (or the ``when`` command) cannot plan with: ``param`` names
    the parameter (``duration``, ``within``, ``zone``), ``value`` is what it got."""

    def __init__(self, param: str, value: object, why: str) -> None:
        super().__init__(f"{param}={value!r}: {why}")
        self.param = param
        self.value = value
        self.why = why


def utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def iso(t: float) -> str:
    """``t`` (epoch s) as ISO 8601 with its offset, to the second: ``2026-01-20T14:30:00+00:00``."""
    return utc(t).isoformat(timespec="seconds")


def parse_duration(text: object, param: str = "duration") -> float:
    """Seconds in ``6h``, ``90m``, ``1h30m``, ``1.5h``, ``2d``, ``45s``; a positive length."""
    s = str(text).strip().lower().replace(" ", "") if isinstance(text, (str, int, float)) else ""
    if not _DURATION.match(s):
        raise PlanError(param, text, "expected a length such as 6h, 90m, 1h30m or 2d")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(s))
    if not math.isfinite(seconds) or seconds <= 0:
        raise PlanError(param, text, "must be longer than zero")
    return seconds


def parse_within(text: object, now: float, param: str = "within") -> float:
    """The window's end (epoch s): ``now`` plus a length (``24h``), or an ISO 8601 time with
    its offset (``2026-01-21T06:00+01:00``), which must be in the future."""
    from carbon_core.intensity.providers._series import parse_time
    from carbon_core.intensity.providers.errors import ProviderError

    s = str(text).strip() if isinstance(text, (str, int, float)) else ""
    if s.startswith("-"):
        raise PlanError(param, text, "a window in the past: give a length from now (12h) or a future time")
    if "T" in s.upper() or s.count("-") >= 2:
        try:
            end = parse_time(s.upper(), "", "")
        except ProviderError:
            raise PlanError(
                param, text, "expected a length (12h) or an ISO 8601 time with its offset"
            ) from None
        if end <= now:
            raise PlanError(param, text, f"a window in the past (now is {iso(now)})")
        return end
    return now + parse_duration(text, param)


@dataclass(frozen=True)
class Series:
    """Intensity slots for one zone: ``kind`` ``forecast`` or ``history``; ``source`` names the
    provider, the zone and the basis as live figures do (``uk-carbon-intensity:GB:direct``)."""

    zone: str
    source: str
    kind: str
    slots: tuple[Slot, ...]
    fetched_at: float
    _starts: list[float] = field(init=False, repr=False, compare=False)
    _cum: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", tuple(sorted(self.slots, key=lambda s: s.start)))
        cum = [0.0]
        for s in self.slots:
            cum.append(cum[-1] + s.gco2eq_per_kwh * (s.end - s.start))
        object.__setattr__(self, "_starts", [s.start for s in self.slots])
        object.__setattr__(self, "_cum", cum)

    def span(self, t: float) -> Optional[tuple[float, float]]:
        """The unbroken run of slots that holds ``t`` (its start and end), else None."""
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0 or self.slots[i].end <= t:
            return None
        lo = hi = i
        while lo > 0 and self.slots[lo - 1].end == self.slots[lo].start:
            lo -= 1
        while hi + 1 < len(self.slots) and self.slots[hi].end == self.slots[hi + 1].start:
            hi += 1
        return self.slots[lo].start, self.slots[hi].end

    def covers(self, start: float, end: float) -> bool:
        got = self.span(start)
        return got is not None and got[1] >= end

    def _integral_to(self, t: float) -> float:
        """The integral of the intensity from the first slot to ``t`` (gaps count zero)."""
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0:
            return 0.0
        s = self.slots[i]
        return self._cum[i] + s.gco2eq_per_kwh * (min(t, s.end) - s.start)

    def mean(self, start: float, end: float) -> float:
        """The time-weighted mean intensity over ``[start, end]`` (a span it covers)."""
        if end <= start:
            return self.at(start)
        return (self._integral_to(end) - self._integral_to(start)) / (end - start)

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0 or self.slots[i].end <= t:
            raise ValueError(f"the {self.kind} for {self.zone} has no value at {iso(t)}")
        return self.slots[i].gco2eq_per_kwh

    def boundaries(self) -> list[float]:
        return sorted({s.start for s in self.slots} | {s.end for s in self.slots})


@dataclass(frozen=True)
class Plan:
    """The best start for a job of ``duration_s`` within ``[now, window_end]``."""

    zone: str
    source: str
    now: float
    start: float
    duration_s: float
    window_end: float
    forecast_until: float
    #: mean forecast intensity over the job's span, started then (at ``start``) and now
    mean_then: float
    mean_now: float
    #: the forecast intensity at the start and now (one slot each)
    point_then: float
    point_now: float
    clipped: bool  # the window ran past the forecast: it ends where the forecast ends

    @property
    def end(self) -> float:
        return self.start + self.duration_s

    @property
    def wait_s(self) -> float:
        return self.start - self.now

    @property
    def saving_percent(self) -> float:
        """How much lower the job's forecast emissions are at ``start`` than now, in percent."""
        return 0.0 if self.mean_now <= 0 else 100.0 * (self.mean_now - self.mean_then) / self.mean_now

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "start": iso(self.start),
            "end": iso(self.end),
            "now": iso(self.now),
            "wait_s": round(self.wait_s, 1),
            "duration_s": self.duration_s,
            "window_end": iso(self.window_end),
            "forecast_until": iso(self.forecast_until),
            "window_clipped_to_forecast": self.clipped,
            "intensity_then_gco2eq_per_kwh": round(self.mean_then, 2),
            "intensity_now_gco2eq_per_kwh": round(self.mean_now, 2),
            "intensity_at_start_gco2eq_per_kwh": self.point_then,
            "intensity_at_now_gco2eq_per_kwh": self.point_now,
            "saving_percent": round(self.saving_percent, 1),
            "source": self.source,
            "method": "forecast intensity averaged over the job's span (constant power assumed); "
            "the start minimises that average within the window",
        }


def plan_start(series: Series, duration_s: float, *, now: float, window_end: float) -> Plan:
    """The start in ``[now, window_end - duration_s]`` with the lowest forecast emissions over
    ``[start, start + duration_s]`` (the earliest of equals). ``PlanError`` when the window is
    shorter than the job or the forecast does not reach far enough."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise PlanError("duration", duration_s, "must be longer than zero")
    if window_end <= now:
        raise PlanError("within", iso(window_end), f"a window in the past (now is {iso(now)})")
    if window_end - now < duration_s:
        raise PlanError(
            "within", _hours(window_end - now), f"shorter than the job's duration ({_hours(duration_s)})"
        )
    held = series.span(now)
    if held is None:
        first = f"; it starts {iso(series.slots[0].start)}" if series.slots else ""
        raise PlanError("zone", series.zone, f"the {series.kind} ({series.source}) does not cover now{first}")
    until = held[1]
    if until - now < duration_s:
        raise PlanError(
            "duration",
            _hours(duration_s),
            f"longer than the forecast horizon: the forecast for {series.zone} reaches {iso(until)}, "
            f"{_hours(until - now)} from now",
        )
    last = min(window_end, until) - duration_s
    marks = [now, last]
    for b in series.boundaries():
        marks += [b, b - duration_s]
    candidates = sorted({t for t in marks if now <= t <= last})
    best = min(candidates, key=lambda s: (round(series.mean(s, s + duration_s), 9), s))
    return Plan(
        zone=series.zone,
        source=series.source,
        now=now,
        start=best,
        duration_s=duration_s,
        window_end=min(window_end, until),
        forecast_until=until,
        mean_then=series.mean(best, best + duration_s),
        mean_now=series.mean(now, now + duration_s),
        point_then=series.at(best),
        point_now=series.at(now),
        clipped=window_end > until,
    )


def _hours(seconds: float) -> str:
    h = seconds / 3600.0
    return f"{h:.4g} h"


@dataclass(frozen=True)
class Hindsight:
    """A finished run's energy profile moved to the cleanest start of the preceding hours."""

    zone: str
    source: str
    ran_start: float
    best_start: float
    window_s: float
    #: gCO2eq of the run's energy (PUE included) at the history's intensities, as it ran and at
    #: the best start; ``ran_g`` is None when the history does not reach the run's own hours
    ran_g: Optional[float]
    best_g: float
    cell_s: float

    @property
    def saving_percent(self) -> Optional[float]:
        if self.ran_g is None or self.ran_g <= 0:
            return None
        return 100.0 * (self.ran_g - self.best_g) / self.ran_g

    def to_dict(self) -> dict[str, Any]:
        saving = self.saving_percent
        return {
            "zone": self.zone,
            "source": self.source,
            "ran_start": iso(self.ran_start),
            "best_start": iso(self.best_start),
            "window_h": self.window_s / 3600.0,
            "ran_co2eq_g": None if self.ran_g is None else round(self.ran_g, 3),
            "best_co2eq_g": round(self.best_g, 3),
            "saving_percent": None if saving is None else round(saving, 1),
            "method": f"the run's energy per {self.cell_s / 60:g}-minute cell, moved whole to each "
            "earlier start, at the history's intensity for each cell",
        }


def hindsight(
    profile: Sequence[tuple[float, float, float]], series: Series, window_s: float = 86400.0
) -> Optional[Hindsight]:
    """The start in ``[run start - window_s, run start]`` at which the run's own energy profile
    (``(start, end, kWh)`` per interval, epoch s, PUE included) would have emitted least by
    ``series``, and what it emitted by the same series as it ran. Cells of the series' shortest
    slot (:data:`MIN_CELL_S`..:data:`MAX_CELL_S`) carry the profile, so each part of the run
    meets its own hour's intensity, never one average. None when nothing fits in the history."""
    rows = [(a, b, e) for a, b, e in profile if b > a and e > 0]
    if not rows or not series.slots:
        return None
    t0, t1 = rows[0][0], max(b for _, b, _ in rows)
    cell = min(max(min(s.end - s.start for s in series.slots), MIN_CELL_S), MAX_CELL_S)
    n = max(1, math.ceil((t1 - t0) / cell - 1e-9))
    energy = [0.0] * n
    for a, b, e in rows:  # each interval's energy spread evenly over the cells it overlaps
        for j in range(int((a - t0) // cell), min(n, math.ceil((b - t0) / cell))):
            lo, hi = max(a, t0 + j * cell), min(b, t0 + (j + 1) * cell)
            if hi > lo:
                energy[j] += e * (hi - lo) / (b - a)
    k_max = int(window_s // cell)
    last = t1 - (t0 + (n - 1) * cell)  # the last cell ends with the run
    grid: dict[tuple[int, float], Optional[float]] = {}

    def g(m: int, length: float) -> Optional[float]:
        if (m, length) not in grid:
            lo = t0 + m * cell
            grid[m, length] = series.mean(lo, lo + length) if series.covers(lo, lo + length) else None
        return grid[m, length]

    def cost(k: int) -> Optional[float]:
        total = 0.0
        for j, e in enumerate(energy):
            if e:
                v = g(j - k, last if j == n - 1 else cell)
                if v is None:
                    return None
                total += e * v
        return total

    costs = {k: c for k in range(k_max + 1) if (c := cost(k)) is not None}
    if not costs:
        return None
    best_k = min(costs, key=lambda k: (round(costs[k], 9), -k))  # the latest of equals
    return Hindsight(
        zone=series.zone,
        source=series.source,
        ran_start=t0,
        best_start=t0 - best_k * cell,
        window_s=window_s,
        ran_g=costs.get(0),
        best_g=costs[best_k],
        cell_s=cell,
    )
