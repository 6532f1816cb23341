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

NVML is initialised once in the constructor and shut down by :meth:`NvmlMeter.close`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, Meter, MeterUnavailable, Method, PowerIntegrator
from carbon_core.meters.gpu_selection import DeviceOrder, GpuInfo, Partition, Vendor, select_gpus

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
    """One NVML device: identity, handle, and what was measured on it."""

    handle: Any
    method: Method = "counter"
    last_mj: int = 0
    total_mj: int = 0
    integrator: PowerIntegrator = field(default_factory=PowerIntegrator)
    alive: bool = True

    @property
    def joules(self) -> float:
        if self.method == "counter":
            return self.total_mj / 1000.0
        return self.integrator.joules


def _text(value: str | bytes) -> str:
    """pynvml returns str (new versions) or bytes (old ones)."""
    return value.decode() if isinstance(value, bytes) else value


def is_grace_hopper(name: str) -> bool:
    return "GH200" in name or "Grace Hopper" in name


class NvmlMeter(Meter):
    """Cumulative joules of the NVIDIA GPUs this process uses (see the module docstring).

    ``gpus``, ``env`` (replaces ``os.environ``) and ``local_rank``: which GPUs, as
    :func:`~carbon_core.meters.gpu_selection.select_gpus` takes them. ``clock`` (seconds,
    monotonic) times the power samples of ``power-sampled`` channels. ``covers_cpu`` is True
    when a measured device is a Grace Hopper module.
    """

    name = "nvml"

    def __init__(
        self,
        faults: FaultLog | None = None,
        gpus: str | Sequence[int | str] = "auto",
        env: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        local_rank: int | None = None,
    ) -> None:
        super().__init__(faults)
        self._clock = clock
        self.local_rank = local_rank
        self._lock = threading.Lock()
        self._closed = True
        self._gpus: list[_Gpu] = []
        self.covers_cpu = False
        try:
            import pynvml
        except ImportError as exc:
            raise MeterUnavailable(
                "NVIDIA GPU energy needs nvidia-ml-py: pip install 'carbon-core[nvidia]'"
            ) from exc
        self._nvml: Any = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise MeterUnavailable(self._init_failure(exc)) from exc
        self._closed = False
        try:
            self._setup(gpus, os.environ if env is None else env)
        except BaseException:
            self.close()
            raise

    # -- construction ---------------------------------------------------------------

    def _init_failure(self, exc: Exception) -> str:
        nvml = self._nvml
        code = getattr(exc, "value", None)
        if code == nvml.NVML_ERROR_LIBRARY_NOT_FOUND:
            from carbon_core.meters.registry import NVML_NOT_FOUND  # the registry's check says it too

            return NVML_NOT_FOUND
        if code == nvml.NVML_ERROR_DRIVER_NOT_LOADED:
            return "the NVIDIA driver is not loaded (no GPU, or nvidia-smi fails too)"
        if code == nvml.NVML_ERROR_NO_PERMISSION:
            return f"NVML refused access to the GPUs ({exc}); check /dev/nvidia* permissions"
        return f"NVML could not start ({exc})"

    def _setup(self, gpus: str | Sequence[int | str], env: Mapping[str, str]) -> None:
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            devices = [self._device(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
            driver = _text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError as exc:
            raise MeterUnavailable(f"NVML could not list the GPUs ({exc})") from exc
        if not devices:
            raise MeterUnavailable("NVML found no NVIDIA GPU on this machine")

        selected = select_gpus(
            NVIDIA, devices, gpus, env, self.local_rank, self.faults, pids=self._pids, parent=self._mig_parent
        )
        for gpu in selected:
            if self._probe(gpu):
                self._gpus.append(gpu)
        if not self._gpus:
            labels = ", ".join(g.label for g in selected)
            raise MeterUnavailable(f"no selected GPU reports energy or power ({labels})")

        self.channels = tuple(Channel(g.channel, "gpu", g.method) for g in self._gpus)
        self.covers_cpu = any(is_grace_hopper(g.name) for g in self._gpus)
        notes = [MIG_NOTE]
        if any(g.method == "power-sampled" for g in self._gpus):
            notes.append(POWER_NOTE)
        if self.covers_cpu:
            notes.append(GRACE_HOPPER_NOTE)
        self.info = {
            "devices": [g.label for g in self._gpus],
            "gpus": [
                {"index": g.index, "name": g.name, "uuid": g.uuid, "method": g.method} for g in self._gpus
            ],
            "driver": driver,
            "covers_cpu": self.covers_cpu,
            "notes": notes,
        }

    def _device(self, handle: Any) -> _Gpu:
        nvml = self._nvml
        return _Gpu(
            index=int(nvml.nvmlDeviceGetIndex(handle)),
            name=_text(nvml.nvmlDeviceGetName(handle)),
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            handle=handle,
        )

    def _probe(self, gpu: _Gpu) -> bool:
        """Choose the method for gpu and take its first reading; False when neither works."""
        nvml = self._nvml
        try:
            gpu.last_mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
            gpu.method = "counter"
            return True
        except nvml.NVMLError as counter_exc:
            try:
                milliwatts = nvml.nvmlDeviceGetPowerUsage(gpu.handle)
            except nvml.NVMLError as power_exc:
                self.faults.warn(
                    f"nvml:{gpu.channel}:unmeasurable",
                    f"NVML: {gpu.label} has no energy counter ({counter_exc}) and no power "
                    f"readout ({power_exc}); it is not measured",
                )
                return False
            gpu.method = "power-sampled"
            gpu.integrator.add(milliwatts / 1000.0, self._clock())
            return True

    def _mig_parent(self, mig_uuid: str) -> str | None:
        """UUID of the GPU holding a MIG device, None when NVML cannot tell."""
        nvml = self._nvml
        try:
            mig = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
            return _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)))
        except nvml.NVMLError:
            return None

    def _pids(self, gpu: _Gpu) -> set[int]:
        try:
            processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)
        except Exception:  # NOT_SUPPORTED, old driver: this is only a preference
            return set()
        return {int(p.pid) for p in processes}

    # -- measuring ------------------------------------------------------------------

    def read(self) -> dict[str, float]:
        """Cumulative joules per channel since construction; failed GPUs keep their total."""
        with self._lock:
            if not self._closed:
                for gpu in self._gpus:
                    if gpu.alive:
                        self._update(gpu)
            return {g.channel: g.joules for g in self._gpus}

    def _update(self, gpu: _Gpu) -> None:
        nvml = self._nvml
        try:
            if gpu.method == "counter":
                mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
                if mj >= gpu.last_mj:
                    gpu.total_mj += mj - gpu.last_mj
                else:
                    self.faults.warn(
                        f"nvml:{gpu.channel}:counter-reset",
                        f"NVML: the energy counter of {gpu.label} went back from "
                        f"{gpu.last_mj} to {mj} mJ (GPU reset or driver reload); that "
                        "interval counts nothing",
                    )
                gpu.last_mj = mj
            else:
                milliwatts = nvml.nvmlDeviceGetPowerUsage(gpu.handle)
                gpu.integrator.add(milliwatts / 1000.0, self._clock())
        except nvml.NVMLError as exc:
            gpu.alive = False
            self.faults.warn(
                f"nvml:{gpu.channel}",
                f"NVML: {gpu.label} failed ({exc}); its energy stays at {gpu.joules:.3f} J "
                "and it is no longer measured",
            )

    def close(self) -> None:
        """Shut NVML down (once); later reads return the last totals."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:
                self.faults.warn("nvml:shutdown", f"NVML: shutdown failed ({exc})")
