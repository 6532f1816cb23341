"""Which meters a tracker uses: by name, or chosen automatically for this machine.

``auto`` picks, in order: NVML for the GPUs (unless ``gpus="none"``); RAPL for the CPU
package(s), else the TDP x utilisation estimate; RAPL ``dram`` for memory where the
machine exposes it, else the RAM estimate. On a Grace Hopper superchip the GPU module's
counter already covers the CPU and memory, so neither CPU nor RAM meter is added. When
``host`` is False (a process that is not local rank 0 of its node) no host-wide meter
(CPU, RAM) is built: another process of the node measures them, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Meter, MeterUnavailable
from carbon_core.meters.processes import ProcessSelector

HOST_METERS = ("rapl", "pyrapl", "cpu-estimate", "ram-estimate")


def _factory(name: str) -> Callable[..., Meter]:
    if name == "rapl":
        from carbon_core.meters.rapl import RaplMeter

        return RaplMeter
    if name == "pyrapl":
        from carbon_core.meters.pyrapl import PyRaplMeter

        return PyRaplMeter
    if name == "cpu-estimate":
        from carbon_core.meters.cpu_estimate import CpuEstimateMeter

        return CpuEstimateMeter
    if name == "ram-estimate":
        from carbon_core.meters.ram import RamEstimateMeter

        return RamEstimateMeter
    if name == "nvml":
        from carbon_core.meters.nvml import NvmlMeter

        return NvmlMeter
    raise ValueError(f"meters: unknown meter {name!r}")


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
        return _factory(name)(faults, **opts.kwargs(name))
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
