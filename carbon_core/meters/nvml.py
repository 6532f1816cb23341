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

Which GPUs (``gpus``):

* ``"auto"`` (default): those this process uses. ``CUDA_VISIBLE_DEVICES`` (indices, ``GPU-``
  UUIDs or unique UUID prefixes, ``MIG-`` UUIDs; parsed like CUDA, up to the first entry
  that names no device) is mapped to NVML devices. NVML numbers GPUs in PCI bus order. With
  ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` CUDA indices are NVML indices. With CUDA's default
  ``FASTEST_FIRST`` they are too wherever the GPUs are all the same model (CUDA breaks the
  tie by PCI bus id); on a machine with mixed models an index subset may name other
  GPUs than CUDA means, so the meter says so once and advises UUIDs or ``PCI_BUS_ID``.
  Among those devices, the ones whose compute-process list
  (``nvmlDeviceGetComputeRunningProcesses``) holds this process's pid are preferred when
  there are any (the process has a CUDA context there). Without ``CUDA_VISIBLE_DEVICES``
  and without a context: every GPU. Create the meter after the framework has put the model
  on its GPU, or pass ``gpus`` explicitly, so that processes sharing a node do not each
  count every GPU. ``CUDA_VISIBLE_DEVICES`` set but naming no GPU means the process uses
  none: :class:`MeterUnavailable`.
* ``"all"``: every GPU NVML sees.
* a sequence of NVML indices or UUIDs (or a comma-separated string of them).

MIG: NVML reports energy and power for the whole physical GPU, never per MIG instance.
A ``MIG-`` UUID is mapped to its parent GPU (so the parent's whole energy is counted; two
processes on two instances of one GPU would each count all of it). If the parent cannot
be found, the meter warns and goes on without that entry; when no entry could be mapped
it falls back to the GPUs listing this process, else to all GPUs.

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


@dataclass
class _Gpu:
    """One NVML device: identity, handle, and what was measured on it."""

    index: int
    name: str
    uuid: str
    handle: Any
    method: Method = "counter"
    last_mj: int = 0
    total_mj: int = 0
    integrator: PowerIntegrator = field(default_factory=PowerIntegrator)
    alive: bool = True

    @property
    def channel(self) -> str:
        return f"gpu:{self.index}"

    @property
    def label(self) -> str:
        return f"gpu:{self.index} {self.name} ({self.uuid})"

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

    ``gpus``: ``"auto"``, ``"all"``, or NVML indices / UUIDs; ``env`` replaces
    ``os.environ`` for ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER``; ``clock`` (seconds,
    monotonic) times the power samples of ``power-sampled`` channels. ``local_rank`` (set in
    distributed jobs) picks the visible GPU of that index under ``"auto"`` when this process
    has no CUDA context yet, so two ranks of a node never measure the same GPU.
    ``covers_cpu`` is True when a measured device is a Grace Hopper module.
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
            return (
                "NVML library libnvidia-ml.so.1 not found: no NVIDIA driver on this machine "
                "(or it is not on the loader path); GPU energy is not measured"
            )
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

        if gpus == "auto":
            selected = self._auto(devices, env)
        elif gpus == "all":
            selected = devices
        else:
            selected = self._explicit(devices, gpus)

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

    def _explicit(self, devices: list[_Gpu], gpus: str | Sequence[int | str]) -> list[_Gpu]:
        entries = gpus.split(",") if isinstance(gpus, str) else list(gpus)
        chosen: list[_Gpu] = []
        for entry in entries:
            gpu = self._resolve(devices, entry)
            if gpu is None:
                seen = ", ".join(g.label for g in devices)
                raise ValueError(f"gpus={gpus!r}: no NVIDIA GPU {entry!r} on this machine (NVML sees {seen})")
            if gpu not in chosen:
                chosen.append(gpu)
        return chosen

    def _auto(self, devices: list[_Gpu], env: Mapping[str, str]) -> list[_Gpu]:
        visible = env.get("CUDA_VISIBLE_DEVICES")
        candidates = devices if visible is None else self._visible(devices, visible)
        if not candidates and visible is not None and "MIG-" in visible.upper():
            candidates = devices  # unmapped MIG entries were warned about; narrow by pid below
        if not candidates:
            raise MeterUnavailable(
                f"CUDA_VISIBLE_DEVICES={visible!r} makes no NVIDIA GPU visible to this process"
            )
        rank = self.local_rank
        if rank is not None and len(candidates) > 1 and rank < len(candidates):
            # Distributed: one GPU per local rank, as torchrun and Lightning assign them, so no
            # two ranks of a node measure the same GPU, even when a rank also holds a stray
            # context on another GPU (NCCL set up before set_device, torch.load without
            # map_location) and NVML lists it there too.
            return [candidates[rank]]
        pid = os.getpid()
        mine = [g for g in candidates if pid in self._pids(g)]
        if mine:
            return mine
        if visible is not None:
            self._check_order(devices, candidates, visible, env)
        return candidates

    def _visible(self, devices: list[_Gpu], visible: str) -> list[_Gpu]:
        """CUDA_VISIBLE_DEVICES mapped to NVML devices, read like CUDA reads it."""
        chosen: list[_Gpu] = []
        for raw in visible.split(","):
            entry = raw.strip()
            gpu = self._resolve(devices, entry)
            if gpu is None:
                if entry.upper().startswith("MIG-"):
                    self.faults.warn(
                        f"nvml:mig:{entry}",
                        f"NVML: cannot find the GPU holding MIG device {entry} from "
                        "CUDA_VISIBLE_DEVICES; it is skipped (if nothing else is visible, the GPUs "
                        "running this process are measured, else all GPUs)",
                    )
                    continue
                if entry:
                    self.faults.warn(
                        "nvml:cuda-visible-devices",
                        f"NVML: CUDA_VISIBLE_DEVICES={visible!r} entry {entry!r} names no GPU; "
                        "like CUDA, the entries from there on are ignored",
                    )
                break
            if gpu not in chosen:
                chosen.append(gpu)
        return chosen

    def _resolve(self, devices: list[_Gpu], entry: int | str) -> _Gpu | None:
        """The device an NVML index, GPU UUID (or unique prefix) or MIG UUID names."""
        if isinstance(entry, int) or entry.strip().isdigit():
            index = int(entry)
            return next((g for g in devices if g.index == index), None)
        text = entry.strip()
        if text.upper().startswith("MIG-"):
            return self._mig_parent(devices, text)
        if not text.upper().startswith("GPU-"):
            return None
        matches = [g for g in devices if g.uuid.lower().startswith(text.lower())]
        return matches[0] if len(matches) == 1 else None

    def _mig_parent(self, devices: list[_Gpu], mig_uuid: str) -> _Gpu | None:
        # Legacy form MIG-GPU-<parent uuid>/<gi>/<ci> names its parent directly.
        if mig_uuid.upper().startswith("MIG-GPU-"):
            return self._resolve(devices, mig_uuid[4:].split("/")[0])
        nvml = self._nvml
        try:
            mig = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
            parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
            uuid = _text(nvml.nvmlDeviceGetUUID(parent))
        except nvml.NVMLError:
            return None
        return next((g for g in devices if g.uuid == uuid), None)

    def _pids(self, gpu: _Gpu) -> set[int]:
        try:
            processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)
        except Exception:  # NOT_SUPPORTED, old driver: this is only a preference
            return set()
        return {int(p.pid) for p in processes}

    def _check_order(
        self, devices: list[_Gpu], chosen: list[_Gpu], visible: str, env: Mapping[str, str]
    ) -> None:
        """Warn when CUDA's default device order may differ from NVML's for these indices."""
        by_index = any(e.strip().isdigit() for e in visible.split(","))
        mixed = len({g.name for g in devices}) > 1
        if (
            by_index
            and mixed
            and len(chosen) < len(devices)
            and env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") != "PCI_BUS_ID"
        ):
            self.faults.warn(
                "nvml:device-order",
                f"NVML: CUDA_VISIBLE_DEVICES={visible!r} uses indices on a machine with mixed "
                "GPU models, where CUDA's default FASTEST_FIRST order may differ from NVML's "
                "PCI order; measuring NVML indices. Set CUDA_DEVICE_ORDER=PCI_BUS_ID or use "
                "GPU UUIDs to be sure.",
            )

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

    def power_w(self) -> dict[str, float]:
        """Instant power (W) per live channel, from ``nvmlDeviceGetPowerUsage``."""
        nvml = self._nvml
        out: dict[str, float] = {}
        with self._lock:
            if self._closed:
                return out
            for gpu in self._gpus:
                if gpu.alive:
                    try:
                        out[gpu.channel] = nvml.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0
                    except nvml.NVMLError:
                        continue
        return out

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
