"""The run-log format, ``carbon-core/run-log/1`` (documented in the README, "The run log").

One JSON Lines file per run (and per node); every line is one JSON object with a ``type``:

* ``header``: ``schema``, ``run_id``, ``job_id``, ``started_at`` (ISO 8601 UTC), ``host``,
  ``node_rank``, ``rank``, ``world_size``, ``versions``, ``zone``, ``intensity_source``,
  ``location_source``, ``location`` (where the zone came from and how to change it, in
  words), ``channels`` (channel -> component and method), ``devices``,
  ``hardware`` (per meter), ``config`` (secrets removed);
* ``interval``: ``t0``, ``t1`` (s since start), ``joules`` (cumulative J per channel at
  ``t1``), ``energy_j``, ``co2eq_g`` (this interval, PUE included), ``intensity``
  (gCO2eq/kWh in force), ``intensity_source``, ``power_w``;
  and, once there are any, ``phases`` (this interval's joules by phase, adding up to
  ``energy_j``) and ``samples``, ``tokens`` (counted by this run so far);
* ``phase``: ``name``, ``t0``, ``t1``: one span of a marked phase (validation, checkpoint, a
  name given to ``Tracker.phase``; ``train`` and ``other`` switch every step and are not listed);
* ``warning``: ``t``, ``message``;
* ``final``: ``ended_at``, ``snapshot`` (the final :class:`~carbon_core.snapshot.Snapshot`,
  as :meth:`~carbon_core.snapshot.Snapshot.to_dict` writes it: units and phases included),
  ``per_unit`` (the per-sample and per-token figures) and ``sci`` (the Software Carbon
  Intensity block, :func:`carbon_core.units.sci_block`).

A reader accepts every ``carbon-core/run-log/<major>[.<minor>]`` of the major it knows.
:func:`records` reads the lines back: only from a regular file (a FIFO, a device or a socket
is an error, so a pipe or ``/dev/zero`` never hangs it), holding no line longer than
:data:`MAX_LINE_BYTES`; a torn last line (the writer died in the middle of it) is dropped, a
line elsewhere that is not a JSON object (damaged, binary, overlong) is a damaged line, and a
line of JSON too deep or with an integer too long for the parser is an error.
The ``check_*`` functions below are what a reader holds each record to: every field it uses
has its documented type, and every number is finite, not negative and at most
:data:`MAX_NUMBER`; anything else is a ``ValueError`` naming the field.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Optional

SCHEMA_PREFIX = "carbon-core/run-log/"
SUPPORTED_MAJOR = 1
SCHEMA = f"{SCHEMA_PREFIX}{SUPPORTED_MAJOR}"
#: ``started_at`` and ``ended_at``
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: the longest line a reader takes: the writer's lines are far shorter (a header with many
#: devices is a few KiB); a longer line is damaged
MAX_LINE_BYTES = 1 << 20
#: the largest number a run log may hold (10^30 J is 2.8e17 kWh): far above any real run, far
#: below the overflow of a sum of millions of them
MAX_NUMBER = 1e30
#: ranks and world sizes are below this
MAX_RANK = 1 << 31


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    return kinds.get(type(value), "a number")


def _key(key: Any) -> str:
    text = repr(str(key))
    return text if len(text) <= 40 else text[:36] + "...'"


def number(record: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    """``record[key]`` as a float (``default`` when missing or null); ``ValueError`` otherwise."""
    value = record.get(key)
    if value is None:
        return default
    return _finite(value, key)


def _finite(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{_key(key)} is {_kind(value)}, not a number")
    try:
        out = float(value)
    except OverflowError:  # an integer of hundreds of digits
        out = float("inf")
    if not 0.0 <= out <= MAX_NUMBER:  # NaN fails too
        raise ValueError(f"{_key(key)} is out of range (not a number from 0 to {MAX_NUMBER:g})")
    return out


def optional_number(record: Mapping[str, Any], key: str) -> Optional[float]:
    return None if record.get(key) is None else _finite(record[key], key)


def text(record: Mapping[str, Any], key: str) -> Optional[str]:
    """``record[key]``: a string or null."""
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{_key(key)} is {_kind(value)}, not a string")
    return value


def _rank(record: Mapping[str, Any], key: str) -> None:
    value = record.get(key)
    if value is not None and (type(value) is not int or not 0 <= value < MAX_RANK):
        raise ValueError(f"{_key(key)} is not a rank (an integer from 0 to {MAX_RANK - 1})")


def _mapping(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{_key(key)} is {_kind(value)}, not an object")
    return value


def _each(values: Mapping[str, Any], kind: type, what: str) -> Mapping[str, Any]:
    """``values``, each of which is a ``kind`` (a dict or a str)."""
    for name, value in values.items():
        if not isinstance(value, kind):
            raise ValueError(f"{what} {_key(name)} is {_kind(value)}, not {_kind(kind())}")
    return values


def _strings(record: Mapping[str, Any], key: str) -> None:
    value = record.get(key)
    if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"{_key(key)} is not a list of strings")


def check_header(record: Mapping[str, Any]) -> None:
    """The header fields a reader uses have their types (``ValueError`` naming the field)."""
    for key in ("run_id", "job_id", "started_at", "host", "zone", "intensity_source"):
        text(record, key)
    for key in ("location_source", "location"):
        text(record, key)
    for key in ("node_rank", "rank", "world_size"):
        _rank(record, key)
    _mapping(record, "versions")
    _mapping(record, "hardware")
    channels = _each(_mapping(record, "channels"), dict, "channel")
    for info in channels.values():
        text(info, "component")
        text(info, "method")
    _strings(record, "devices")
    number(_mapping(record, "config"), "pue", 1.0)


def _fast(value: Any, key: str, default: float = 0.0) -> float:
    if type(value) is float and 0.0 <= value <= MAX_NUMBER:  # what the writer writes: no more checks
        return value
    return default if value is None else _finite(value, key)


def check_interval(record: Mapping[str, Any]) -> tuple[float, float, dict[str, float], float]:
    """An interval's ``(t0, t1, joules per channel, co2eq_g)``, its other fields checked."""
    raw = record.get("joules")
    if raw is not None and not isinstance(raw, Mapping):
        raise ValueError(f"'joules' is {_kind(raw)}, not an object")
    joules = {str(k): _fast(v, f"joules[{k}]") for k, v in raw.items()} if raw else {}
    _fast(record.get("power_w"), "power_w")
    _fast(record.get("intensity"), "intensity")
    _fast(record.get("energy_j"), "energy_j")
    if not isinstance(record.get("intensity_source", ""), (str, type(None))):
        text(record, "intensity_source")
    get = record.get
    return _fast(get("t0"), "t0"), _fast(get("t1"), "t1"), joules, _fast(get("co2eq_g"), "co2eq_g")


def interval_phases(record: Mapping[str, Any]) -> dict[str, float]:
    """An interval's joules by phase (empty when it has none)."""
    raw = record.get("phases")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"'phases' is {_kind(raw)}, not an object")
    return {str(k): _fast(v, f"phases[{k}]") for k, v in raw.items()}


def check_phase(record: Mapping[str, Any]) -> tuple[str, float, float]:
    """A phase record's ``(name, t0, t1)``."""
    name = text(record, "name")
    if not name:
        raise ValueError("'name' is missing or empty")
    return name, number(record, "t0"), number(record, "t1")


def check_warning(record: Mapping[str, Any]) -> str:
    """A warning record's message."""
    number(record, "t")
    return text(record, "message") or ""


_SNAPSHOT_NUMBERS = ("duration_s", "energy_kwh", "co2eq_kg", "power_w", "intensity_gco2eq_per_kwh", "pue")
_SNAPSHOT_OPTIONAL: tuple[str, ...] = ("energy_gpu_kwh", "energy_cpu_kwh", "energy_ram_kwh")
_SNAPSHOT_OPTIONAL += ("predicted_co2eq_kg", "progress", "samples", "tokens")


def check_final(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A final record's ``snapshot``, its fields checked (``Snapshot.from_dict`` reads it)."""
    text(record, "ended_at")
    snapshot = record.get("snapshot")
    if not isinstance(snapshot, Mapping):
        raise ValueError(f"'snapshot' is {_kind(snapshot)}, not an object")
    for key in _SNAPSHOT_NUMBERS:
        number(snapshot, key)
    for key in _SNAPSHOT_OPTIONAL:
        optional_number(snapshot, key)
    text(snapshot, "zone")
    text(snapshot, "intensity_source")
    _each(_mapping(snapshot, "methods"), str, "the method of")
    _strings(snapshot, "warnings")
    _strings(snapshot, "devices")
    _strings(snapshot, "assumed")
    ranks = snapshot.get("rank_energy_kwh") or []
    if not isinstance(ranks, list):
        raise ValueError(f"'rank_energy_kwh' is {_kind(ranks)}, not a list")
    for value in ranks:
        _finite(value, "rank_energy_kwh")
    for phase in _each(_mapping(snapshot, "phases"), dict, "the phase").values():
        for key in ("energy_kwh", "co2eq_kg", "duration_s"):
            number(phase, key)
    return snapshot


class RunLogError(Exception):
    """A run log that cannot be read; the message is one line and names the file."""


def _open(path: Path) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise RunLogError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunLogError(f"{path}: cannot read ({reason})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device"
        raise RunLogError(f"{path}: is {kind}, not a run log file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def records(path: Path) -> Iterator[tuple[int, Optional[dict[str, Any]]]]:
    """``(line number, record)`` for each full line; record is None for a damaged line. A
    torn last line is left out. The first line must be a JSON object (else RunLogError)."""
    limit = MAX_LINE_BYTES
    with _open(path) as fh:
        number = 0
        while True:
            try:
                line = fh.readline(limit + 1)
                if not line:
                    return
                number += 1
                record: Optional[dict[str, Any]] = None
                if len(line) <= limit or line.endswith(b"\n"):
                    if not line.endswith(b"\n"):
                        return  # torn last line
                    try:
                        record = _parse(line)
                    except _Hostile:
                        what = "is nested too deep or holds an integer too long"
                        raise RunLogError(f"{path}: line {number}: not a run log record ({what})") from None
                elif number > 1:  # overlong: skipped to its end
                    while (rest := fh.readline(limit)) and not rest.endswith(b"\n"):
                        pass
                    if not rest:
                        return  # torn last line, overlong too
            except OSError as exc:
                raise RunLogError(f"{path}: cannot read ({exc.strerror or exc})") from None
            if number == 1 and record is None:
                raise RunLogError(f"{path}: not a carbon-core run log (not JSON Lines)")
            yield number, record


_DECODE = json.JSONDecoder().raw_decode


class _Hostile(Exception):
    """A line of valid JSON that is nested too deep or holds an integer too long to read."""


def _parse(line: bytes) -> Optional[dict[str, Any]]:
    """The JSON object on ``line``; None when it is not one (damaged). Raises _Hostile."""
    try:
        text = line.decode()
        record, end = _DECODE(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    except (ValueError, RecursionError):  # the parser's limits: depth, digits of an integer
        raise _Hostile from None
    if end < len(text) - 1 and text[end:].strip():
        return None  # more after the object
    return record if isinstance(record, dict) else None
