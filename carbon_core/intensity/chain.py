"""The intensity chain: fixed value, else live provider (cached), else table, else world.

:func:`build_chain` reads the configuration, finds the zone and picks the provider; it is
cheap (no network, no thread, no ``requests`` import) and raises ``ValueError`` naming the
parameter for bad configuration. :meth:`IntensityChain.current` is what the sampler calls
every interval: a read of the latest state that never blocks and never raises.

Which live provider serves which zone (only when ``live`` / ``CARBON_LIVE=1`` or a token):

- a UK regional zone (``GB-1`` .. ``GB-17``, ``GB-ENG``/``GB-SCT``/``GB-WLS``): the UK
  Carbon Intensity API (Electricity Maps has no such zones);
- with an Electricity Maps token (argument or ``CARBON_ELECTRICITYMAPS_TOKEN``): Electricity
  Maps, any zone (a cloud region is sent as the grid zone it sits in). A token turns live
  look-ups on by itself;
- without a token: the UK Carbon Intensity API for ``GB``, Energi Data Service for
  ``DK-DK1`` / ``DK-DK2``; any other zone gets one warning and the table figure.

Unknown zones: a ``zone`` / ``CARBON_ZONE`` that neither a table nor a parent knows is a
``ValueError``, unless a token is given (Electricity Maps knows zones the tables do not:
the world average stands in until it answers, with a warning) or a fixed intensity is
given (the zone is then only a label). A zone found by detection is never an error.

Fallback order at run time: the fixed value; the latest good live value while younger
than ``max(4 * refresh_s, 1 h)``; the table figure (the zone's, or its parent's); the world
average. Every failure is reported once per (provider, zone, kind) through the
:class:`~carbon_core.faults.FaultLog`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from carbon_core.faults import FaultLog
from carbon_core.intensity import tables
from carbon_core.intensity.location import detect_zone
from carbon_core.intensity.values import (
    MAX_PLAUSIBLE_GCO2_PER_KWH,
    WORLD_AVERAGE_GCO2_PER_KWH,
    Intensity,
    is_plausible,
)

if TYPE_CHECKING:  # providers are imported only when live look-ups are configured
    from carbon_core.intensity.providers.base import Provider

logger = logging.getLogger("carbon_core.intensity")

TOKEN_ENV = "CARBON_ELECTRICITYMAPS_TOKEN"
#: After a failed round, a transient fault is retried sooner than the refresh period.
RETRY_AFTER_FAILURE_S = 300.0
#: How long :meth:`IntensityChain.stop` waits for the refresher before leaving it (daemon).
STOP_JOIN_S = 1.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class IntensityChain:
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
    ) -> None:
        self.zone = zone
        self.location_source = location_source
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
            f"IntensityChain(zone={self.zone!r}, location_source={self.location_source!r}, "
            f"provider={self.provider!r}, current={self.current()!r})"
        )

    @property
    def live(self) -> bool:
        """True when a live provider is configured."""
        return self.provider is not None

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

    def start(self) -> None:
        """Start the refresher thread when a live provider is configured; else no-op."""
        if self.provider is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(self._stop,), name="carbon-core-intensity", daemon=True
        )
        self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the refresher; idempotent; returns within about STOP_JOIN_S even when a
        request is in flight (the daemon thread then ends on its own timeout)."""
        self._stop.set()
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
                with self._cond:
                    self._rounds += 1
                    self._cond.notify_all()
                if stop.wait(delay):
                    break
        finally:
            with contextlib.suppress(Exception):
                provider.close()

    def _refresh_once(self, provider: Provider, stop: threading.Event) -> float:
        from carbon_core.intensity.providers.base import ProviderError

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


# -- configuration ------------------------------------------------------------------------


def _positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number of seconds; got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")
    return v


def _fixed_intensity(intensity: float | None, env: Mapping[str, str]) -> float | None:
    name, raw = "intensity", intensity
    if raw is None:
        text = env.get("CARBON_INTENSITY", "").strip()
        if not text:
            return None
        name = "CARBON_INTENSITY"
        try:
            raw = float(text)
        except ValueError:
            raise ValueError(f"CARBON_INTENSITY must be a number of gCO2eq/kWh; got {text!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"{name} must be a number of gCO2eq/kWh; got {raw!r}")
    if not is_plausible(float(raw)):
        raise ValueError(
            f"{name} must be between 0 and {MAX_PLAUSIBLE_GCO2_PER_KWH:g} gCO2eq/kWh; got {raw!r}"
        )
    return float(raw)


def _live_flag(live: bool | None, env: Mapping[str, str]) -> bool:
    if live is not None:
        if not isinstance(live, bool):
            raise ValueError(f"live must be True or False; got {live!r}")
        return live
    text = env.get("CARBON_LIVE", "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"CARBON_LIVE must be 1 or 0; got {env.get('CARBON_LIVE')!r}")


def _token(token: str | None, env: Mapping[str, str]) -> str | None:
    name = "electricitymaps_token"
    if token is None:
        token = env.get(TOKEN_ENV, "").strip() or None
        name = TOKEN_ENV
        if token is None:
            return None
    if not isinstance(token, str) or not token.strip():
        raise ValueError(f"{name} must be a non-empty string (value not shown)")
    token = token.strip()
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise ValueError(f"{name} contains characters an HTTP header cannot carry (value not shown)")
    return token


def _base_url(env: Mapping[str, str], var: str, default: str) -> str:
    value = env.get(var, "").strip()
    if not value:
        return default
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.scheme else value
        raise ValueError(f"{var} must be an http:// or https:// URL; got {shown!r}")
    return value.rstrip("/")


def _choose_provider(
    zone: str | None,
    *,
    live: bool,
    token: str | None,
    env: Mapping[str, str],
    timeout_s: float,
    table: Intensity,
    faults: FaultLog,
) -> tuple[Provider | None, str | None]:
    if not live and token is None:
        return None, None
    from carbon_core.intensity.providers import electricitymaps as em
    from carbon_core.intensity.providers import energidataservice as eds
    from carbon_core.intensity.providers import uk_carbon_intensity as uk

    gz = tables.grid_zone(zone) if zone else None
    if gz is None:
        faults.warn(
            "intensity:live:no-zone",
            "carbon_core: live intensity needs a zone and none was found; "
            "set zone= or CARBON_ZONE. Using the world average.",
        )
        return None, None
    if uk.covers(gz) and (token is None or uk.region_id(gz) is not None):
        base = _base_url(env, uk.URL_ENV, uk.DEFAULT_URL)
        return uk.UkCarbonIntensity(base_url=base, timeout_s=timeout_s), gz.upper()
    if token is not None:
        base = _base_url(env, em.URL_ENV, em.DEFAULT_URL)
        return em.ElectricityMaps(token, base_url=base, timeout_s=timeout_s), gz
    if eds.covers(gz):
        base = _base_url(env, eds.URL_ENV, eds.DEFAULT_URL)
        return eds.EnergiDataService(base_url=base, timeout_s=timeout_s), gz.upper()
    faults.warn(
        f"intensity:live:no-provider:{gz}",
        f"carbon_core: live=True, but no provider without a token covers zone {gz} "
        "(the UK Carbon Intensity API covers GB, Energi Data Service DK-DK1 and DK-DK2); "
        f"using {table.source} ({table.gco2eq_per_kwh:g} gCO2eq/kWh). "
        f"Set {TOKEN_ENV} for live figures in any zone.",
    )
    return None, None


def build_chain(
    *,
    zone: str | None = None,
    intensity: float | None = None,
    live: bool | None = None,
    electricitymaps_token: str | None = None,
    faults: FaultLog | None = None,
    env: Mapping[str, str] | None = None,
    refresh_s: float = 900.0,
    timeout_s: float = 3.0,
) -> IntensityChain:
    """Configure the chain. Cheap: no network, no thread. ``ValueError`` names the bad
    parameter (or environment variable) and its value (never a token's).

    Each argument left None falls back to its environment variable: ``zone`` ->
    ``CARBON_ZONE`` (then detection, see :mod:`carbon_core.intensity.location`),
    ``intensity`` -> ``CARBON_INTENSITY``, ``live`` -> ``CARBON_LIVE``,
    ``electricitymaps_token`` -> ``CARBON_ELECTRICITYMAPS_TOKEN``. Base URLs:
    ``CARBON_ELECTRICITYMAPS_URL`` (default ``https://api.electricitymaps.com/v3``),
    ``CARBON_UK_URL``, ``CARBON_ENERGIDATASERVICE_URL``.
    """
    env = os.environ if env is None else env
    faults = FaultLog() if faults is None else faults
    refresh_s = _positive("refresh_s", refresh_s)
    timeout_s = _positive("timeout_s", timeout_s)
    fixed_value = _fixed_intensity(intensity, env)
    token = _token(electricitymaps_token, env)
    live_on = _live_flag(live, env)

    if zone is not None:
        if not isinstance(zone, str) or not zone.strip():
            raise ValueError(f"zone must be a zone key such as 'DE' or 'SE-SE3'; got {zone!r}")
        z: str | None = tables.canonical(zone)
        how, given = "argument", zone
        param: str | None = "zone"
    else:
        z, how = detect_zone(env)
        param = "CARBON_ZONE" if how == "env:CARBON_ZONE" else None
        given = env.get("CARBON_ZONE", "")

    table = tables.lookup(z) if z else None
    if z is not None and table is None:
        if param is not None and token is None and fixed_value is None:
            raise ValueError(
                f"{param}={given!r} is not a zone that any bundled table (or a parent zone) "
                "knows. Use a country code ('DE'), a US state ('US-CA'), a bidding zone "
                "('SE-SE3'), a cloud region ('europe-west1', 'eu-west-1'); "
                "`carbon-core zones` lists them. Or give a fixed intensity=, or an "
                f"Electricity Maps token ({TOKEN_ENV}) for its zones."
            )
        table = Intensity(WORLD_AVERAGE_GCO2_PER_KWH, "world-average", z)
        if fixed_value is None:
            faults.warn(
                f"intensity:table:unknown-zone:{z}",
                f"carbon_core: no bundled figure for zone {z}; the world average "
                f"({WORLD_AVERAGE_GCO2_PER_KWH:g} gCO2eq/kWh) stands in until a live figure "
                "arrives",
            )
    if table is None:
        table = Intensity(WORLD_AVERAGE_GCO2_PER_KWH, "world-average", None)
        if fixed_value is None:
            faults.warn(
                "intensity:location:unknown",
                "carbon_core: could not tell where this machine is (no zone argument, no "
                "CARBON_ZONE, no cloud region in the environment, no system time zone "
                f"with a country); using the world average, {WORLD_AVERAGE_GCO2_PER_KWH:g} "
                "gCO2eq/kWh (Ember, 2023), which can be off several-fold. Set the zone: "
                "Tracker(zone='DE') or CARBON_ZONE=DE (`carbon-core zones` lists them).",
            )

    fixed = Intensity(fixed_value, "fixed", z) if fixed_value is not None else None
    provider: Provider | None = None
    provider_zone: str | None = None
    if fixed is None:
        provider, provider_zone = _choose_provider(
            z, live=live_on, token=token, env=env, timeout_s=timeout_s, table=table, faults=faults
        )
    elif live_on or token is not None:
        logger.info("carbon_core: a fixed intensity is set; live look-ups are not used")
    return IntensityChain(
        zone=z,
        location_source=how,
        table=table,
        faults=faults,
        fixed=fixed,
        provider=provider,
        provider_zone=provider_zone,
        refresh_s=refresh_s,
    )
