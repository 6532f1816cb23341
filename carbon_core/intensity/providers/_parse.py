"""Checks shared by the providers' response parsers."""

from __future__ import annotations

from typing import Any

from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.values import MAX_PLAUSIBLE_GCO2_PER_KWH, is_plausible


def dig(data: Any, label: str, *path: str | int) -> Any:
    """``data[path[0]][path[1]]...`` or a ``shape`` ProviderError naming the path."""
    cur = data
    for i, step in enumerate(path):
        try:
            if isinstance(step, int):
                if not isinstance(cur, list):
                    raise TypeError
                cur = cur[step]
            else:
                if not isinstance(cur, dict):
                    raise TypeError
                cur = cur[step]
        except (KeyError, IndexError, TypeError):
            where = "".join(f"[{p!r}]" for p in path[: i + 1])
            raise ProviderError(
                "shape", f"{label}: the answer does not have the expected shape (no {where})"
            ) from None
    return cur


def intensity_value(value: Any, label: str, field: str) -> float:
    """A plausible gCO2eq/kWh figure from a JSON number, else a ``shape``/``value`` error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderError("shape", f"{label}: {field} is {type(value).__name__}, not a number")
    v = float(value)
    if not is_plausible(v):
        raise ProviderError(
            "value",
            f"{label}: {field} = {value!r} gCO2eq/kWh is not plausible "
            f"(expected 0..{MAX_PLAUSIBLE_GCO2_PER_KWH:g}), ignored",
        )
    return v
