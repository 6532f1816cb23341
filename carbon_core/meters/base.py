"""What every meter is: a source of cumulative joules per channel.

A meter reads one kind of hardware. ``read()`` returns, for each of its channels, the
joules drawn since the meter was created. Counter-based meters report counter deltas;
power-only sources integrate their power samples here (:class:`PowerIntegrator`), so the
rest of the system only ever sees energy.

Contract kept by every meter:

* the constructor raises :class:`MeterUnavailable` (with a reason a person can act on)
  when the hardware or driver is not there; the tracker then falls back or goes without;
* ``read()`` never returns a smaller value for a channel than it returned before; a channel
  that fails keeps its last value and the meter reports the fault once through the
  :class:`~carbon_core.faults.FaultLog` it was given;
* ``read()`` may raise when the whole meter is broken: the sampler then drops the meter,
  keeping what it had measured, with one warning;
* ``close()`` releases what the meter holds (NVML handle, files) and is idempotent.
"""

from __future__ import annotations

import abc
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from carbon_core.faults import FaultLog

Component = Literal["gpu", "cpu", "ram"]
Method = Literal["counter", "power-sampled", "estimated"]
COMPONENTS: tuple[Component, ...] = ("gpu", "cpu", "ram")


class MeterUnavailable(Exception):
    """The meter cannot measure on this machine; the message says why and what to do."""


@dataclass(frozen=True)
class Channel:
    """One measured quantity: ``name`` like ``gpu:0``, ``cpu:package-0``, ``cpu:dram-0``, ``ram``."""

    name: str
    component: Component
    method: Method


class Meter(abc.ABC):
    """Base class of every meter (see the module docstring for the contract)."""

    #: short name used in configuration (``meters=("rapl", ...)``) and in the run log
    name: str = "meter"

    def __init__(self, faults: FaultLog | None = None) -> None:
        self.faults = faults if faults is not None else FaultLog()
        self.channels: tuple[Channel, ...] = ()
        #: what a person would want to know about the hardware (models, UUIDs, paths)
        self.info: dict[str, Any] = {}

    @abc.abstractmethod
    def read(self) -> Mapping[str, float]:
        """Cumulative joules per channel name since the meter was created."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; safe to call more than once."""


class PowerIntegrator:
    """Trapezoidal integration of power samples (W) into cumulative energy (J).

    The first sample starts the integral at zero. Each later sample adds
    ``(p_prev + p_now) / 2 * dt``. The integration error for a power signal that is
    piecewise linear between samples is zero; for anything else it is bounded by the
    change of power within one interval times the interval (see the meters that use it).
    """

    __slots__ = ("_last_p", "_last_t", "joules")

    def __init__(self) -> None:
        self.joules = 0.0
        self._last_t: float | None = None
        self._last_p = 0.0

    def add(self, power_w: float, t: float | None = None) -> float:
        now = time.monotonic() if t is None else t
        if self._last_t is not None:
            dt = now - self._last_t
            if dt > 0:
                self.joules += 0.5 * (self._last_p + power_w) * dt
        self._last_t = now
        self._last_p = power_w
        return self.joules


def checked_read(meter: Meter, faults: FaultLog) -> dict[str, float]:
    """``meter.read()``, keeping only the readings that are finite numbers.

    Anything else (NaN, inf, None, a string, an int too large for a float) would poison the
    totals for the rest of the run, so it is dropped with one warning per channel and the
    channel keeps its last value. An exception from ``read()`` itself propagates: the whole
    meter is broken (see the contract above).
    """
    out: dict[str, float] = {}
    for name, value in meter.read().items():
        try:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError("not a number")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("not finite")
        except (TypeError, ValueError, OverflowError):
            faults.warn(
                f"meter:{meter.name}:{name}:bad-value",
                f"meter {meter.name} gave {name} = {value!r:.40}, not a finite number of joules; "
                "that reading is ignored (the channel keeps its last value)",
            )
            continue
        out[name] = number
    return out
