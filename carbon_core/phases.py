"""Phases: which part of the work (``train``, ``validation``, ``checkpoint``, ``other``, or a
name given to :meth:`carbon_core.Tracker.phase`) each joule went to.

Two halves on two threads:

* :class:`PhaseClock`, on the training thread: a stack of open phases (the innermost one is
  active; none open is ``other``). Opening or closing one is a few attribute writes, one
  ``time.monotonic()`` call and one append to a deque: nothing measurable on a training step.
* :class:`PhaseSplit`, on the sampler thread: each interval it takes the switches that
  happened up to the interval's end and splits the interval's energy and emissions among
  the phases by the time each was active in it (power x time, the power taken as constant
  within the interval). A phase shorter than an interval so gets its share, not zero, and
  the phases add up to the interval, hence to the run, by construction.

Closed spans of the phases a person marks around an activity (every phase but ``train`` and
``other``, which alternate on every step) are kept for the run log, which records them.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional

from carbon_core.faults import FaultLog
from carbon_core.snapshot import J_PER_KWH, OTHER, Phase

#: a phase name: what a metric key ``carbon/phase/<name>_kwh`` can hold
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: phases that switch on every step: their spans are not recorded one by one
STEPWISE = ("train", OTHER)
#: spans kept for the run log between two intervals (more are counted, not kept)
MAX_SPANS = 1000


@dataclass(frozen=True)
class Span:
    """One stretch during which ``name`` was the innermost open phase (seconds since start)."""

    name: str
    t0: float
    t1: float


class PhaseClock:
    """The open phases (training thread) and the record of every switch (for the sampler).

    :meth:`open` returns a token; :meth:`close` with it closes that phase and any opened
    inside it and left open. A token closed already, or of another clock, is ignored, so a
    framework hook that fires twice does no harm.
    """

    def __init__(self, faults: FaultLog, now: Callable[[], float] = time.monotonic) -> None:
        self._faults = faults
        self._now = now
        self._stack: list[tuple[int, str]] = []
        self._next = 0
        self._names: set[str] = set()  # names found valid (checked once each)
        #: (monotonic time, the phase active from then on); the sampler consumes it
        self.switches: deque[tuple[float, str]] = deque()

    @property
    def active(self) -> str:
        """The innermost open phase, ``other`` when none is open."""
        stack = self._stack
        return stack[-1][1] if stack else OTHER

    def open(self, name: str) -> int:
        """Open ``name`` inside whatever is open (a name that is not valid: one warning, and
        the time stays with the enclosing phase). Returns the token :meth:`close` takes."""
        if not (type(name) is str and (name in self._names or self._valid(name))):
            self._faults.warn(
                "phase:name",
                f"phase name {name!r} ignored: a phase is named by 1 to 64 letters, digits, '_', '.' or '-' "
                "(starting with a letter or digit); its time counts in the enclosing phase",
            )
            return -1
        self._next += 1
        self._stack.append((self._next, name))
        self.switches.append((self._now(), name))
        return self._next

    def _valid(self, name: str) -> bool:
        if NAME.fullmatch(name) is None:
            return False
        self._names.add(name)
        return True

    def close(self, token: int) -> None:
        """Close the phase ``token`` opened (and any left open inside it)."""
        stack = self._stack
        if stack and stack[-1][0] == token:  # the usual case: the innermost one
            stack.pop()
            self.switches.append((self._now(), stack[-1][1] if stack else OTHER))
            return
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] == token:
                del stack[i:]
                self.switches.append((self._now(), stack[-1][1] if stack else OTHER))
                return

    def is_open(self, token: int) -> bool:
        """Whether the phase ``token`` opened is still open."""
        return any(t == token for t, _ in self._stack)

    def close_all(self) -> None:
        """Close every open phase (the run stops)."""
        if self._stack:
            self._stack.clear()
            self.switches.append((self._now(), OTHER))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        token = self.open(name)
        try:
            yield
        finally:
            self.close(token)


class PhaseSplit:
    """Each interval's energy and emissions split among the phases (sampler thread only)."""

    def __init__(self, t0: float) -> None:
        self.origin = t0  #: the run's start on the monotonic clock
        self.active = OTHER
        self._since = 0.0  # when the active phase became active (s since start)
        self.joules: dict[str, float] = {}
        self.co2_g: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.spans: list[Span] = []  #: closed spans not yet written (see STEPWISE)
        self.dropped = 0  #: spans not kept (beyond MAX_SPANS between two intervals)

    def add(
        self, t0: float, t1: float, energy_j: float, co2_g: float, switches: deque[tuple[float, str]]
    ) -> dict[str, float]:
        """Split the interval ``[t0, t1]`` (s since start) taking the switches up to ``t1``;
        returns this interval's joules per phase."""
        share: dict[str, float] = {}
        at, active = t0, self.active
        while switches and switches[0][0] - self.origin <= t1:
            when, name = switches.popleft()
            when = min(max(when - self.origin, at), t1)
            if name == active:
                continue
            share[active] = share.get(active, 0.0) + (when - at)
            self._ended(active, when)
            at, active, self._since = when, name, when
        share[active] = share.get(active, 0.0) + (t1 - at)
        self.active = active
        span = t1 - t0
        out: dict[str, float] = {}
        names = list(share)
        left_j, left_g = energy_j, co2_g
        for i, name in enumerate(names):
            if i == len(names) - 1:  # the remainder: the interval's energy exactly, whatever the rounding
                part_j, part_g = max(0.0, left_j), max(0.0, left_g)
            else:
                fraction = share[name] / span if span > 0 else 0.0
                part_j, part_g = energy_j * fraction, co2_g * fraction
                left_j, left_g = left_j - part_j, left_g - part_g
            out[name] = part_j
            self.joules[name] = self.joules.get(name, 0.0) + part_j
            self.co2_g[name] = self.co2_g.get(name, 0.0) + part_g
            self.seconds[name] = self.seconds.get(name, 0.0) + share[name]
        return out

    def _ended(self, name: str, t: float) -> None:
        if name in STEPWISE or t <= self._since:
            return
        if len(self.spans) < MAX_SPANS:
            self.spans.append(Span(name, self._since, t))
        else:
            self.dropped += 1

    def take_spans(self, final_t: Optional[float] = None) -> list[Span]:
        """The closed spans since the last call (``final_t``: the run ends, the active phase's
        span ends there too)."""
        if final_t is not None:
            self._ended(self.active, final_t)
            self._since = final_t
        spans, self.spans = self.spans, []
        return spans

    def totals(self) -> dict[str, Phase]:
        """Each phase's energy (kWh), emissions (kg) and active seconds so far."""
        return {
            name: Phase(j / J_PER_KWH, self.co2_g.get(name, 0.0) / 1000.0, self.seconds.get(name, 0.0))
            for name, j in self.joules.items()
        }
