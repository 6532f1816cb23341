"""AMD Instinct and Radeon GPU energy through amdsmi (``pip install 'carbon-core[amd]'``).

Per measured GPU, one channel ``gpu:<amdsmi index>``, measured like NVIDIA's (what the two
share is in :mod:`carbon_core.meters.gpu_meter`):

* ``counter`` where ``amdsmi_get_energy_count`` works: the firmware's energy accumulator
  times its resolution (µJ per tick; 15.3 µJ in the readings published in ROCm/amdsmi#38 and
  AMDResearch/hpcfund#21, MI100), read as integer deltas, so there is no sampling error. A
  counter that goes backwards counts nothing for that interval and is re-based, with one
  warning.
* Trust, but verify: at start the counter is read against the power readout over
  :data:`VERIFY_S` seconds. When the counted joules and the power's joules over that window
  differ by more than :data:`VERIFY_FACTOR` either way, the counter is not used: the GPU is
  power-sampled instead, with one warning. Why 5: the faults to catch are far beyond it (a
  counter that never moves, reported on MI100 in ROCm/amdsmi#22 and #38 and
  AMDResearch/hpcfund#21; the accumulator read without its 15.3 µJ resolution, a factor
  15.3; a unit slip, 1,000), and within it lie the honest differences over half a second
  (whole-watt readings; on MI200 and Radeon parts a firmware average that lags a change of
  load). Zeus makes the same check with a factor of 10 (ml-energy/zeus, device/gpu/amd.py),
  which would let a missing resolution (15.3) pass with little margin.
* ``power-sampled`` otherwise: ``amdsmi_get_power_info`` (whole watts: the instantaneous
  ``current_socket_power`` on MI300 and newer, else the firmware's ``average_socket_power``)
  at construction and at every read, integrated with the trapezoid rule.

Which GPUs: the rules of :mod:`carbon_core.meters.gpu_selection` with ROCm's variables, as the
runtime applies them (ROCclr ``rocdevice.cpp``): ``ROCR_VISIBLE_DEVICES`` first, then
``HIP_VISIBLE_DEVICES``, or ``CUDA_VISIBLE_DEVICES`` where that is unset or empty; indices
count HIP's order (amdsmi's ``hip_id``, ROCm 6.4 and newer; amdsmi's own order before), UUIDs
are HIP's ``GPU-<16 hex digits>``. One GPU per local rank in a distributed job.

Partitions (MI300X in DPX, QPX or CPX mode: several logical GPUs on one physical GPU): the
energy counter and the socket power belong to the physical GPU (amdsmi reads them from the
primary partition, XCP 0; ROCm/amdsmi docs, ``conceptual/partition.md``). Each logical GPU is
reported as an equal share, 1/n of its physical GPU's energy (n: its partitions), read once
through the primary partition. The n shares add up to the physical GPU, so however the
partitions are spread over processes, ranks and jobs, the GPU is counted once in all; the
split is even (no partition has a counter of its own), so a busy partition beside idle ones
is given less than it drew and the idle ones more. Partitions of one physical GPU share its
PCI bus and device number; n is the number listed, or more where the partition ids say so.

The library is found where amdsmi looks for it (``ROCM_HOME`` or ``ROCM_PATH``/lib, then
the loader path, then amdsmi's folder, then ``/opt/rocm/lib``), checked before amdsmi is
imported, so a machine without ROCm costs one ``dlopen`` and never sees amdsmi's own
messages on stdout. MI250/MI250X: the second die of each package reports no power of its
own (its power is in the first die's reading; ml-energy/zeus ``device/gpu/amd.py``,
mlco2/codecarbon#1097): such a die is not measured, with a warning, never counted as 0 J.

Proven against a fake ``libamd_smi.so`` (tests/fake_amdsmi) loaded by the real amdsmi
package, not on an AMD GPU.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carbon_core.meters.base import MeterUnavailable
from carbon_core.meters.gpu_meter import Feed, GpuMeter, Source
from carbon_core.meters.gpu_selection import GpuInfo, Vendor
from carbon_core.meters.registry import HardwareAbsent

AMD = Vendor(
    brand="AMD",
    library="AMDSMI",
    runtime="HIP",
    visible_env=("ROCR_VISIBLE_DEVICES", ("HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")),
)
LIBRARY = "libamd_smi.so"
AMD_NOT_FOUND = (
    f"AMD SMI library {LIBRARY} not found (ROCM_HOME, ROCM_PATH, the loader path and /opt/rocm "
    "searched, as amdsmi does): no ROCm on this machine"
)
#: the start-up counter-vs-power window (s) and the factor either way a counter may differ
VERIFY_S = 0.5
VERIFY_FACTOR = 5.0
#: what amdsmi reports for a field a GPU does not support (0xFFFF, or UINT32/UINT64_MAX)
_NOT_AVAILABLE = 0xFFFF
_POWER_FIELDS = ("current_socket_power", "average_socket_power", "socket_power")

COUNTER_NOTE = (
    "counter: amdsmi_get_energy_count's accumulator x its resolution (µJ), read as deltas; "
    f"checked at start against the power readout over {VERIFY_S:g} s, and replaced by power "
    f"sampling when the two differ by more than {VERIFY_FACTOR:g}x either way."
)
POWER_NOTE = (
    "power-sampled: amdsmi_get_power_info (whole watts; current_socket_power on MI300 and newer, "
    "else the firmware's average_socket_power) integrated with the trapezoid rule between reads. "
    "Error over an interval of h seconds: at most h x (the power swing within it) + h x 0.5 W of "
    "rounding; an averaged reading also lags a change of load."
)
PARTITION_NOTE = (
    "partitions: each logical GPU is 1/n of its physical GPU's energy (n partitions), read once "
    "through the primary partition; the shares add up to the physical GPU, which is so counted "
    "once however its partitions are spread over processes. The split is even, not measured."
)


def library_candidates(env: Mapping[str, str], package_dir: str | None) -> list[str]:
    """Where amdsmi's wrapper looks for the library, in its order (amdsmi_wrapper.py,
    ``find_smi_library``)."""
    out = []
    rocm = env.get("ROCM_HOME", env.get("ROCM_PATH"))
    if rocm:
        out.append(os.path.join(rocm, "lib", LIBRARY))
    out.append(LIBRARY)  # the loader path: LD_LIBRARY_PATH, ld.so.cache
    if package_dir:
        out.append(os.path.join(package_dir, LIBRARY))
    out.append(os.path.join(env.get("ROCM_PATH", "/opt/rocm"), "lib", LIBRARY))
    return out


def find_library(env: Mapping[str, str] | None = None, package_dir: str | None = None) -> str | None:
    """The first of :func:`library_candidates` that loads, or None."""
    for where in library_candidates(os.environ if env is None else env, package_dir):
        if os.sep in where and not os.path.exists(where):
            continue
        try:
            ctypes.CDLL(where)
        except OSError:
            continue
        return where
    return None


class _Unreadable(Exception):
    """amdsmi answered, but with no usable value (N/A, a resolution of 0)."""


@dataclass
class _Gpu(GpuInfo):
    """One logical GPU as amdsmi lists it."""

    handle: Any = None
    hip_id: int | None = None
    physical: str = ""  # PCI domain:bus:device, shared by the partitions of one GPU
    partition: int | None = None


def _int(value: Any) -> int | None:
    """amdsmi's integer fields, None for "N/A" (and for its not-available markers)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value < 2**31 else None


class AmdMeter(GpuMeter):
    """Cumulative joules of the AMD GPUs this process uses (see the module docstring).

    Arguments as :class:`~carbon_core.meters.gpu_meter.GpuMeter`; ``sleep`` waits out the
    start-up check (:data:`VERIFY_S`).
    """

    name = "amd"
    vendor = AMD
    verify_s = VERIFY_S
    verify_factor = VERIFY_FACTOR

    # -- the library ----------------------------------------------------------------

    def _open(self) -> None:
        # Where amdsmi would look, before importing it: its import prints to stdout and fails
        # where the library is missing (and a process imports amdsmi only once).
        from importlib.util import find_spec

        module = sys.modules.get("amdsmi")
        try:
            spec = module.__spec__ if module is not None else find_spec("amdsmi")
        except (ImportError, ValueError):
            spec = None
        folder = next(iter(spec.submodule_search_locations or ()), None) if spec else None
        if find_library(package_dir=folder) is None:
            raise HardwareAbsent(AMD_NOT_FOUND)
        try:
            import amdsmi
        except ImportError as exc:
            raise MeterUnavailable(
                "AMD GPU energy needs amdsmi: pip install 'carbon-core[amd]' (amdsmi of your ROCm version)"
            ) from exc
        except Exception as exc:  # a wrapper newer than the library misses symbols: AttributeError
            raise MeterUnavailable(
                f"amdsmi could not bind {LIBRARY} ({exc!r}); install the amdsmi version of your ROCm"
            ) from exc
        self._smi: Any = amdsmi
        self._errors = (amdsmi.AmdSmiException, _Unreadable)
        try:
            amdsmi.amdsmi_init()
        except amdsmi.AmdSmiException as exc:
            raise self._init_failure(exc) from exc

    def _init_failure(self, exc: BaseException) -> MeterUnavailable:
        code = getattr(exc, "err_code", None)
        wrapper = self._smi.amdsmi_wrapper
        if code == wrapper.AMDSMI_STATUS_DRIVER_NOT_LOADED:
            return HardwareAbsent("the amdgpu driver is not loaded (no AMD GPU, or amd-smi fails too)")
        if code == wrapper.AMDSMI_STATUS_NO_PERM:
            return MeterUnavailable(
                f"amdsmi refused access to the GPUs ({self._explain(exc)}); check the permissions of "
                "/dev/kfd and /dev/dri (the render and video groups)"
            )
        return MeterUnavailable(f"amdsmi could not start ({self._explain(exc)})")

    def _explain(self, exc: BaseException) -> str:
        info = getattr(exc, "get_error_info", None)
        return str(info()) if callable(info) else str(exc)

    def _query(self, fn: str, *args: Any) -> Any:
        """An amdsmi call whose answer is optional: None when it fails or does not exist."""
        errors: tuple[type[BaseException], ...] = (AttributeError, *self._errors)
        try:
            return getattr(self._smi, fn)(*args)
        except errors:
            return None

    def _devices(self) -> list[_Gpu]:
        try:
            handles = self._smi.amdsmi_get_processor_handles()
        except self._errors as exc:
            raise MeterUnavailable(f"amdsmi could not list the GPUs ({self._explain(exc)})") from exc
        if not handles:
            raise HardwareAbsent("amdsmi found no AMD GPU on this machine")
        self._all = [self._device(i, h) for i, h in enumerate(handles)]
        hip = [g.hip_id for g in self._all]
        if None not in hip and len(set(hip)) == len(hip):
            return sorted(self._all, key=lambda g: g.hip_id or 0)  # HIP's order: what indices count
        return list(self._all)

    def _device(self, index: int, handle: Any) -> _Gpu:
        asic = self._query("amdsmi_get_gpu_asic_info", handle) or {}
        enum = self._query("amdsmi_get_gpu_enumeration_info", handle) or {}
        kfd = self._query("amdsmi_get_gpu_kfd_info", handle) or {}
        bdf = str(self._query("amdsmi_get_gpu_device_bdf", handle) or f"unknown-{index}.0")
        uuid = str(enum.get("hip_uuid") or "")
        serial = str(asic.get("asic_serial", ""))
        if not uuid.upper().startswith("GPU-") and serial.lower().startswith("0x"):
            uuid = "GPU-" + serial[2:].lower()  # what HIP shows for it (as PyTorch maps them)
        if not uuid:
            uuid = str(self._query("amdsmi_get_gpu_device_uuid", handle) or f"unknown-{index}")
        physical, _, function = bdf.rpartition(".")
        partition = _int(kfd.get("current_partition_id"))
        if partition is None and function.isdigit():
            partition = int(function)  # the BDF's function carries the partition (partition.md)
        return _Gpu(
            index=index,
            name=str(asic.get("market_name") or "AMD GPU"),
            uuid=uuid,
            handle=handle,
            hip_id=_int(enum.get("hip_id")),
            physical=physical,
            partition=partition,
        )

    def _counter(self, handle: Any) -> tuple[int, float, str]:
        reading = self._smi.amdsmi_get_energy_count(handle)
        ticks = reading.get("energy_accumulator", reading.get("power"))  # "power" before amdsmi 6.2.1
        resolution = reading.get("counter_resolution")
        if not isinstance(ticks, int) or not isinstance(resolution, float) or not resolution > 0:
            raise _Unreadable(f"amdsmi_get_energy_count gave {reading!r:.80}")
        if not math.isfinite(resolution):
            raise _Unreadable(f"amdsmi_get_energy_count gave a resolution of {resolution}")
        return ticks, resolution, f"ticks of {resolution:.6g} µJ"

    def _power_w(self, handle: Any) -> float:
        info = self._smi.amdsmi_get_power_info(handle)
        for key in _POWER_FIELDS:
            value = info.get(key)
            if isinstance(value, int) and 0 <= value < _NOT_AVAILABLE:
                return float(value)
        raise _Unreadable("amdsmi_get_power_info reports no power (N/A)")

    def _power_problem(self, source: Source, watts: float) -> str | None:
        if watts > 0.0:
            return None
        return (
            "its power readout reads 0 W: no power of its own is reported (the second die of an "
            "MI250/MI250X reports through the first)"
        )

    def _shutdown(self) -> None:
        self._smi.amdsmi_shut_down()

    def _pids(self, gpu: Any) -> set[int]:
        processes = self._query("amdsmi_get_gpu_process_list", gpu.handle) or ()
        return {int(p["pid"]) for p in processes if isinstance(p, dict) and isinstance(p.get("pid"), int)}

    # -- partitions -----------------------------------------------------------------

    def _feeds_for(self, selected: Sequence[Any]) -> list[Feed]:
        """One source per physical GPU, read through its primary partition; each logical GPU
        a 1/n share of it (see the module docstring)."""
        groups: dict[str, list[_Gpu]] = {}
        for g in self._all:
            groups.setdefault(g.physical, []).append(g)
        sources: dict[str, Source] = {}
        self._shares: dict[int, tuple[int, str]] = {}
        feeds = []
        for g in selected:
            members = groups[g.physical]
            n = max(len(members), 1 + max((m.partition or 0) for m in members))
            primary = next((m for m in members if m.partition == 0), min(members, key=lambda m: m.index))
            if g.physical not in sources:
                label = self.label(primary)
                if n > 1:
                    label = f"physical GPU {g.physical} {primary.name} ({n} partitions, read through {label})"
                sources[g.physical] = Source(label, self.channel(primary), primary.handle)
            if n > 1:
                self._shares[g.index] = (n, g.physical)
            feeds.append(Feed(g, sources[g.physical], 1.0 / n))
        return feeds

    def _describe(self) -> dict[str, Any]:
        devices = []
        for f in self._feeds:
            n, physical = self._shares.get(f.gpu.index, (1, ""))
            part = getattr(f.gpu, "partition", None)
            label = self.label(f.gpu)
            devices.append(
                label if n == 1 else f"{label}: partition {part} of {n} of {physical}, 1/{n} of its energy"
            )
        notes = []
        if "counter" in self.methods_used:
            notes.append(COUNTER_NOTE)
        if "power-sampled" in self.methods_used:
            notes.append(POWER_NOTE)
        if self._shares:
            notes.append(PARTITION_NOTE)
        driver = self._query("amdsmi_get_gpu_driver_info", self._feeds[0].source.handle) or {}
        return {
            "devices": devices,
            "driver": str(driver.get("driver_version", "unknown")),
            "amdsmi": str(getattr(self._smi, "__version__", "unknown")),
            "partitions": {str(i): f"1/{n} of {p}" for i, (n, p) in sorted(self._shares.items())},
            "notes": notes,
        }

    def _gpu_info(self, feed: Feed) -> dict[str, Any]:
        out = super()._gpu_info(feed)
        if feed.share != 1.0:
            out["share"] = feed.share
        return out
