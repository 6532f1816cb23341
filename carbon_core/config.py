"""Tracker configuration: keyword arguments first, then ``CARBON_*`` variables, then defaults.

This module is the only reader of the ``CARBON_*`` variables and of the tracker's keyword
arguments. Every value is checked here, at construction; a bad one raises ``ValueError``
naming the parameter (or the environment variable) and the value it got. Where each value
came from is kept in :attr:`Config.origin`, so later checks name it the same way. Secrets
are kept out of ``repr``, of error messages and of :meth:`Config.public`.

:data:`OPTIONS` describes every option (name, variable, help, CLI flag, secret) for the
adapters, the CLI and the documentation to derive their own lists from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from typing import Any, Optional, Union

from carbon_core.intensity.values import MAX_PLAUSIBLE_GCO2_PER_KWH
from carbon_core.meters.base import Meter
from carbon_core.meters.registry import METER_NAMES, known_meter

STOP_ON = ("spent", "predicted")
MAX_INTERVAL_S = 300.0  # RAPL counters wrap at ~262 kJ: longer intervals could hide a wrap
MIN_INTERVAL_S = 0.01  # a sample costs ~2 ms of CPU (benchmarks/RESULTS.md): a sixth of a core
ENV_PREFIX = "CARBON_"
GpuSelection = Union[str, tuple[Union[int, str], ...]]
Parser = Callable[[str, Any], Any]
#: words for a boolean (``live``) and for "no run log" (``log_dir``); "none" is off
_OFF = ("", "0", "off", "false", "no", "none")
_ON = ("1", "on", "true", "yes")


# -- parsers: (name to show, value given) -> checked value, or ValueError naming both ----------


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


def _between(low: float, high: float = math.inf, *, low_open: bool = False) -> Parser:
    return lambda name, value: _number(name, value, low=low, high=high, low_open=low_open)


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
        if not isinstance(item, Meter) and not known_meter(item):  # built-in or plug-in
            raise _bad(name, given, f"unknown meter {item!r}; known: {', '.join(METER_NAMES)}")
    return tuple(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, value, "expected a non-empty string")
    return value.strip()


def _token(name: str, value: object) -> str:
    """A non-empty token that an HTTP header can carry; its value is never shown."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a non-empty string (value not shown: it is a secret)")
    token = value.strip()
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise ValueError(f"{name} contains characters an HTTP header cannot carry (value not shown)")
    return token


def _url(name: str, value: object) -> str | None:
    """An http(s) base URL, host and port checked, without its trailing slash; blank: the
    provider's default. A bad one is shown without user info, query and fragment."""
    import re
    from urllib.parse import urlsplit

    text = value.strip() if isinstance(value, str) else ""
    if isinstance(value, str) and not text:
        return None
    shown = repr(re.sub(r"^([^:/]*://)[^/]*@", r"\1", re.split(r"[?#]", text)[0])) if text else repr(value)
    try:
        parts = urlsplit(text)
        problem = "" if parts.port != 0 else " (port 0)"  # .port: ValueError when out of range
    except ValueError as exc:  # a bad port, a broken IPv6 literal (messages that hold no user info)
        problem = f" ({exc})" if str(exc).startswith(("Port", "Invalid IPv6")) else " (unreadable)"
    if not problem and any(c.isspace() or not c.isprintable() for c in text):
        problem = " (a space or control character)"
    if problem or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http:// or https:// URL; got {shown}{problem}")
    return text.rstrip("/")


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


def _export(name: str, given: object) -> tuple[str, ...]:
    """Exporter names (a list, or comma-separated), each with its extra installed."""
    from carbon_core.export.names import EXPORTERS, unusable  # only when exporters are named

    value = [v.strip() for v in given.split(",") if v.strip()] if isinstance(given, str) else given
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise _bad(name, given, f"expected exporter names from {', '.join(EXPORTERS)}")
    out: list[str] = []
    for item in value:
        key = item.strip().lower() if isinstance(item, str) else item
        if key not in EXPORTERS:
            raise _bad(name, given, f"unknown exporter {item!r}; known: {', '.join(EXPORTERS)}")
        problem = unusable(key)
        if problem:
            raise _bad(name, given, problem)
        if key not in out:
            out.append(key)
    return tuple(out)


def _listen(name: str, given: object) -> str:
    """PORT, or ADDRESS:PORT (``[v6]:PORT``), as ``ADDRESS:PORT``: 127.0.0.1 unless an address is named."""
    from carbon_core.export.names import listen_address

    text = str(given) if isinstance(given, (str, int)) and not isinstance(given, bool) else ""
    where = listen_address(text)
    if where is None:
        raise _bad(name, given, "expected PORT or ADDRESS:PORT (an IP address or host name, a port 1-65535)")
    return f"[{where[0]}]:{where[1]}" if ":" in where[0] else f"{where[0]}:{where[1]}"


def _gateway(name: str, value: object) -> str | None:
    """An http(s) URL without user info (a URL may be shown in a warning)."""
    from urllib.parse import urlsplit

    url = _url(name, value)
    if url is not None and "@" in urlsplit(url).netloc:
        raise ValueError(f"{name}: credentials in the URL are not supported (value not shown)")
    return url


def _stop_on(name: str, value: object) -> str:
    if value not in STOP_ON:
        raise _bad(name, value, f"expected one of {', '.join(STOP_ON)}")
    return str(value)


# -- the options ------------------------------------------------------------------------------


def _option(
    default: Any,
    parse: Parser,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    secret: bool = False,
    argument: bool = True,
) -> Any:
    meta = dict(parse=parse, help=help, flag=flag, metavar=metavar, secret=secret, argument=argument)
    return field(default=default, repr=argument and not secret, metadata=meta)  # URLs may hold credentials


@dataclass(frozen=True)
class Config:
    """The checked configuration of a tracker. Build it with :func:`load`."""

    interval_s: float = _option(
        1.0, _between(MIN_INTERVAL_S, MAX_INTERVAL_S),
        "sampling interval in seconds, 0.01 to 300 (a sample costs ~2 ms of CPU: at 0.01 s, a sixth of "
        "a core)", flag="--interval", metavar="SECONDS",
    )  # fmt: skip
    pue: float = _option(
        1.0, _between(1.0, 10.0),
        "data-centre power usage effectiveness, 1 to 10: 1.1-1.2 for a modern cloud region, ~1.5 for an "
        "average data centre", flag="--pue",
    )  # fmt: skip
    zone: Optional[str] = _option(
        None,
        _text,
        "grid zone (detected when not set), e.g. DE, DK-DK1, US-MIDA-PJM, CA-QC, eu-west-1",
        flag="--zone",
    )
    intensity: Optional[float] = _option(
        None, _between(0.0, MAX_PLAUSIBLE_GCO2_PER_KWH), "fixed grid intensity in gCO2eq/kWh",
        flag="--intensity", metavar="G_PER_KWH",
    )  # fmt: skip
    live: bool = _option(False, _flag, "use live intensity providers, over the network", flag="--live")
    gpus: Union[str, tuple[Union[int, str], ...]] = _option(
        "auto", _gpus, "auto, all, none, or GPU indices/UUIDs, comma-separated", flag="--gpus"
    )
    log_dir: Optional[str] = _option(
        "carbon_runs", _log_dir, "where the run log goes; 'off' for none", flag="--log-dir", metavar="DIR"
    )
    budget_kg: Optional[float] = _option(None, _between(0.0, low_open=True), "carbon budget in kg CO2eq")
    stop_on: str = _option("spent", _stop_on, "when the budget stops the run: spent or predicted")
    meters: Union[str, tuple[Any, ...]] = _option(
        "auto", _meters, "auto, or meters from rapl, pyrapl, cpu-estimate, ram-estimate, nvml, amd, plug-ins"
    )
    electricitymaps_token: Optional[str] = _option(
        None,
        _token,
        "Electricity Maps API token: turns live look-ups on; never logged, never shown",
        secret=True,
    )
    export: Union[str, tuple[str, ...]] = _option(
        (), _export, "exporters, comma-separated: prometheus (pull endpoint), pushgateway, otlp "
        "(OpenTelemetry); each needs its extra, e.g. carbon-core[prometheus]",
        flag="--export", metavar="NAMES",
    )  # fmt: skip
    prometheus_port: Union[int, str, None] = _option(
        None, _listen, "where the prometheus exporter serves /metrics: PORT (on 127.0.0.1) or ADDRESS:PORT; "
        "local rank N of a node serves on PORT+N", flag="--prometheus-port", metavar="[ADDRESS:]PORT",
    )  # fmt: skip
    pushgateway_url: Optional[str] = _option(
        "http://127.0.0.1:9091", _gateway, "the pushgateway exporter's Prometheus Pushgateway",
        flag="--pushgateway-url", metavar="URL",
    )  # fmt: skip
    embodied_kg_per_hour: Optional[float] = _option(
        None, _between(0.0), "embodied emissions of the measured hardware, kg CO2eq per hour of "
        "use: your figure (e.g. its maker's footprint over its service hours); adds M, labelled as given, "
        "to the run log's SCI block", flag="--embodied-kg-per-hour", metavar="KG",
    )  # fmt: skip
    electricitymaps_url: Optional[str] = _option(None, _url, "Electricity Maps API base URL", argument=False)
    uk_url: Optional[str] = _option(None, _url, "UK Carbon Intensity API base URL", argument=False)
    energidataservice_url: Optional[str] = _option(
        None, _url, "Energi Data Service API base URL", argument=False
    )
    energycharts_url: Optional[str] = _option(
        None, _url, "Energy-Charts (Fraunhofer ISE) API base URL", argument=False
    )
    eco2mix_url: Optional[str] = _option(
        None, _url, "RTE eCO2mix (ODRE, Opendatasoft) base URL", argument=False
    )
    refresh_s: float = _option(
        900.0, _between(0.0, 86400.0, low_open=True), "seconds between live look-ups", argument=False
    )
    timeout_s: float = _option(
        3.0, _between(0.0, 300.0, low_open=True),
        "seconds a live look-up waits for the server; its whole answer must be in within twice that",
        argument=False,
    )  # fmt: skip
    #: where each given value came from: the parameter name, or the ``CARBON_*`` variable
    origin: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def named(self, name: str) -> str:
        """How to name option ``name`` in a message: its variable when it came from one."""
        return self.origin.get(name, name)

    def public(self) -> dict[str, Any]:
        """The keyword-argument options with secrets hidden (for the run log and reports)."""
        return {
            o.name: ("***" if getattr(self, o.name) else None) if o.secret else getattr(self, o.name)
            for o in OPTIONS
            if o.argument
        }


@dataclass(frozen=True)
class Option:
    """One configuration option, as the CLI, the adapters and the docs describe it."""

    name: str  #: the Config field (and Tracker keyword argument when ``argument``)
    env: str  #: the ``CARBON_*`` variable
    default: Any
    help: str  #: one line
    flag: Optional[str] = None  #: the ``carbon-core run`` flag, if it has one
    metavar: Optional[str] = None
    secret: bool = False  #: never shown: not in a repr, a message or the run log
    argument: bool = True  #: a Tracker keyword argument (else set through ``env`` only)


def _describe(f: Field[Any]) -> Option:
    m = f.metadata
    return Option(
        f.name, ENV_PREFIX + f.name.upper(), f.default, m["help"],
        flag=m["flag"], metavar=m["metavar"], secret=m["secret"], argument=m["argument"],
    )  # fmt: skip


#: every option, in the order of the Tracker's arguments
OPTIONS: tuple[Option, ...] = tuple(_describe(f) for f in fields(Config) if "parse" in f.metadata)
_PARSERS: dict[str, Parser] = {f.name: f.metadata["parse"] for f in fields(Config) if "parse" in f.metadata}


def load(kwargs: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Build a validated :class:`Config` from keyword arguments and ``CARBON_*`` variables.

    A keyword argument given as ``None`` means "not given": the environment, then the
    default applies. An empty variable counts as unset.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for option in OPTIONS:
        given = kwargs.get(option.name)
        if given is not None:
            origin[option.name] = option.name
        elif env.get(option.env) not in (None, ""):
            given = env[option.env]
            origin[option.name] = option.env
        else:
            continue
        values[option.name] = _PARSERS[option.name](origin[option.name], given)
    unknown = set(kwargs) - set(_PARSERS)
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    config = Config(**values, origin=origin)
    if "prometheus" in config.export and config.prometheus_port is None:
        named = config.named("export")
        raise _bad(
            named, kwargs.get("export") if named == "export" else env[named], "the prometheus exporter needs "
            "a port: set prometheus_port (CARBON_PROMETHEUS_PORT) to PORT or ADDRESS:PORT",
        )  # fmt: skip
    return config


def argument_types() -> dict[str, Any]:
    """Each keyword option's type as a caller may give it, in the order of :data:`OPTIONS`:
    the :class:`Config` field's annotation made ``Optional`` (``None`` means "not given":
    the ``CARBON_*`` variable, else the default). Read-only, for signatures that tools read
    (the callbacks' ``__init__``, which jsonargparse and LightningCLI inspect)."""
    import typing

    hints = typing.get_type_hints(Config)
    return {o.name: Optional[hints[o.name]] for o in OPTIONS if o.argument}
