"""What the GPU meters share: counters and power readings turned into joules, the same way
for every vendor (:mod:`~carbon_core.meters.nvml`, :mod:`~carbon_core.meters.amd`).

A vendor meter subclasses :class:`GpuMeter` and supplies the library calls (open, list the
devices, read a counter, read the power, shut down); everything else is here, once:

* which GPUs (:func:`~carbon_core.meters.gpu_selection.select_gpus`, with the vendor's
  environment variables);
* the method per GPU: ``counter`` where the energy counter answers, else ``power-sampled``
  (the power readout integrated with the trapezoid rule between reads), else the GPU is not
  measured, with one warning;
* optionally (``verify_s`` > 0), trust but verify: at start the counter is compared with the
  power readout over ``verify_s`` seconds, and a counter that disagrees by more than
  ``verify_factor`` either way is dropped for power sampling, with one warning;
* counters read as deltas of integer ticks, so there is no sampling error; a counter that
  goes backwards (driver reload, GPU reset) counts nothing for that interval and is re-based,
  with one warning;
* a GPU that fails mid-run (lost, NOT_SUPPORTED, any library error) keeps the joules counted
  so far, is warned about once and is not read again;
* one physical GPU (a :class:`Source`) may feed several channels, each a share of it (AMD
  partitions); every other vendor feeds one channel per GPU with share 1.

Implausible readings (more than a GPU can draw) are rejected downstream, for every meter
alike (:class:`carbon_core.accounting.Accounting`).
"""

from __future__ import annotations

import abc
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, Meter, MeterUnavailable, Method, PowerIntegrator
from carbon_core.meters.gpu_selection import GpuInfo, Vendor, select_gpus


@dataclass(eq=False)
class Source:
    """One physical GPU as measured: its counter or its power readings, and their joules."""

    label: str  # names it in messages
    key: str  # names it in fault keys: "gpu:0"
    handle: Any
    method: Method = "counter"
    last: int = 0  # the counter's last reading, in ticks
    ticks: int = 0  # ticks counted since the start
    tick_uj: float = 1000.0  # µJ per tick
    unit: str = "mJ"  # a tick, in messages
    integrator: PowerIntegrator = field(default_factory=PowerIntegrator)
    alive: bool = True
    #: the start-up check: counter joules / power joules over the window (None: not checked)
    check: float | None = None

    @property
    def joules(self) -> float:
        if self.method == "counter":
            return self.ticks * self.tick_uj / 1e6  # mJ ticks: exactly ticks / 1000, rounded once
        return self.integrator.joules


@dataclass(frozen=True)
class Feed:
    """One channel: a GPU the process uses, and its share of the physical GPU measured."""

    gpu: GpuInfo
    source: Source
    share: float = 1.0


class GpuMeter(Meter):
    """Cumulative joules of the GPUs this process uses; a vendor supplies the library calls.

    ``gpus``, ``env`` (replaces ``os.environ``) and ``local_rank``: which GPUs, as
    :func:`~carbon_core.meters.gpu_selection.select_gpus` takes them. ``clock`` (seconds,
    monotonic) times the power samples; ``sleep`` waits out the start-up check. ``tag``
    names the channels ``gpu:<tag><index>`` (default ``gpu:<index>``).
    """

    vendor: Vendor
    #: the start-up counter-vs-power window, in seconds (0: no check)
    verify_s: float = 0.0
    #: a counter within this factor of the power readout (either way) is trusted
    verify_factor: float = 5.0

    def __init__(
        self,
        faults: FaultLog | None = None,
        gpus: str | Sequence[int | str] = "auto",
        env: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        local_rank: int | None = None,
        tag: str = "",
    ) -> None:
        super().__init__(faults)
        self.tag = tag  # channels gpu:<tag><index>: a second vendor's GPUs on one machine
        self._clock, self._sleep = clock, sleep
        self.local_rank = local_rank
        self._lock = threading.Lock()
        self._closed = True
        self._feeds: list[Feed] = []
        self._errors: tuple[type[BaseException], ...] = ()
        self._open()
        self._closed = False
        try:
            self._setup(gpus, os.environ if env is None else env)
        except BaseException:
            self.close()
            raise

    # -- what a vendor supplies ------------------------------------------------------

    @abc.abstractmethod
    def _open(self) -> None:
        """Import and initialise the library, set ``self._errors``; MeterUnavailable if not."""

    @abc.abstractmethod
    def _devices(self) -> Sequence[GpuInfo]:
        """The GPUs the library lists, in the order the runtime's device indices count them."""

    @abc.abstractmethod
    def _counter(self, handle: Any) -> tuple[int, float, str]:
        """The energy counter: (ticks, µJ per tick, a tick in words); raises when absent."""

    @abc.abstractmethod
    def _power_w(self, handle: Any) -> float:
        """The power readout in W; raises when absent."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """Release the library (once)."""

    def _pids(self, gpu: Any) -> Collection[int]:
        """The pids with a context on gpu (empty when unknown)."""
        return ()

    def _parent(self, uuid: str) -> str | None:
        """The UUID of the GPU holding a partition named in the environment, if known."""
        return None

    def _feeds_for(self, selected: Sequence[Any]) -> list[Feed]:
        """The channels for the selected GPUs: by default each is its own source, share 1."""
        return [Feed(g, Source(self.label(g), self.channel(g), getattr(g, "handle", None))) for g in selected]

    def _power_problem(self, source: Source, watts: float) -> str | None:
        """Why a power readout taken at start cannot be trusted (None: it can)."""
        return None

    def _describe(self) -> dict[str, Any]:
        """Vendor facts for ``info`` (driver, notes); may replace ``devices``."""
        return {}

    def _explain(self, exc: BaseException) -> str:
        """A library error in words, for messages."""
        return str(exc)

    # -- construction ---------------------------------------------------------------

    def _setup(self, gpus: str | Sequence[int | str], env: Mapping[str, str]) -> None:
        devices = self._devices()
        selected = select_gpus(
            self.vendor,
            devices,
            gpus,
            env,
            self.local_rank,
            self.faults,
            pids=self._pids,
            parent=self._parent,
        )
        feeds = self._feeds_for(selected)
        sources = list(dict.fromkeys(f.source for f in feeds))
        usable = [s for s in sources if self._probe(s)]
        if self.verify_s > 0:
            usable = self._verify(usable)
        self._feeds = [f for f in feeds if f.source in usable]
        if not self._feeds:
            labels = ", ".join(g.label for g in selected)
            raise MeterUnavailable(f"no selected GPU reports energy or power ({labels})")
        self.channels = tuple(Channel(self.channel(f.gpu), "gpu", f.source.method) for f in self._feeds)
        self.info = {
            "devices": [self.label(f.gpu) for f in self._feeds],
            "gpus": [self._gpu_info(f) for f in self._feeds],
            **self._describe(),
        }

    def channel(self, gpu: GpuInfo) -> str:
        return f"gpu:{self.tag}{gpu.index}"

    def label(self, gpu: GpuInfo) -> str:
        return f"{self.channel(gpu)} {gpu.name} ({gpu.uuid})"

    def _gpu_info(self, feed: Feed) -> dict[str, Any]:
        g, s = feed.gpu, feed.source
        out: dict[str, Any] = {"index": g.index, "name": g.name, "uuid": g.uuid, "method": s.method}
        if s.check is not None:
            out["counter_vs_power"] = round(s.check, 4)
        return out

    @property
    def methods_used(self) -> set[Method]:
        return {f.source.method for f in self._feeds}

    def _warn_unmeasured(self, source: Source, why: str) -> None:
        self.faults.warn(
            f"{self.vendor.key}:{source.key}:unmeasurable",
            f"{self.vendor.library}: {source.label} {why}; it is not measured",
        )

    def _probe(self, source: Source) -> bool:
        """Choose the method for a source and take its first reading; False when neither works."""
        try:
            source.last, source.tick_uj, source.unit = self._counter(source.handle)
            source.method = "counter"
            return True
        except self._errors as counter_exc:
            try:
                watts = self._power_w(source.handle)
            except self._errors as power_exc:
                self._warn_unmeasured(
                    source,
                    f"has no energy counter ({self._explain(counter_exc)}) and no power readout "
                    f"({self._explain(power_exc)})",
                )
                return False
            problem = self._power_problem(source, watts)
            if problem:
                self._warn_unmeasured(
                    source, f"has no energy counter ({self._explain(counter_exc)}) and {problem}"
                )
                return False
            source.method = "power-sampled"
            source.integrator.add(watts, self._clock())
            return True

    def _verify(self, sources: list[Source]) -> list[Source]:
        """Compare each counter with the power readout over ``verify_s``; see the module doc."""
        starts: list[tuple[Source, int, float]] = []
        for s in sources:
            if s.method != "counter":
                continue
            try:
                starts.append((s, s.last, self._power_w(s.handle)))
            except self._errors:
                continue  # no power readout: the counter cannot be checked, and is kept
        if not starts:
            return sources
        t0 = self._clock()
        self._sleep(self.verify_s)
        ends = []
        for s, c0, p0 in starts:
            try:
                c1, _, _ = self._counter(s.handle)
                p1 = self._power_w(s.handle)
            except self._errors as exc:
                self._warn_unmeasured(s, f"failed during the start-up check ({self._explain(exc)})")
                s.alive = False
                continue
            ends.append((s, c0, p0, c1, p1))
        t1 = self._clock()
        for s, c0, p0, c1, p1 in ends:
            self._judge(s, c0, p0, c1, p1, t1 - t0, t1)
        return [s for s in sources if s.alive]

    def _judge(self, s: Source, c0: int, p0: float, c1: int, p1: float, dt: float, t1: float) -> None:
        counted = (c1 - c0) * s.tick_uj / 1e6
        expected = 0.5 * (p0 + p1) * dt
        s.last = c1
        if expected <= 0.0 and counted <= 0.0:
            self._warn_unmeasured(s, f"reads 0 W and its energy counter stood still for {dt:.2f} s")
            s.alive = False
            return
        if expected <= 0.0:
            return  # a counter that moves beside a power readout of 0 W: nothing to check against
        s.check = counted / expected
        if 1.0 / self.verify_factor <= s.check <= self.verify_factor:
            return
        lib = self.vendor.library
        self.faults.warn(
            f"{self.vendor.key}:{s.key}:counter-check",
            f"{lib}: the energy counter of {s.label} disagrees with its power readout at start: "
            f"{counted:.4g} J counted against {expected:.4g} J from {0.5 * (p0 + p1):.4g} W over "
            f"{dt:.2f} s (a factor {s.check:.3g}, beyond {self.verify_factor:g}x either way); "
            "its power is sampled instead",
        )
        s.method = "power-sampled"
        s.integrator.add(p1, t1)

    # -- measuring ------------------------------------------------------------------

    def read(self) -> dict[str, float]:
        """Cumulative joules per channel since construction; failed GPUs keep their total."""
        with self._lock:
            if not self._closed:
                for s in dict.fromkeys(f.source for f in self._feeds):
                    if s.alive:
                        self._update(s)
            return {self.channel(f.gpu): f.source.joules * f.share for f in self._feeds}

    def _update(self, s: Source) -> None:
        try:
            if s.method == "counter":
                now, _, _ = self._counter(s.handle)
                if now >= s.last:
                    s.ticks += now - s.last
                else:
                    self.faults.warn(
                        f"{self.vendor.key}:{s.key}:counter-reset",
                        f"{self.vendor.library}: the energy counter of {s.label} went back from "
                        f"{s.last} to {now} ({s.unit}; GPU reset or driver reload); that interval "
                        "counts nothing",
                    )
                s.last = now
            else:
                s.integrator.add(self._power_w(s.handle), self._clock())
        except self._errors as exc:
            s.alive = False
            self.faults.warn(
                f"{self.vendor.key}:{s.key}",
                f"{self.vendor.library}: {s.label} failed ({self._explain(exc)}); its energy stays at "
                f"{s.joules:.3f} J "
                "and it is no longer measured",
            )

    def close(self) -> None:
        """Release the library (once); later reads return the last totals."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._shutdown()
            except self._errors as exc:
                self.faults.warn(
                    f"{self.vendor.key}:shutdown",
                    f"{self.vendor.library}: shutdown failed ({self._explain(exc)})",
                )
