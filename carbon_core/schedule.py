"""Starting a job when the grid is cleanest, and what an earlier start would have emitted.

What ``carbon-core when`` and ``carbon-core run --greenest-within`` do, below the CLI:

- :func:`plan`: the forecast for a zone (:func:`carbon_core.intensity.forecasts.forecast`) and
  the best start in the window (:func:`~carbon_core.intensity.timing.plan_start`);
- :func:`wait_for`: wait for that start, a countdown on a terminal (one line otherwise),
  looking the forecast up again every :data:`REPLAN_S` (a better start may appear; never past
  the window); a provider that fails while waiting changes nothing: the run starts at the
  planned time, never later, with one warning. Ctrl-C (``KeyboardInterrupt``) ends the wait;
- :func:`hindsight_for`: a finished run's energy profile, read back from its run log interval
  by interval, moved to the cleanest start of the preceding 24 hours by the provider's recent
  history (:func:`~carbon_core.intensity.timing.hindsight`).

Time comes from :data:`CLOCK` (wall-clock epoch seconds and a sleep), which tests replace
with one they move themselves: nothing here is slept through in a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Optional

from carbon_core.intensity import forecasts
from carbon_core.intensity.timing import Hindsight, Plan, PlanError, hindsight, iso, plan_start

if TYPE_CHECKING:
    from carbon_core.intensity.choice import LookupConfig

#: while waiting, the forecast is looked up again this often (providers update every 15-30 min)
REPLAN_S = 900.0
#: how far back hindsight looks for a cleaner start
HINDSIGHT_WINDOW_S = 86400.0


class Clock:
    """Wall-clock time (epoch seconds) and sleeping; tests put their own in :data:`CLOCK`."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


CLOCK = Clock()


def plan(zone: str, duration_s: float, window_end: float, config: LookupConfig, now: float) -> Plan:
    """The best start for the job by the zone's forecast (``PlanError``, ``ProviderError``)."""
    if window_end - now < duration_s:  # checked before any look-up
        raise PlanError(
            "within",
            f"{(window_end - now) / 3600:.4g} h",
            f"shorter than --duration ({duration_s / 3600:.4g} h)",
        )
    series = forecasts.forecast(zone, now=now, hours=(window_end - now) / 3600.0, config=config)
    return plan_start(series, duration_s, now=now, window_end=window_end)


def _clock_text(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def wait_for(
    first: Plan,
    zone: str,
    config: LookupConfig,
    out: IO[str],
    *,
    tty: bool,
    warn: Callable[[str], None],
    clock: Optional[Clock] = None,
) -> Plan:
    """Wait until the plan's start (looking the forecast up again every :data:`REPLAN_S`);
    returns the plan it started by. ``KeyboardInterrupt`` passes through."""
    clock = clock or CLOCK
    current, warned = first, False
    latest = first.window_end - first.duration_s  # never later than this
    next_look = clock.now() + REPLAN_S
    if not tty:
        out.write(f"carbon-core: waiting until {iso(current.start)} for the greenest start\n")
        out.flush()
    while True:
        now = clock.now()
        left = current.start - now
        if left <= 0:
            break
        if tty:
            out.write(
                f"\rcarbon-core: starting at {iso(current.start)} in {_clock_text(left)} (Ctrl-C cancels) "
            )
            out.flush()
        if now >= next_look:
            next_look = now + REPLAN_S
            try:
                series = forecasts.forecast(
                    zone, now=now, hours=(first.window_end - now) / 3600.0, config=config
                )
                better = plan_start(series, first.duration_s, now=now, window_end=latest + first.duration_s)
                if better.start != current.start and better.start <= latest:
                    current = better
                    if not tty:
                        out.write(
                            f"carbon-core: the forecast changed: now starting at {iso(current.start)}\n"
                        )
                    continue
            except Exception as exc:  # a provider failing while waiting: keep the plan
                if not warned:
                    warned = True
                    warn(
                        f"the forecast look-up failed while waiting ({exc}); "
                        f"starting at {iso(current.start)} as planned"
                    )
        clock.sleep(min(left, next_look - now, 1.0 if tty else left))
    if tty:
        out.write("\n")
        out.flush()
    return current


def profile(log_path: str, pue: float) -> list[tuple[float, float, float]]:
    """``(start, end, kWh with PUE)`` per interval of a run log (epoch seconds)."""
    from datetime import datetime, timezone

    from carbon_core.runlog.reader import read_records
    from carbon_core.runlog.schema import TIME_FORMAT, number

    rows: list[tuple[float, float, float]] = []
    started: Optional[float] = None
    for record in read_records(log_path):
        kind = record.get("type")
        if kind == "header" and started is None:
            text = record.get("started_at")
            if isinstance(text, str):
                started = datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        elif kind == "interval" and started is not None:
            t0, t1 = number(record, "t0"), number(record, "t1")
            rows.append((started + t0, started + t1, number(record, "energy_j") / 3.6e6 * pue))
    return rows


def hindsight_for(log_path: str, pue: float, zone: str, config: LookupConfig) -> Optional[Hindsight]:
    """What the cleanest start of the preceding day would have emitted for this run's energy
    profile (None where the zone's provider publishes no history, or it does not reach)."""
    rows = profile(log_path, pue)
    if not rows:
        return None
    start, end = rows[0][0], rows[-1][1]
    series = forecasts.history(zone, start - HINDSIGHT_WINDOW_S, end, config=config)
    if series is None:
        return None
    return hindsight(rows, series, HINDSIGHT_WINDOW_S)
