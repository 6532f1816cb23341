"""Which meters a tracker uses: by name, or chosen automatically for this machine.

``auto`` picks, in order: NVML for the GPUs (unless ``gpus="none"``); RAPL for the CPU
package(s), else the TDP x utilisation estimate; RAPL ``dram`` for memory where the
machine exposes it, else the RAM estimate. On a Grace Hopper superchip the GPU module's
counter already covers the CPU and memory, so neither CPU nor RAM meter is added. When
``host`` is False (a process that is not local rank 0 of its node) no host-wide meter
(CPU, RAM) is built: another process of the node measures them, once.

Meters are listed in :data:`METERS` and imported only when built. Before importing pynvml
(tens of milliseconds), a machine without the NVIDIA driver library is recognised by the
``dlopen`` pynvml itself would make, and told so in the words the NVML meter uses.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Component, Meter, MeterUnavailable
from carbon_core.meters.processes import ProcessSelector

#: every meter by the name configuration uses, as ``"module:Class"``, imported on first use
METERS = {
    "rapl": "carbon_core.meters.rapl:RaplMeter",
    "pyrapl": "carbon_core.meters.pyrapl:PyRaplMeter",
    "cpu-estimate": "carbon_core.meters.cpu_estimate:CpuEstimateMeter",
    "ram-estimate": "carbon_core.meters.ram_estimate:RamEstimateMeter",
    "nvml": "carbon_core.meters.nvml:NvmlMeter",
}
METER_NAMES = tuple(METERS)
#: the component each named meter measures (RAPL's DRAM domain, where readable, measures RAM
#: too and then replaces the RAM estimate at start; see build_meters)
MEASURES: dict[str, Component] = {
    "rapl": "cpu",
    "pyrapl": "cpu",
    "cpu-estimate": "cpu",
    "ram-estimate": "ram",
    "nvml": "gpu",
}
HOST_METERS = ("rapl", "pyrapl", "cpu-estimate", "ram-estimate")
NVML_LIBRARY = "libnvidia-ml.so.1"
NVML_NOT_FOUND = (
    f"NVML library {NVML_LIBRARY} not found: no NVIDIA driver on this machine "
    "(or it is not on the loader path); GPU energy is not measured"
)


def check_measured_once(meters: str | tuple[str | Meter, ...]) -> None:
    """``ValueError`` when an explicit meter list measures one component twice (e.g.
    ``["rapl", "cpu-estimate"]``, or your own GPU meter beside ``"nvml"``): the energy
    would be counted twice. Named meters count by :data:`MEASURES`, your own by their channels.
    """
    if meters == "auto":
        return
    seen: dict[str, str] = {}
    for item in meters:
        if isinstance(item, Meter):
            label, components = item.name, {c.component for c in item.channels}
        else:
            label, components = item, {MEASURES[item]}
        for component in sorted(components):
            if component in seen:
                shown = [m if isinstance(m, str) else m.name for m in meters]
                raise ValueError(
                    f"meters={shown!r}: {seen[component]} and {label} both measure the {component}, "
                    "so its energy would be counted twice; keep one of them"
                )
            seen[component] = label


def meter_class(name: str) -> Callable[..., Meter]:
    """The class of the meter called ``name`` (its module imported now)."""
    if name not in METERS:
        raise ValueError(f"meters: unknown meter {name!r}")
    from importlib import import_module

    module, _, cls = METERS[name].partition(":")
    factory: Callable[..., Meter] = getattr(import_module(module), cls)
    return factory


def nvml_library_missing() -> bool:
    """True when pynvml, once imported, could only fail with :data:`NVML_NOT_FOUND`.

    The same ``dlopen`` pynvml makes (``CDLL("libnvidia-ml.so.1")``, on Linux), without
    importing pynvml (tens of milliseconds) on a machine that has no NVIDIA driver. False
    where pynvml is already imported, or missing (the meter then says what to install).
    """
    if "pynvml" in sys.modules or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        from importlib.util import find_spec

        return find_spec("pynvml") is not None
    return False


def _build(name: str, faults: FaultLog, kwargs: dict[str, Any]) -> Meter:
    if name == "nvml" and nvml_library_missing():
        raise MeterUnavailable(NVML_NOT_FOUND)
    return meter_class(name)(faults, **kwargs)


@dataclass(frozen=True)
class _Options:
    gpus: Any
    processes: ProcessSelector | None
    local_rank: int | None

    def kwargs(self, name: str) -> dict[str, Any]:
        if name == "nvml":
            return {"gpus": self.gpus, "local_rank": self.local_rank}
        if name in ("cpu-estimate", "ram-estimate") and self.processes is not None:
            return {"processes": self.processes}
        return {}


def _try(
    name: str, faults: FaultLog, opts: _Options, why: str = "{}", level: int = logging.WARNING
) -> Meter | None:
    """The meter, or None after one warning: ``why`` formats the reason into the message."""
    try:
        return _build(name, faults, opts.kwargs(name))
    except MeterUnavailable as exc:
        faults.warn(f"meter:unavailable:{name}", why.format(f"{name}: {exc}"), level)
    except Exception as exc:  # a broken meter must not stop the others
        faults.warn(f"meter:error:{name}", f"{name} failed to start: {exc!r}")
    return None


def build_meters(
    names: str | tuple[str | Meter, ...],
    *,
    gpus: Any = "auto",
    faults: FaultLog,
    processes: ProcessSelector | None = None,
    host: bool = True,
    local_rank: int | None = None,
) -> list[Meter]:
    """Construct the meters; never raises (each failure is one warning)."""
    if processes is None and host:  # one process list shared by the CPU and RAM estimates
        from carbon_core.meters.processes import process_tree

        processes = process_tree()
    opts = _Options(gpus, processes, local_rank)
    if names != "auto":
        built: list[Meter] = []
        for item in names:
            if isinstance(item, Meter):
                built.append(item)
            elif (host or item not in HOST_METERS) and (m := _try(item, faults, opts)):
                built.append(m)
        return _without_ram_estimate_if_counted(built, faults)

    meters: list[Meter] = []
    covers_cpu = False
    if gpus != "none":
        gpu = _try("nvml", faults, opts, "GPU energy is not measured ({})", logging.INFO)
        if gpu is not None:
            meters.append(gpu)
            covers_cpu = bool(getattr(gpu, "covers_cpu", False))
    if not host or covers_cpu:
        return meters
    rapl = _try("rapl", faults, opts, "CPU energy is estimated (TDP x CPU-time share), not measured ({})")
    if rapl is not None:
        meters.append(rapl)
    elif (est := _try("cpu-estimate", faults, opts)) is not None:
        meters.append(est)
    if not _ram_counted(meters) and (ram := _try("ram-estimate", faults, opts)) is not None:
        meters.append(ram)
    return meters


def _ram_counted(meters: list[Meter]) -> bool:
    return any(c.component == "ram" and c.method == "counter" for m in meters for c in m.channels)


def _without_ram_estimate_if_counted(meters: list[Meter], faults: FaultLog) -> list[Meter]:
    """RAM measured by a DRAM counter is never estimated on top (it would count twice)."""
    if not _ram_counted(meters):
        return meters
    kept = [m for m in meters if m.name != "ram-estimate"]
    if len(kept) < len(meters):
        faults.warn(
            "meter:ram-estimate:dropped",
            "ram-estimate not used: a DRAM counter measures the memory already",
            logging.INFO,
        )
        for m in meters:
            if m not in kept:
                m.close()
    return kept
