"""Tracker configuration: keyword arguments first, then ``CARBON_*`` variables, then defaults.

Every value is checked here, at construction; a bad one raises ``ValueError`` naming the
parameter (or the environment variable) and the value it got. Secrets are kept out of
``repr`` and of :meth:`Config.public`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

from carbon_core.intensity.values import MAX_PLAUSIBLE_GCO2_PER_KWH
from carbon_core.meters.base import Meter

METER_NAMES = ("rapl", "pyrapl", "cpu-estimate", "ram-estimate", "nvml")
STOP_ON = ("spent", "predicted")
MAX_INTERVAL_S = 300.0  # RAPL counters wrap at ~262 kJ: longer intervals could hide a wrap
GpuSelection = Union[str, tuple[Union[int, str], ...]]
_OFF = ("", "0", "off", "false", "no", "none")
_ON = ("1", "on", "true", "yes")


@dataclass(frozen=True)
class Config:
    interval_s: float = 1.0
    pue: float = 1.0
    zone: Optional[str] = None
    intensity: Optional[float] = None
    live: bool = False
    gpus: GpuSelection = "auto"
    log_dir: Optional[str] = "carbon_runs"
    budget_kg: Optional[float] = None
    stop_on: str = "spent"
    meters: Union[str, tuple[Any, ...]] = "auto"
    electricitymaps_token: Optional[str] = field(default=None, repr=False)

    def public(self) -> dict[str, Any]:
        """The configuration with secrets removed (for the run log and reports)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "electricitymaps_token"}
        out["electricitymaps_token"] = "***" if self.electricitymaps_token else None
        return out


def _bad(name: str, value: object, why: str) -> ValueError:
    return ValueError(f"{name}={value!r}: {why}")


def _number(name: str, value: object, *, low: float, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, bool):
        raise _bad(name, value, "expected a number, not a bool")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond any float
        raise _bad(name, value, "expected a number") from None
    if not math.isfinite(number) or number > high or number < low or (low_open and number == low):
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high != math.inf else "")
        raise _bad(name, value, f"must be a finite number {bound}")
    return number


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise _bad(name, value, "expected a boolean (1/0, true/false)")


def _gpus(name: str, given: object) -> GpuSelection:
    value = given
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("auto", "all", "none"):
            return text.lower()
        value = [v.strip() for v in text.split(",")]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or not value:
        raise _bad(name, given, "expected 'auto', 'all', 'none' or a list of GPU indices or UUIDs")
    out: list[int | str] = []
    for item in value:
        if isinstance(item, bool):
            raise _bad(name, given, "GPU indices must be integers")
        if isinstance(item, int) or (isinstance(item, str) and item.isascii() and item.isdigit()):
            if int(item) < 0:
                raise _bad(name, given, "GPU indices must be >= 0")
            out.append(int(item))
        elif isinstance(item, str) and item.startswith(("GPU-", "MIG-")):
            out.append(item)
        else:
            raise _bad(name, given, f"{item!r} is neither a GPU index nor a GPU-/MIG- UUID")
    return tuple(out)


def _meters(name: str, given: object) -> str | tuple[Any, ...]:
    """'auto', or meter names and/or ready-made Meter instances (your own hardware source)."""
    value = given
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, Sequence) or isinstance(value, bytes) or not value:
        raise _bad(name, given, f"expected 'auto' or a list of meter names from {METER_NAMES}")
    for item in value:
        if not isinstance(item, Meter) and item not in METER_NAMES:
            raise _bad(name, given, f"unknown meter {item!r}; known: {', '.join(METER_NAMES)}")
    return tuple(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, value, "expected a non-empty string")
    return value.strip()


def _token(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a non-empty string (value not shown: it is a secret)")
    return value.strip()


def _log_dir(name: str, given: object) -> str | None:
    """A directory path (str, bytes or os.PathLike), or an "off" word: None."""
    value = given
    try:
        value = os.fsdecode(value)  # type: ignore[arg-type]
    except TypeError:
        raise _bad(name, given, "expected a directory path or 'off'") from None
    if value.strip().lower() in _OFF:
        return None
    if "\x00" in value:
        raise _bad(name, given, "a path cannot hold a NUL character")
    return _text(name, value)


def _stop_on(name: str, value: object) -> str:
    if value not in STOP_ON:
        raise _bad(name, value, f"expected one of {', '.join(STOP_ON)}")
    return str(value)


_PARSERS: dict[str, Any] = {
    "interval_s": lambda n, v: _number(n, v, low=0.0, high=MAX_INTERVAL_S, low_open=True),
    "pue": lambda n, v: _number(n, v, low=1.0, high=10.0),
    "zone": _text,
    "intensity": lambda n, v: _number(n, v, low=0.0, high=MAX_PLAUSIBLE_GCO2_PER_KWH),
    "live": _flag,
    "gpus": _gpus,
    "log_dir": lambda n, v: _log_dir(n, v),
    "budget_kg": lambda n, v: _number(n, v, low=0.0, low_open=True),
    "stop_on": _stop_on,
    "meters": _meters,
    "electricitymaps_token": _token,
}


def load(kwargs: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Build a validated :class:`Config` from keyword arguments and ``CARBON_*`` variables.

    A keyword argument given as ``None`` means "not given": the environment, then the
    default applies.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Config):
        given = kwargs.get(f.name)
        env_name = f"CARBON_{f.name.upper()}"
        if given is not None:
            values[f.name] = _PARSERS[f.name](f.name, given)
        elif env.get(env_name) not in (None, ""):
            values[f.name] = _PARSERS[f.name](env_name, env[env_name])
    unknown = set(kwargs) - {f.name for f in fields(Config)}
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    return Config(**values)
