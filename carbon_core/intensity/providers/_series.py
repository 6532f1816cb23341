"""Time series from the providers (forecasts, recent history): slots, times, checks.

A :class:`Slot` is one interval ``[start, end)`` (epoch seconds, UTC) at one intensity. A
provider's parser turns its rows into slots with :func:`slots`: sorted, one per start, each
ending where the next begins (the last one step later, the step read from the data), every
value checked like a live figure (:func:`~._parse.intensity_value`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from carbon_core.intensity.providers._parse import intensity_value
from carbon_core.intensity.providers.errors import ProviderError

#: the longest gap between two slots still read as one series (a longer one ends a slot early)
MAX_STEP_S = 3 * 3600.0

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class Slot:
    """``gco2eq_per_kwh`` in force from ``start`` to ``end`` (epoch seconds, UTC)."""

    start: float
    end: float
    gco2eq_per_kwh: float


def parse_time(value: Any, label: str, field: str, *, naive_utc: bool = False) -> float:
    """Epoch seconds of an ISO 8601 time (``2018-01-20T12:00Z``, ``...:00.000Z``,
    ``...+01:00``); a time without an offset only when ``naive_utc`` (a field the
    provider documents as UTC). Anything else is a ``shape`` :class:`ProviderError`."""
    m = _TIME.match(value.strip()) if isinstance(value, str) else None
    if m is None or (m.group(7) is None and not naive_utc):
        shown = repr(value)[:40]
        raise ProviderError("shape", f"{label}: {field} = {shown} is not an ISO 8601 time with an offset")
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    s = int(m.group(6) or 0)
    tz = m.group(7)
    offset = 0
    if tz and tz != "Z":
        digits = tz[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + int(digits[2:])) * (1 if tz[0] == "+" else -1)
    try:
        when = datetime(y, mo, d, h, mi, s, tzinfo=timezone(timedelta(minutes=offset)))
    except ValueError:
        raise ProviderError("shape", f"{label}: {field} = {value!r} is not a valid time") from None
    return when.timestamp()


def iso_minute(t: float) -> str:
    """``t`` as ``YYYY-MM-DDThh:mmZ`` (UTC, the form the UK API documents)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def number(value: Any) -> Any:
    """A numeric string (some open-data portals send ``"15"``) as a number; anything else as is."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def slots(
    points: Iterable[tuple[float, Any, float | None]], label: str, field: str, step: float | None = None
) -> list[Slot]:
    """Slots from ``(start, value, end or None)`` rows: values checked, sorted by start, one per
    start (the last row given wins), an open end closed by the next start or the usual step
    (read from the rows; ``step``, the provider's documented one, where they cannot tell)."""
    rows: dict[float, tuple[float, float | None]] = {}
    for start, raw, end in points:
        rows[start] = (intensity_value(number(raw), label, field), end)
    starts = sorted(rows)
    if not starts:
        return []
    steps = Counter(b - a for a, b in zip(starts, starts[1:]) if 0 < b - a <= MAX_STEP_S)
    step = steps.most_common(1)[0][0] if steps else step
    out: list[Slot] = []
    for i, start in enumerate(starts):
        value, end = rows[start]
        if end is None:
            nxt = starts[i + 1] if i + 1 < len(starts) else None
            if nxt is not None and (step is None or nxt - start <= step):
                end = nxt
            elif step is not None:
                end = start + step
            else:
                raise ProviderError("shape", f"{label}: one row and no step: the slot's length is unknown")
        if end <= start:
            raise ProviderError("shape", f"{label}: a slot ends before it starts ({iso_minute(start)})")
        out.append(Slot(start, end, value))
    return out
