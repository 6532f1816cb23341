"""NVIDIA GPU energy through NVML (``nvidia-ml-py``, imported as ``pynvml``).

Per measured GPU, one channel ``gpu:<NVML index>``:

* ``counter`` where ``nvmlDeviceGetTotalEnergyConsumption`` works (Volta and newer): the
  driver's millijoule counter, read as deltas, summed as integers, so there is no sampling
  error. A counter that goes backwards (driver reload, GPU reset) counts nothing for that
  interval and is re-based, with one warning.
* ``power-sampled`` otherwise (older GPUs, some virtual GPUs): ``nvmlDeviceGetPowerUsage``
  (mW) at construction and at every ``read()``, integrated with the trapezoid rule. On
  A100 and newer that reading is itself an average over the last second, so it trails
  the true power by about half a second. Error bound claimed: over an interval of length
  ``h`` between two reads, the trapezoid lies in ``[h*Pmin, h*Pmax]`` as does the true
  energy, so ``|error| <= h * (Pmax - Pmin)`` (power swing within the interval); it is
  zero for a power that is constant or linear between reads. The one-second averaging adds
  at most about ``1 s * |power swing|`` at each end of the measured window.

Which GPUs: the rules of :mod:`carbon_core.meters.gpu_selection`, with ``CUDA_VISIBLE_DEVICES``
and ``CUDA_DEVICE_ORDER``. NVML numbers GPUs in PCI bus order, as CUDA does under
``PCI_BUS_ID`` and, where the GPUs are all one model, under its default ``FASTEST_FIRST``.
MIG: NVML measures whole physical GPUs only, so a ``MIG-`` UUID counts as its parent GPU
(two processes on two instances of one GPU would each count all of it).

Grace Hopper (GH200): the module's counter covers the Grace CPU and its memory as well
as the GPU, so :attr:`NvmlMeter.covers_cpu` is True when such a device (name containing
"GH200" or "Grace Hopper") is measured, and the tracker must not add a CPU meter on top.

NVML is initialised once in the constructor and shut down by :meth:`NvmlMeter.close`. What
every GPU meter shares (methods, counter deltas and resets, failures mid-run) is in
:mod:`carbon_core.meters.gpu_meter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carbon_core.meters.base import MeterUnavailable
from carbon_core.meters.gpu_meter import GpuMeter
from carbon_core.meters.gpu_selection import DeviceOrder, GpuInfo, Partition, Vendor

POWER_NOTE = (
    "power-sampled: nvmlDeviceGetPowerUsage integrated with the trapezoid rule between reads; "
    "on A100 and newer the reading is a 1-second average. Error over an interval of h seconds "
    "is at most h x (the power swing within it), zero for constant or linear power, plus about "
    "1 s x the power swing at each end of the window."
)
MIG_NOTE = "MIG: NVML measures the whole physical GPU; a MIG instance is counted as its parent."
GRACE_HOPPER_NOTE = (
    "Grace Hopper: the module counter includes the Grace CPU and memory; no CPU meter is added on top."
)
NVIDIA = Vendor(
    brand="NVIDIA",
    library="NVML",
    runtime="CUDA",
    visible_env=("CUDA_VISIBLE_DEVICES",),
    order=DeviceOrder("CUDA_DEVICE_ORDER", default="FASTEST_FIRST", matching="PCI_BUS_ID"),
    partition=Partition("MIG-", name="MIG device", key="mig"),
)


@dataclass
class _Gpu(GpuInfo):
    """One NVML device: identity and handle."""

    handle: Any = None


def _text(value: str | bytes) -> str:
    """pynvml returns str (new versions) or bytes (old ones)."""
    return value.decode() if isinstance(value, bytes) else value


def is_grace_hopper(name: str) -> bool:
    return "GH200" in name or "Grace Hopper" in name


class NvmlMeter(GpuMeter):
    """Cumulative joules of the NVIDIA GPUs this process uses (see the module docstring).

    ``gpus``, ``env`` (replaces ``os.environ``) and ``local_rank``: which GPUs, as
    :func:`~carbon_core.meters.gpu_selection.select_gpus` takes them. ``clock`` (seconds,
    monotonic) times the power samples of ``power-sampled`` channels. ``covers_cpu`` is True
    when a measured device is a Grace Hopper module.
    """

    name = "nvml"
    vendor = NVIDIA
    covers_cpu = False

    # -- the library ----------------------------------------------------------------

    def _open(self) -> None:
        try:
            import pynvml
        except ImportError as exc:
            raise MeterUnavailable(
                "NVIDIA GPU energy needs nvidia-ml-py: pip install 'carbon-core[nvidia]'"
            ) from exc
        self._nvml: Any = pynvml
        self._errors = (pynvml.NVMLError,)
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise self._init_failure(exc) from exc

    def _init_failure(self, exc: Exception) -> MeterUnavailable:
        nvml = self._nvml
        code = getattr(exc, "value", None)
        if code == nvml.NVML_ERROR_LIBRARY_NOT_FOUND:
            from carbon_core.meters.registry import NVML_NOT_FOUND, HardwareAbsent  # the registry says it too

            return HardwareAbsent(NVML_NOT_FOUND)
        if code == nvml.NVML_ERROR_DRIVER_NOT_LOADED:
            from carbon_core.meters.registry import HardwareAbsent

            return HardwareAbsent("the NVIDIA driver is not loaded (no GPU, or nvidia-smi fails too)")
        if code == nvml.NVML_ERROR_NO_PERMISSION:
            return MeterUnavailable(
                f"NVML refused access to the GPUs ({exc}); check /dev/nvidia* permissions"
            )
        return MeterUnavailable(f"NVML could not start ({exc})")

    def _devices(self) -> list[_Gpu]:
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            devices = [self._device(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
            self._driver = _text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError as exc:
            raise MeterUnavailable(f"NVML could not list the GPUs ({exc})") from exc
        if not devices:
            raise MeterUnavailable("NVML found no NVIDIA GPU on this machine")
        return devices

    def _device(self, handle: Any) -> _Gpu:
        nvml = self._nvml
        return _Gpu(
            index=int(nvml.nvmlDeviceGetIndex(handle)),
            name=_text(nvml.nvmlDeviceGetName(handle)),
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            handle=handle,
        )

    def _counter(self, handle: Any) -> tuple[int, float, str]:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)), 1000.0, "mJ"

    def _power_w(self, handle: Any) -> float:
        return float(self._nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0

    def _shutdown(self) -> None:
        self._nvml.nvmlShutdown()

    def _parent(self, mig_uuid: str) -> str | None:
        """UUID of the GPU holding a MIG device, None when NVML cannot tell."""
        nvml = self._nvml
        try:
            mig = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
            return _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)))
        except nvml.NVMLError:
            return None

    def _pids(self, gpu: Any) -> set[int]:
        try:
            processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)
        except Exception:  # NOT_SUPPORTED, old driver: this is only a preference
            return set()
        return {int(p.pid) for p in processes}

    def _describe(self) -> dict[str, Any]:
        self.covers_cpu = any(is_grace_hopper(f.gpu.name) for f in self._feeds)
        notes = [MIG_NOTE]
        if "power-sampled" in self.methods_used:
            notes.append(POWER_NOTE)
        if self.covers_cpu:
            notes.append(GRACE_HOPPER_NOTE)
        return {"driver": self._driver, "covers_cpu": self.covers_cpu, "notes": notes}
