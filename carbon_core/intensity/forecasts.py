"""Forecasts and recent history from the live providers, and the best time to start.

:func:`forecast` fetches the published forecast for a zone, :func:`best_start` finds the
start that minimises a job's forecast emissions (:func:`~carbon_core.intensity.timing.plan_start`),
:func:`history` fetches recent figures for hindsight. Which provider serves a zone:

- ``GB`` and its regions (``GB-1`` .. ``GB-17``, ``GB-ENG``/``GB-SCT``/``GB-WLS``): the UK
  Carbon Intensity API, 48 hours ahead (national or regional);
- with an Electricity Maps token: Electricity Maps' forecast, any zone (24 to 72 hours, by plan);
- ``DK-DK1`` / ``DK-DK2``: Energi Data Service's prognosis (``CO2EmisProg``, 9 hours or more);
- the Energy-Charts countries (``DE``, ``FR``, ``AT``, ... :data:`energycharts.COUNTRIES`):
  Energy-Charts' forecast, to about the end of the local day.

Every look-up uses the base-URL overrides of the live ones (the ``*_url`` settings:
``CARBON_UK_URL``, ``CARBON_ENERGIDATASERVICE_URL``, ``CARBON_ELECTRICITYMAPS_URL``,
``CARBON_ENERGYCHARTS_URL``, ``CARBON_ECO2MIX_URL``), has one total deadline
(:data:`DEADLINE_TIMEOUTS` times ``timeout_s``, retries included) and is cached for
:data:`CACHE_S` per provider, URL and zone. ``config`` is anything with those settings
(:func:`carbon_core.config.load` builds one from the ``CARBON_*`` variables); without it the
public URLs, no token and a 3-second timeout are used. Importing this module imports no HTTP
library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Optional, TypeVar, Union

from carbon_core.intensity import tables
from carbon_core.intensity.choice import LookupConfig, provider_for
from carbon_core.intensity.timing import Plan, PlanError, Series, parse_duration, parse_within, plan_start

if TYPE_CHECKING:
    from carbon_core.intensity.providers._series import Slot
    from carbon_core.intensity.providers.base import HttpProvider

__all__ = ["CACHE_S", "NoForecast", "best_start", "forecast", "forecast_zones", "history"]

#: a forecast or history look-up ends by this many times ``timeout_s``, retries included
DEADLINE_TIMEOUTS = 4.0
#: how long a fetched forecast or history is reused (Energy-Charts asks for 15 minutes at least)
CACHE_S = 900.0
T = TypeVar("T")


class _Defaults:
    electricitymaps_token = electricitymaps_url = uk_url = energidataservice_url = None
    energycharts_url = eco2mix_url = None
    timeout_s = 3.0


class NoForecast(PlanError):
    """A known zone that no provider publishes a forecast for (the message lists those that do)."""


def forecast_zones(token: bool = False) -> str:
    """The zones with a forecast, in words."""
    from carbon_core.intensity.providers import energycharts

    countries = ", ".join(sorted(energycharts.COUNTRIES))
    em = (
        "any Electricity Maps zone (with your token)"
        if token
        else "any Electricity Maps zone with CARBON_ELECTRICITYMAPS_TOKEN"
    )
    return (
        "GB and GB-1..GB-17 (GB-ENG, GB-SCT, GB-WLS): UK Carbon Intensity API; DK-DK1, DK-DK2: "
        f"Energi Data Service; {countries}: Energy-Charts; {em}"
    )


def _grid_zone(zone: str, token: Optional[str]) -> str:
    """The grid zone of ``zone``; ``PlanError`` for a zone nobody knows."""
    from carbon_core.intensity.providers import uk_carbon_intensity as uk

    if not isinstance(zone, str) or not zone.strip():
        raise PlanError(
            "zone", zone, "expected a zone such as GB, DE, DK-DK1 (`carbon-core zones` lists them)"
        )
    gz = tables.grid_zone(zone) or tables.canonical(zone)
    if tables.lookup(zone) is None and not uk.covers(gz) and token is None:
        raise PlanError(
            "zone", zone, "not a zone that any bundled table knows (`carbon-core zones` lists them)"
        )
    return gz


def _forecaster(zone: str, config: LookupConfig) -> tuple[HttpProvider, str]:
    """The provider that publishes a forecast for ``zone``, and the zone key to ask it for."""
    found = provider_for(_grid_zone(zone, config.electricitymaps_token), config, forecast=True)
    if found is None:
        raise NoForecast(
            "zone", zone, f"no provider publishes a forecast for it. Zones with one: {forecast_zones()}"
        )
    return found


def historian(zone: str, config: LookupConfig) -> Optional[tuple[HttpProvider, str]]:
    """The provider with recent history for ``zone`` (the live one where it has history)."""
    from carbon_core.intensity.providers import eco2mix

    gz = _grid_zone(zone, config.electricitymaps_token)
    if eco2mix.covers(gz) and config.electricitymaps_token is None:
        return eco2mix.Eco2mix(base_url=config.eco2mix_url, timeout_s=config.timeout_s), "FR"
    try:
        return _forecaster(zone, config)
    except NoForecast:
        return None


_cache: dict[tuple[str, ...], Series] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _deadline(provider: HttpProvider, timeout_s: float, call: Callable[[threading.Event], T]) -> T:
    """``call(stop)`` under one total deadline: when it passes, ``stop`` is set and the request
    in flight is cut (a ``timeout`` ProviderError), whatever the server does."""
    from carbon_core.intensity.providers.errors import ProviderError

    limit = DEADLINE_TIMEOUTS * timeout_s
    stop = threading.Event()

    def cut() -> None:
        stop.set()
        provider.close()

    timer = threading.Timer(limit, cut)
    timer.name, timer.daemon = "carbon-core-lookup-deadline", True
    timer.start()
    try:
        return call(stop)
    except ProviderError as err:
        if stop.is_set():
            raise ProviderError(
                "timeout", f"{provider.label}: no complete answer within {limit:g} s", retryable=True
            ) from None
        raise err
    finally:
        timer.cancel()
        provider.close()


def _fetch(
    provider: HttpProvider,
    key: str,
    kind: str,
    now: float,
    timeout_s: float,
    call: Callable[[threading.Event], list[Slot]],
    span: str = "",
) -> Series:
    cache_key = (provider.name, provider.base_url, key, kind, span)
    with _cache_lock:
        hit = _cache.get(cache_key)
    if hit is not None and 0 <= now - hit.fetched_at < CACHE_S:
        return hit
    got = _deadline(provider, timeout_s, call)
    series = Series(zone=key, source=provider.source(key), kind=kind, slots=tuple(got), fetched_at=now)
    with _cache_lock:
        _cache[cache_key] = series
    return series


def forecast(
    zone: str, *, now: Optional[float] = None, hours: float = 48.0, config: Optional[LookupConfig] = None
) -> Series:
    """The forecast published for ``zone`` (``now``: epoch seconds, default the clock).

    ``PlanError`` for a zone nobody knows, :class:`NoForecast` for one without a forecast;
    a provider's failure is a ``ProviderError`` (its ``kind`` and message say what failed)."""
    cfg = config if config is not None else _Defaults()
    t = time.time() if now is None else now
    provider, key = _forecaster(zone, cfg)
    return _fetch(
        provider, key, "forecast", t, cfg.timeout_s,
        lambda stop: provider.forecast(key, t, stop, hours=hours),  # type: ignore[attr-defined]
    )  # fmt: skip


def history(
    zone: str, start: float, end: float, *, config: Optional[LookupConfig] = None
) -> Optional[Series]:
    """Recent figures for ``zone`` from ``start`` to ``end`` (epoch s), or None where no provider
    publishes history for it."""
    cfg = config if config is not None else _Defaults()
    found = historian(zone, cfg)
    if found is None:
        return None
    provider, key = found
    return _fetch(
        provider, key, "history", end, cfg.timeout_s,
        lambda stop: provider.history(key, start, end, stop),  # type: ignore[attr-defined]
        f"{start:.0f}:{end:.0f}",
    )  # fmt: skip


Length = Union[str, float]


def best_start(
    series: Series, duration: Length, within: Length = "24h", *, now: Optional[float] = None
) -> Plan:
    """The start that minimises the forecast emissions of a job of ``duration`` (``"6h"`` or
    seconds) inside the window ``within`` (``"24h"``, seconds, or an ISO 8601 end time with its
    offset), from ``series`` (:func:`forecast`). ``PlanError`` (naming ``duration``, ``within``
    or ``zone``) when the window is in the past or shorter than the job, or the job longer than
    the forecast reaches."""
    t = series.fetched_at if now is None else now
    d = float(duration) if isinstance(duration, (int, float)) else parse_duration(duration, "duration")
    if isinstance(within, (int, float)) and not isinstance(within, bool):
        if within <= 0:
            raise PlanError("within", within, "a window in the past: give a length from now")
        end = t + float(within)
    else:
        end = parse_within(within, t, "within")
    return plan_start(series, d, now=t, window_end=end)
