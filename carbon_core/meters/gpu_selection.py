"""Which GPUs a process measures: the selection rules, for any vendor, over plain records.

:func:`select_gpus` takes the devices the vendor library lists (:class:`GpuInfo` records in
the library's index order), the ``gpus`` option and the environment, and returns the devices
to measure. What differs between vendors (names in messages, environment variables, UUID and
partition prefixes) is a :class:`Vendor`; the two library queries it needs (the processes on a
device, the parent of a partition) are handed in as callables. It touches no library itself.

``gpus``:

* ``"auto"`` (default): those this process uses. The ``Vendor.visible_env`` variables (for
  NVIDIA ``CUDA_VISIBLE_DEVICES``; for AMD ``ROCR_VISIBLE_DEVICES``, then
  ``HIP_VISIBLE_DEVICES`` or, where that is unset or empty, ``CUDA_VISIBLE_DEVICES``) are read
  like the runtime reads them: comma-separated indices, UUIDs (``GPU-``) or unique UUID
  prefixes, partition UUIDs (NVIDIA's ``MIG-``), up to the first entry that names no device.
  Each variable that is set narrows the devices the ones before it left, its indices counting
  within them (the first one's count the devices in the order given, the runtime's). A
  group of alternatives (a tuple in ``visible_env``) is one layer: its first variable set
  and not empty, as HIP takes ``HIP_VISIBLE_DEVICES`` over ``CUDA_VISIBLE_DEVICES``. A
  variable set but naming no device means the process uses none: :class:`MeterUnavailable`.
  Where the runtime's default device order may differ from the library's
  (``Vendor.order``; NVIDIA: CUDA's ``FASTEST_FIRST`` against NVML's PCI order, on a
  machine with mixed models) and a variable selects by index, the selection warns once.
  Among these candidates: in a distributed job (``local_rank`` set, several candidates) the
  one of that index, one GPU per local rank, so two ranks of a node never measure the same
  GPU; otherwise those listing this process's pid when there are any (the process has a
  context there), else all of them. So create the meter after the framework has put the
  model on its GPU, or pass ``gpus``, lest processes sharing a node each count every GPU.
* ``"all"``: every device.
* a sequence of indices or UUIDs (or a comma-separated string of them); an entry that names
  no device is a ``ValueError``.

Partitions (NVIDIA MIG): a partition UUID counts as its parent GPU (the library measures
whole GPUs only). The legacy form ``MIG-GPU-<parent uuid>/<gi>/<ci>`` names its parent
directly; otherwise ``parent`` asks the library. A partition whose parent cannot be
found is warned about and skipped; when no entry of the variable could be mapped, it leaves
the candidates as they were (every device, for the first variable), then narrowed as above.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from carbon_core.faults import FaultLog
from carbon_core.meters.base import MeterUnavailable


@dataclass
class GpuInfo:
    """One physical GPU as the vendor library lists it."""

    index: int
    name: str
    uuid: str

    @property
    def channel(self) -> str:
        return f"gpu:{self.index}"

    @property
    def label(self) -> str:
        return f"gpu:{self.index} {self.name} ({self.uuid})"


@dataclass(frozen=True)
class DeviceOrder:
    """A runtime whose default device order may differ from the library's on mixed models."""

    variable: str  # CUDA_DEVICE_ORDER
    default: str  # FASTEST_FIRST
    matching: str  # PCI_BUS_ID: the value under which runtime and library indices agree


@dataclass(frozen=True)
class Partition:
    """GPU partitions that name their parent in the visible-devices variables (NVIDIA MIG)."""

    prefix: str  # "MIG-"
    name: str  # "MIG device", in messages
    key: str  # "mig", in fault keys


@dataclass(frozen=True)
class Vendor:
    """What the selection rules need to know about one GPU vendor."""

    brand: str  # "NVIDIA": "no NVIDIA GPU ..."
    library: str  # "NVML": prefixes messages; lowercased, the fault keys
    runtime: str  # "CUDA": "like CUDA, the entries from there on are ignored"
    #: in the order the runtime applies them; a tuple is one layer of alternatives, the first
    #: one set and not empty applying (HIP: HIP_VISIBLE_DEVICES, else CUDA_VISIBLE_DEVICES)
    visible_env: tuple[str | tuple[str, ...], ...]
    uuid_prefix: str = "GPU-"
    order: DeviceOrder | None = None
    partition: Partition | None = None

    @property
    def key(self) -> str:
        return self.library.lower()

    def settings(self, env: Mapping[str, str]) -> list[tuple[str, str]]:
        """The (variable, value) pairs in force, in the order the runtime applies them."""
        out = []
        for layer in self.visible_env:
            if isinstance(layer, str):
                if layer in env:
                    out.append((layer, env[layer]))
            elif chosen := next((v for v in layer if env.get(v)), None):
                out.append((chosen, env[chosen]))
        return out


G = TypeVar("G", bound=GpuInfo)


def _no_parent(uuid: str) -> str | None:
    return None


def select_gpus(
    vendor: Vendor,
    devices: Sequence[G],
    gpus: str | Sequence[int | str],
    env: Mapping[str, str],
    local_rank: int | None,
    faults: FaultLog,
    *,
    pids: Callable[[G], Collection[int]],
    parent: Callable[[str], str | None] = _no_parent,
    pid: int | None = None,
) -> list[G]:
    """The devices to measure (see the module docstring); warnings go to ``faults``.

    ``devices``: what the library lists, in its index order. ``pids(device)``: the pids with a
    context on it (empty when unknown); ``parent``: the UUID of the GPU holding a
    partition, None when not found; ``pid``: this process (default ``os.getpid()``). Raises
    :class:`MeterUnavailable` when the environment makes no device visible, ``ValueError``
    for a ``gpus`` entry that names none.
    """
    rules = _Rules(vendor, faults, parent)
    if gpus == "auto":
        return rules.auto(devices, env, local_rank, pids, os.getpid() if pid is None else pid)
    if gpus == "all":
        return list(devices)
    return rules.explicit(devices, gpus)


@dataclass(frozen=True)
class _Rules:
    vendor: Vendor
    faults: FaultLog
    parent: Callable[[str], str | None]

    def explicit(self, devices: Sequence[G], gpus: str | Sequence[int | str]) -> list[G]:
        entries = gpus.split(",") if isinstance(gpus, str) else list(gpus)
        chosen: list[G] = []
        for entry in entries:
            gpu = self.resolve(devices, entry, positional=False)
            if gpu is None:
                seen = ", ".join(g.label for g in devices)
                raise ValueError(
                    f"gpus={gpus!r}: no {self.vendor.brand} GPU {entry!r} on this machine "
                    f"({self.vendor.library} sees {seen})"
                )
            if gpu not in chosen:
                chosen.append(gpu)
        return chosen

    def auto(
        self,
        devices: Sequence[G],
        env: Mapping[str, str],
        rank: int | None,
        pids: Callable[[G], Collection[int]],
        pid: int,
    ) -> list[G]:
        settings = self.vendor.settings(env)
        candidates = list(devices)
        for variable, visible in settings:
            candidates = self.visible(candidates, variable, visible)
        if rank is not None and len(candidates) > 1 and rank < len(candidates):
            # Distributed: one GPU per local rank, as torchrun and Lightning assign them, so no
            # two ranks of a node measure the same GPU, even when a rank also holds a stray
            # context on another GPU (NCCL set up before set_device, torch.load without
            # map_location) and the library lists it there too.
            return [candidates[rank]]
        mine = [g for g in candidates if pid in pids(g)]
        if mine:
            return mine
        for variable, visible in settings:
            self.check_order(devices, candidates, variable, visible, env)
        return candidates

    def visible(self, pool: list[G], variable: str, visible: str) -> list[G]:
        """The devices of pool that one visible-devices variable names, read like the runtime."""
        vendor = self.vendor
        chosen: list[G] = []
        for raw in visible.split(","):
            entry = raw.strip()
            gpu = self.resolve(pool, entry, positional=True)
            if gpu is None:
                partition = self.partition_of(entry)
                if partition:
                    self.faults.warn(
                        f"{vendor.key}:{partition.key}:{entry}",
                        f"{vendor.library}: cannot find the GPU holding {partition.name} "
                        f"{entry} from {variable}; it is skipped (if nothing else is visible, the "
                        "GPUs running this process are measured, else all GPUs)",
                    )
                    continue
                if entry:
                    self.faults.warn(
                        f"{vendor.key}:{variable.lower().replace('_', '-')}",
                        f"{vendor.library}: {variable}={visible!r} entry {entry!r} names no GPU; "
                        f"like {vendor.runtime}, the entries from there on are ignored",
                    )
                break
            if gpu not in chosen:
                chosen.append(gpu)
        if not chosen and vendor.partition and vendor.partition.prefix.upper() in visible.upper():
            return pool  # unmapped partitions were warned about; narrowed by pid afterwards
        if not chosen:
            raise MeterUnavailable(
                f"{variable}={visible!r} makes no {vendor.brand} GPU visible to this process"
            )
        return chosen

    def partition_of(self, entry: str) -> Partition | None:
        """The vendor's partition kind when entry is a partition UUID."""
        partition = self.vendor.partition
        return partition if partition and entry.upper().startswith(partition.prefix.upper()) else None

    def resolve(self, pool: Sequence[G], entry: int | str, *, positional: bool) -> G | None:
        """The device an index, GPU UUID (or unique prefix) or partition UUID names.

        ``positional``: an index counts positions in pool (visible-devices variables), else
        it is a device's ``index`` (the ``gpus`` option).
        """
        if isinstance(entry, int) or entry.strip().isdigit():
            index = int(entry)
            if positional:
                return pool[index] if index < len(pool) else None
            return next((g for g in pool if g.index == index), None)
        text = entry.strip()
        partition = self.partition_of(text)
        if partition:
            return self.partition_parent(pool, text, partition)
        if not text.upper().startswith(self.vendor.uuid_prefix.upper()):
            return None
        matches = [g for g in pool if g.uuid.lower().startswith(text.lower())]
        return matches[0] if len(matches) == 1 else None

    def partition_parent(self, pool: Sequence[G], uuid: str, partition: Partition) -> G | None:
        rest = uuid[len(partition.prefix) :]
        # Legacy form MIG-GPU-<parent uuid>/<gi>/<ci> names its parent directly.
        if rest.upper().startswith(self.vendor.uuid_prefix.upper()):
            return self.resolve(pool, rest.split("/")[0], positional=False)
        parent_uuid = self.parent(uuid)
        return next((g for g in pool if g.uuid == parent_uuid), None) if parent_uuid else None

    def check_order(
        self, devices: Sequence[G], chosen: list[G], variable: str, visible: str, env: Mapping[str, str]
    ) -> None:
        """Warn when the runtime's default device order may differ from the library's."""
        order, lib = self.vendor.order, self.vendor.library
        if order is None:
            return
        by_index = any(e.strip().isdigit() for e in visible.split(","))
        mixed = len({g.name for g in devices}) > 1
        if (
            by_index
            and mixed
            and len(chosen) < len(devices)
            and env.get(order.variable, order.default) != order.matching
        ):
            self.faults.warn(
                f"{self.vendor.key}:device-order",
                f"{lib}: {variable}={visible!r} uses indices on a machine with mixed GPU models, "
                f"where {self.vendor.runtime}'s default {order.default} order may differ from "
                f"{lib}'s PCI order; measuring {lib} indices. Set {order.variable}={order.matching} "
                "or use GPU UUIDs to be sure.",
            )
