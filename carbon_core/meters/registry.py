"""Which meters a tracker uses: by name, or chosen automatically for this machine.

``auto`` picks, in order: the GPU meters, NVML for NVIDIA GPUs and amdsmi for AMD GPUs, then
any plug-in GPU meter (unless ``gpus="none"``); RAPL for the CPU package(s), else a plug-in
CPU meter, else the CPU-time estimate; RAPL ``dram`` for memory where the machine
exposes it, else a plug-in RAM meter, else the RAM estimate. On a Grace Hopper superchip the
GPU module's counter already covers the CPU and memory, so neither CPU nor RAM meter is
added. When ``host`` is False (a process that is not local rank 0 of its node) no host-wide
meter (CPU, RAM) is built: another process of the node measures them, once. A GPU library
that is not on the machine at all (:class:`HardwareAbsent`) is worth a warning only when no
GPU meter could be built: next to working AMD GPUs, the absence of NVIDIA's driver is no fault.
On a machine with GPUs of both vendors, the AMD channels are named ``gpu:amd<N>``.

Meters are listed in :data:`METERS` and imported only when built. Before importing pynvml
(tens of milliseconds), a machine without the NVIDIA driver library is recognised by the
``dlopen`` pynvml itself would make, and told so in the words the NVML meter uses.

Plug-in meters
--------------

A separate package adds a meter by declaring an entry point in the group
:data:`PLUGIN_GROUP` (``carbon_core.meters``); its name is the meter's name in
configuration (``meters=["my-meter"]``, ``CARBON_METERS=my-meter``), and ``auto`` picks it
up. In ``pyproject.toml``::

    [project.entry-points."carbon_core.meters"]
    intel-gpu = "carbon_intel_gpu:IntelGpuMeter"

The object named is a :class:`~carbon_core.meters.base.Meter` subclass and keeps the contract
of the built-in meters (:mod:`carbon_core.meters.base`), plus:

* ``name`` (class attribute): the entry point's name; ``measures`` (class attribute): the one
  component it measures, ``"gpu"``, ``"cpu"`` or ``"ram"``;
* it is built as ``cls(faults, **options)``: a GPU meter gets ``gpus`` and ``local_rank`` (the
  tracker's GPU choice and this process's local rank, to measure only the GPUs this process
  uses), a CPU or RAM meter ``processes`` (None, or the processes of the node to attribute a
  share to); accept them, even if only as ``**options``;
* the constructor raises :class:`~carbon_core.meters.base.MeterUnavailable` with a reason a
  person can act on when its hardware is absent (:class:`HardwareAbsent` when its library,
  driver or device is not on the machine at all); it must not block for long;
* its channels are named ``<component>:<unique suffix>`` (``gpu:xpu0``), all of its
  ``measures`` component, with the method each is measured by (``counter``,
  ``power-sampled`` or ``estimated``);
* a GPU plug-in measures devices no built-in meter measures (not NVIDIA or AMD GPUs), so
  ``auto`` adds it beside them; a CPU or RAM plug-in is used where RAPL is not readable, in
  place of the estimate.

A plug-in that fails to load or to start costs one warning; the tracker goes on without it.
A plug-in whose name is a built-in meter's is ignored, with a warning.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carbon_core.faults import FaultLog, logger
from carbon_core.meters.base import COMPONENTS, Component, Meter, MeterUnavailable
from carbon_core.meters.processes import ProcessSelector

#: every meter by the name configuration uses, as ``"module:Class"``, imported on first use
METERS = {
    "rapl": "carbon_core.meters.rapl:RaplMeter",
    "pyrapl": "carbon_core.meters.pyrapl:PyRaplMeter",
    "cpu-estimate": "carbon_core.meters.cpu_estimate:CpuEstimateMeter",
    "ram-estimate": "carbon_core.meters.ram_estimate:RamEstimateMeter",
    "nvml": "carbon_core.meters.nvml:NvmlMeter",
    "amd": "carbon_core.meters.amd:AmdMeter",
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
    "amd": "gpu",
}
HOST_METERS = ("rapl", "pyrapl", "cpu-estimate", "ram-estimate")
GPU_METERS = ("nvml", "amd")
#: the entry-point group of plug-in meters (see the module docstring)
PLUGIN_GROUP = "carbon_core.meters"
NVML_LIBRARY = "libnvidia-ml.so.1"
NVML_NOT_FOUND = (
    f"NVML library {NVML_LIBRARY} not found: no NVIDIA driver on this machine "
    "(or it is not on the loader path); GPU energy is not measured"
)


class HardwareAbsent(MeterUnavailable):
    """The hardware is not on this machine at all (no driver library, no ROCm, no driver
    loaded, no device): nothing to fix when another meter measures that component."""


def check_measured_once(meters: str | tuple[str | Meter, ...]) -> None:
    """``ValueError`` when an explicit meter list measures one component twice (e.g.
    ``["rapl", "cpu-estimate"]``, or your own GPU meter beside ``"nvml"``): the energy
    would be counted twice. Named meters count by :data:`MEASURES`, your own by their channels.
    ``"nvml"`` and ``"amd"`` measure different GPUs and may go together.
    """
    if meters == "auto":
        return
    seen: dict[str, list[str]] = {}
    for item in meters:
        if isinstance(item, Meter):
            label, components = item.name, {c.component for c in item.channels}
        else:
            label, components = item, {measures(item)}
        for component in sorted(components):
            before = seen.setdefault(component, [])
            # NVIDIA's and AMD's GPUs are two vendors' devices: those two may go together
            clash = next((b for b in before if b == label or not {b, label} <= set(GPU_METERS)), None)
            if clash is not None:
                shown = [m if isinstance(m, str) else m.name for m in meters]
                raise ValueError(
                    f"meters={shown!r}: {clash} and {label} both measure the {component}, "
                    "so its energy would be counted twice; keep one of them"
                )
            before.append(label)


def meter_class(name: str) -> Callable[..., Meter]:
    """The class of the meter called ``name`` (its module imported now): built-in or plug-in."""
    if name in METERS:
        from importlib import import_module

        module, _, cls = METERS[name].partition(":")
        factory: Callable[..., Meter] = getattr(import_module(module), cls)
        return factory
    if name in plugins():
        return _plugin_class(name)
    raise ValueError(f"meters: unknown meter {name!r}")


def known_meter(name: object) -> bool:
    """Whether ``name`` names a built-in meter or an installed plug-in (configuration checks)."""
    return isinstance(name, str) and (name in METERS or name in plugins())


def measures(name: str) -> Component:
    """The component the meter called ``name`` measures (a plug-in's class is imported)."""
    if name in MEASURES:
        return MEASURES[name]
    return _plugin_component(_plugin_class(name), name)


# -- plug-ins ------------------------------------------------------------------------------

_plugin_cache: tuple[Any, dict[str, Any]] | None = None


def _path_key() -> tuple[tuple[str, float], ...]:
    """sys.path with each folder's mtime: installing a package changes it."""
    out = []
    for entry in sys.path:
        try:
            out.append((entry, os.stat(entry or ".").st_mtime))
        except OSError:
            out.append((entry, -1.0))
    return tuple(out)


def _declares_group() -> bool:
    """Whether any installed distribution on sys.path declares the plug-in group (a scan of
    ``entry_points.txt`` files, about 1 ms, spares importing importlib.metadata, about 30)."""
    marker = f"[{PLUGIN_GROUP}]"
    for entry in sys.path:
        try:
            folder = os.scandir(entry or ".")
        except OSError:
            continue
        with folder:
            for dist in folder:
                if not dist.name.endswith((".dist-info", ".egg-info")):
                    continue
                try:
                    with open(os.path.join(dist.path, "entry_points.txt"), encoding="utf-8") as fh:
                        if marker in fh.read():
                            return True
                except OSError:
                    continue
    return False


def plugins() -> dict[str, Any]:
    """The installed plug-in meters by name (entry points of :data:`PLUGIN_GROUP`), found
    again whenever sys.path or one of its folders changes."""
    global _plugin_cache
    key = _path_key()
    if _plugin_cache is not None and _plugin_cache[0] == key:
        return _plugin_cache[1]
    found: dict[str, Any] = {}
    if _declares_group():
        from importlib import metadata

        eps: Any = metadata.entry_points()
        group = eps.select(group=PLUGIN_GROUP) if hasattr(eps, "select") else eps.get(PLUGIN_GROUP, ())
        for ep in group:
            found.setdefault(ep.name, ep)
    _plugin_cache = (key, found)
    return found


def _plugin_class(name: str) -> Callable[..., Meter]:
    """The plug-in's class, checked against the contract (ValueError says what is wrong)."""
    try:
        obj = plugins()[name].load()
    except Exception as exc:
        raise ValueError(f"meters: plug-in meter {name!r} failed to load ({exc!r})") from exc
    if not (isinstance(obj, type) and issubclass(obj, Meter)):
        raise ValueError(f"meters: plug-in meter {name!r} is {obj!r}, not a Meter subclass")
    if getattr(obj, "name", None) != name:
        raise ValueError(f"meters: plug-in meter {name!r} calls itself {getattr(obj, 'name', None)!r}")
    _plugin_component(obj, name)
    return obj


def _plugin_component(cls: Any, name: str) -> Component:
    component = getattr(cls, "measures", None)
    if component not in COMPONENTS:
        raise ValueError(
            f"meters: plug-in meter {name!r} has measures={component!r}; expected one of {COMPONENTS}"
        )
    found: Component = component
    return found


def _plugins_measuring(component: Component, faults: FaultLog) -> list[str]:
    """The usable plug-in names that measure ``component``, in name order (a broken plug-in
    is one warning)."""
    names = []
    for name in sorted(plugins()):
        if name in METERS:
            faults.warn(
                f"meter:plugin:{name}:shadowed",
                f"plug-in meter {name!r} ignored: a built-in meter has that name",
            )
            continue
        try:
            if measures(name) == component:
                names.append(name)
        except ValueError as exc:
            faults.warn(f"meter:plugin:{name}", f"{exc}; it is not used")
    return names


def nvml_library_missing() -> bool:
    """True when pynvml, once imported, could only fail with :data:`NVML_NOT_FOUND`.

    The same ``dlopen`` pynvml makes (``CDLL("libnvidia-ml.so.1")``, on Linux), without
    importing pynvml (tens of milliseconds) on a machine that has no NVIDIA driver, whether
    or not pynvml is installed (without the driver, installing it would not help). False
    where pynvml is already imported.
    """
    if "pynvml" in sys.modules or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return True
    return False


def _build(name: str, faults: FaultLog, kwargs: dict[str, Any]) -> Meter:
    if name == "nvml" and nvml_library_missing():
        raise HardwareAbsent(NVML_NOT_FOUND)
    return meter_class(name)(faults, **kwargs)


@dataclass(frozen=True)
class _Options:
    gpus: Any
    processes: ProcessSelector | None
    local_rank: int | None
    tag: str = ""

    def kwargs(self, name: str) -> dict[str, Any]:
        if name in GPU_METERS:
            tag = {"tag": self.tag} if self.tag else {}
            return {"gpus": self.gpus, "local_rank": self.local_rank, **tag}
        if name in ("cpu-estimate", "ram-estimate") and self.processes is not None:
            return {"processes": self.processes}
        if name not in METERS:  # a plug-in: the options of its component (module docstring)
            if measures(name) == "gpu":
                return {"gpus": self.gpus, "local_rank": self.local_rank}
            return {"processes": self.processes}
        return {}


def _try(
    name: str,
    faults: FaultLog,
    opts: _Options,
    why: str = "{}",
    level: int = logging.WARNING,
    missing: list[tuple[str, MeterUnavailable]] | None = None,
) -> Meter | None:
    """The meter, or None after one warning: ``why`` formats the reason into the message.
    With ``missing``, a :class:`HardwareAbsent` is appended there instead of warned about."""
    try:
        return _build(name, faults, opts.kwargs(name))
    except HardwareAbsent as exc:
        if missing is None:
            faults.warn(f"meter:unavailable:{name}", why.format(f"{name}: {exc}"), level)
        else:
            missing.append((name, exc))
    except MeterUnavailable as exc:
        faults.warn(f"meter:unavailable:{name}", why.format(f"{name}: {exc}"), level)
    except Exception as exc:  # a broken meter must not stop the others
        faults.warn(f"meter:error:{name}", f"{name} failed to start: {exc!r}")
    return None


def _gpu_meters(faults: FaultLog, opts: _Options) -> list[Meter]:
    """Every GPU meter that works here: the built-in ones, then the plug-ins."""
    built: list[Meter] = []
    missing: list[tuple[str, MeterUnavailable]] = []
    why = "GPU energy is not measured ({})"
    for name in (*GPU_METERS, *_plugins_measuring("gpu", faults)):
        meter = _try(name, faults, _tagged(name, [m.name for m in built], opts), why, logging.INFO, missing)
        if meter is not None:
            built.append(meter)
    for name, exc in missing:
        if built:  # another vendor's GPUs are measured: this library's absence is no fault
            logger.debug("%s: %s", name, exc)
        else:
            faults.warn(f"meter:unavailable:{name}", why.format(f"{name}: {exc}"), logging.INFO)
    return built


def _tagged(name: str, beside: Any, opts: _Options) -> _Options:
    """GPUs of two vendors on one machine: the AMD channels are named gpu:amd<N>."""
    if name == "amd" and "nvml" in beside:
        return _Options(opts.gpus, opts.processes, opts.local_rank, "amd")
    return opts


def _first(names: list[str], faults: FaultLog, opts: _Options, why: str = "{}") -> Meter | None:
    for name in names:
        if (meter := _try(name, faults, opts, why)) is not None:
            return meter
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
            elif (host or item not in HOST_METERS) and (m := _try(item, faults, _tagged(item, names, opts))):
                built.append(m)
        return _without_ram_estimate_if_counted(built, faults)

    meters: list[Meter] = _gpu_meters(faults, opts) if gpus != "none" else []
    covers_cpu = any(getattr(m, "covers_cpu", False) for m in meters)
    if not host or covers_cpu:
        return meters
    rapl = _try("rapl", faults, opts, "CPU energy is estimated from CPU time, not measured ({})")
    cpu = (
        rapl
        if rapl is not None
        else _first([*_plugins_measuring("cpu", faults), "cpu-estimate"], faults, opts)
    )
    if cpu is not None:
        meters.append(cpu)
    if not _ram_counted(meters):
        ram = _first([*_plugins_measuring("ram", faults), "ram-estimate"], faults, opts)
        if ram is not None:
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
