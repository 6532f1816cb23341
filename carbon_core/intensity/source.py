"""The intensity in force now: fixed value, else live figure (cached), else table, else world.

:class:`IntensitySource` is what the sampler asks every interval: :meth:`~IntensitySource.current`
is a read of the latest state that never blocks and never raises. When a live provider is
configured, :meth:`~IntensitySource.start` runs a daemon thread that refreshes its figure.
:func:`carbon_core.intensity.resolve.resolve_source` builds one from the configuration.

Fallback order at run time: the fixed value; the latest good live value while younger
than ``max(4 * refresh_s, 1 h)``; the table figure (the zone's, or its parent's); the world
average. Every failure is reported once per (provider, zone, kind) through the
:class:`~carbon_core.faults.FaultLog`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

from carbon_core.faults import FaultLog
from carbon_core.intensity.values import Intensity

if TYPE_CHECKING:  # providers are imported only when live look-ups are configured
    from carbon_core.intensity.providers.base import Provider

logger = logging.getLogger("carbon_core.intensity")

#: After a failed round, a transient fault is retried sooner than the refresh period.
RETRY_AFTER_FAILURE_S = 300.0
#: How long :meth:`IntensitySource.stop` waits for the refresher to end (it has cut the
#: look-up in flight, so the refresher ends at once unless it is inside a name lookup,
#: which nothing can cut: it is then left to end on its own, as a daemon).
STOP_JOIN_S = 1.0


class IntensitySource:
    """Serves the intensity in force now; refreshes live figures on a daemon thread."""

    def __init__(
        self,
        *,
        zone: str | None,
        location_source: str,
        table: Intensity,
        faults: FaultLog,
        fixed: Intensity | None = None,
        provider: Provider | None = None,
        provider_zone: str | None = None,
        refresh_s: float = 900.0,
        location: str = "",
    ) -> None:
        self.zone = zone
        self.location_source = location_source
        #: where the zone came from and how to change it, in words (:func:`location.describe`)
        self.location = location
        self.faults = faults
        self.table = table
        self.fixed = fixed
        self.provider = provider
        self.provider_zone = provider_zone
        self.refresh_s = refresh_s
        self.max_age_s = max(4.0 * refresh_s, 3600.0)
        self._live: tuple[Intensity, float] | None = None  # (value, monotonic time)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rounds = 0
        self._cond = threading.Condition()
        self._failing = False

    def __repr__(self) -> str:
        return (
            f"IntensitySource(zone={self.zone!r}, location_source={self.location_source!r}, "
            f"provider={self.provider!r}, current={self.current()!r})"
        )

    @property
    def refresh_count(self) -> int:
        """Completed live look-up rounds (good or failed)."""
        with self._cond:
            return self._rounds

    def current(self) -> Intensity:
        """The intensity in force now. Never blocks on the network, never raises."""
        fixed = self.fixed
        if fixed is not None:
            return fixed
        live = self._live  # one atomic read of an immutable tuple
        if live is not None and time.monotonic() - live[1] <= self.max_age_s:
            return live[0]
        return self.table

    def start(self, faults: FaultLog | None = None) -> None:
        """Start the refresher thread when a live provider is configured; else no-op.

        ``faults``: where this run's look-up failures are reported from now on (default:
        the log given at construction, or at the previous start)."""
        if faults is not None:
            self.faults = faults
        with self._cond:
            running = self._thread is not None and self._thread.is_alive() and not self._stop.is_set()
            if self.provider is None or running:
                return
            # a stopped refresher still in a name lookup is left to end: a fresh one starts
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(self._stop,), name="carbon-core-intensity", daemon=True
            )
            self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the refresher: cut the look-up in flight (the provider's close()) and wait
        up to STOP_JOIN_S for the thread to end; idempotent."""
        self._stop.set()
        provider = self.provider
        if provider is not None:
            with contextlib.suppress(Exception):
                provider.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_JOIN_S)
        with self._cond:
            self._cond.notify_all()

    def wait_for_refresh(self, count: int = 1, timeout_s: float | None = None) -> bool:
        """Block until ``count`` live rounds have completed (for tests and tools; never on
        the training thread). Returns False on timeout or when there is no provider."""
        if self.provider is None:
            return False
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._rounds < count:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- refresher thread ---------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        provider = self.provider
        assert provider is not None
        try:
            while not stop.is_set():
                delay = self._refresh_once(provider, stop)
                if stop.is_set():  # a round cut short by stop() is not a round
                    break
                with self._cond:
                    self._rounds += 1
                    self._cond.notify_all()
                if stop.wait(delay):
                    break
        finally:
            with self._cond:  # a newer refresher (a restart) keeps the provider open
                if self._thread is threading.current_thread():
                    with contextlib.suppress(Exception):
                        provider.close()

    def _refresh_once(self, provider: Provider, stop: threading.Event) -> float:
        from carbon_core.intensity.providers.errors import ProviderError

        zone = self.provider_zone or ""
        try:
            value = provider.fetch(zone, stop)
        except ProviderError as err:
            if err.kind == "cancelled" or stop.is_set():  # stopped: nothing to report
                return 0.0
            self._report(provider, zone, err.kind, err.message)
            delay = RETRY_AFTER_FAILURE_S if err.retryable else self.refresh_s
            delay = min(delay, self.refresh_s)
            if err.retry_after is not None:
                delay = max(delay, err.retry_after)
            return delay
        except Exception as exc:  # a bug in a parser must not kill the refresher silently
            self._report(provider, zone, "unexpected", f"{provider.label}: unexpected {type(exc).__name__}")
            return self.refresh_s
        if self._failing:
            logger.info("%s answers again for %s: %s", provider.label, zone, value)
            self._failing = False
        self._live = (value, time.monotonic())
        return self.refresh_s

    def _report(self, provider: Provider, zone: str, kind: str, message: str) -> None:
        self._failing = True
        live = self._live
        if live is not None and time.monotonic() - live[1] <= self.max_age_s:
            v = live[0]
            fallback = f"keeping the last live value ({v.gco2eq_per_kwh:g} gCO2eq/kWh, {v.source})"
        else:
            if live is not None:
                self.faults.warn(
                    f"intensity:{provider.name}:{zone}:stale",
                    f"carbon_core: the last live intensity for {zone} is older than "
                    f"{self.max_age_s:g} s; using {self.table.source} instead",
                )
            t = self.table
            fallback = f"using {t.source} ({t.gco2eq_per_kwh:g} gCO2eq/kWh)"
        self.faults.warn(
            f"intensity:{provider.name}:{zone}:{kind}",
            f"carbon_core: live intensity for {zone} failed: {message}; {fallback} until it answers",
        )
