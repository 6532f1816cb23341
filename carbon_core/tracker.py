"""The Tracker: meters -> sampler -> accounting (x intensity, x PUE) -> snapshot."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import math
import numbers
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, TypeVar, Union

from carbon_core import __version__
from carbon_core import config as _config
from carbon_core.accounting import Accounting
from carbon_core.budget import CONTINUE, Budget, StopDecision, forecast
from carbon_core.distributed import Role, job_id, job_totals, node_processes, role_from_env
from carbon_core.faults import FaultLog
from carbon_core.intensity.resolve import resolve_source
from carbon_core.intensity.source import IntensitySource
from carbon_core.meters.base import Meter
from carbon_core.meters.processes import ProcessSelector
from carbon_core.runlog import RunLog, new_run_id
from carbon_core.sampler import Sampler
from carbon_core.snapshot import Snapshot

logger = logging.getLogger("carbon_core")
F = TypeVar("F", bound=Callable[..., Any])
#: totals kept across a checkpoint/resume (see Tracker.state_dict)
#: how long stop() waits for a sampler stuck in a meter read (twice at most)
_HUNG_S = 2.5
CARRIED = ("duration_s", "energy_gpu_kwh", "energy_cpu_kwh", "energy_ram_kwh", "co2eq_kg")


class Tracker:
    """Measures the energy and emissions of whatever runs between ``start()`` and ``stop()``.

    Use it directly, as a context manager (``with Tracker(zone="DE") as t:``) or as a
    decorator (``@Tracker()``). Every argument left as ``None`` is read from the matching
    ``CARBON_*`` environment variable, else its default:

    - ``interval_s`` (1.0): sampling interval, in (0, 300] seconds.
    - ``pue`` (1.0): data-centre power usage effectiveness, in [1, 10]; multiplies emissions,
      not energy. 1.0 (no facility overhead) is right for a desktop; a typical cloud data
      centre is 1.1-1.2, an average one about 1.5.
    - ``zone`` / ``intensity`` / ``live`` / ``electricitymaps_token``: where the grid
      intensity comes from (see :mod:`carbon_core.intensity`).
    - ``gpus`` ("auto"): "auto" (the GPUs this process uses), "all", "none", or indices/UUIDs.
    - ``meters`` ("auto"): or an explicit list of ``rapl``, ``pyrapl``, ``cpu-estimate``,
      ``ram-estimate``, ``nvml``, and/or your own :class:`~carbon_core.meters.Meter` instances.
    - ``log_dir`` ("carbon_runs"): where the run log goes; "off" disables it.
    - ``budget_kg`` / ``stop_on`` ("spent" or "predicted"): the carbon budget.

    Bad configuration raises ``ValueError`` here; after construction nothing the tracker
    does raises into the caller: faults are logged once and kept in ``snapshot().warnings``.
    """

    def __init__(
        self,
        interval_s: Optional[float] = None,
        pue: Optional[float] = None,
        zone: Optional[str] = None,
        intensity: Optional[float] = None,
        live: Optional[bool] = None,
        gpus: Union[str, Sequence[Union[int, str]], None] = None,
        log_dir: Union[str, os.PathLike[str], None] = None,
        budget_kg: Optional[float] = None,
        stop_on: Optional[str] = None,
        meters: Union[str, Sequence[Union[str, Meter]], None] = None,
        electricitymaps_token: Optional[str] = None,
        *,
        processes: Optional[ProcessSelector] = None,
        host_meters: Optional[bool] = None,
        role: Optional[Role] = None,
    ) -> None:
        kwargs = {
            "interval_s": interval_s,
            "pue": pue,
            "zone": zone,
            "intensity": intensity,
            "live": live,
            "gpus": gpus,
            "log_dir": log_dir,  # str, bytes or os.PathLike: config checks it
            "budget_kg": budget_kg,
            "stop_on": stop_on,
            "meters": meters,
            "electricitymaps_token": electricitymaps_token,
        }
        self.config = _config.load(kwargs)
        self.faults = FaultLog()
        self._source = resolve_source(self.config, self.faults)
        self._setup_faults = self.faults.mark()  # a restarted run keeps only these
        #: this process's place in a distributed job (from RANK, LOCAL_RANK, SLURM_*, ...)
        #: read again at start(), when a launcher or framework has set up the job
        self.role = role or role_from_env()
        self._role_given = role
        self._processes = processes
        self._host_meters_given = host_meters
        self._lock = threading.RLock()
        self._sample_lock = threading.Lock()
        self._running = False
        self._meters: list[Meter] = []
        self._sampler: Optional[Sampler] = None
        self._runlog: Optional[RunLog] = None
        self._accounting = Accounting(self.config.pue)
        self._t0 = 0.0
        self._intervals = 0
        self._generation = 0
        self._logged_warnings = 0
        self._progress: Optional[float] = None
        self._progress_raw: tuple[Any, Any] = (0, None)
        self._budget: Optional[Budget] = None
        self._job_budget: Optional[Budget] = None
        self.job_decision: StopDecision = CONTINUE
        self.run_id = ""
        self._carry: dict[str, float] = {}
        self.decision: StopDecision = CONTINUE
        self._latest = self._empty_snapshot()

    # -- public surface -------------------------------------------------------------
    def start(self) -> Tracker:
        """Start measuring (a no-op when already running). Never raises."""
        with self._lock:
            if self._running:
                return self
            try:
                self._start()
            except Exception as exc:  # measuring must never break the caller
                self.faults.warn("tracker:start", f"carbon-core could not start measuring: {exc!r}")
            return self

    def snapshot(self) -> Snapshot:
        """The latest totals: a plain read, cheap enough for every training step."""
        return self._latest

    def progress(self, done: float, total: Optional[float]) -> None:
        """Tell the tracker how far the run is (steps or epochs done, out of total).

        Cheap enough for every step: it only stores the pair; the sampler turns it into a
        fraction (ignored unless both are numbers and ``total`` > 0).
        """
        self._progress_raw = (done, total)

    @property
    def should_stop(self) -> StopDecision:
        """The budget decision as of the latest interval (stop=False without a budget)."""
        return self.decision

    def stop(self) -> Snapshot:
        """Take a final reading, stop the sampler and return the final snapshot.

        Idempotent and safe from any thread; the totals cover exactly start to stop.
        """
        with self._lock:
            if not self._running:
                return self._latest
            self._running = False
            try:
                return self._stop()
            except Exception as exc:
                self.faults.warn("tracker:stop", f"carbon-core failed while stopping: {exc!r}")
                return self._latest

    def job_snapshot(self) -> tuple[Snapshot, StopDecision]:
        """The whole job's totals and the budget decision made on them.

        In a distributed job (``torch.distributed`` initialised) this is a collective: every
        rank must call it at the same step, and every rank gets the same totals and the same
        decision. Otherwise it is ``(snapshot(), should_stop)``. Never raises: if the
        collective fails, this rank's own figures are returned with one warning.
        """
        snap = self._latest
        if self._job_budget is None and not self.role.distributed:
            return snap, self.decision
        try:
            job = job_totals(snap)
        except Exception as exc:
            self.faults.warn("distributed:all-reduce", f"job totals unavailable (all-reduce failed: {exc!r})")
            return snap, self.decision
        if self._job_budget is not None and job is not snap:
            self.job_decision = self._job_budget.check(job.co2eq_kg, job.predicted_co2eq_kg)
            return job, self.job_decision
        return job, self.decision

    @property
    def log_path(self) -> Optional[str]:
        """The run log file of the current (or latest) run, or None when logging is off."""
        path = self._runlog.path if self._runlog is not None else None
        return os.fspath(path) if path is not None else None

    @property
    def intensity_source(self) -> IntensitySource:
        """Where the grid intensity comes from: zone, location source, table, live provider."""
        return self._source

    def state_dict(self) -> dict[str, float]:
        """The running totals, to save in a checkpoint (JSON-serialisable floats)."""
        return carried_totals(self._latest)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint: later snapshots include these earlier totals.

        Call before or after ``start()``; values that are not finite numbers >= 0 are ignored.
        In a distributed job only global rank 0 carries them (a checkpoint holds the job's
        totals once; the job total sums every rank).
        """
        carry: dict[str, float] = {}
        for key in CARRIED:
            try:
                value = float(state[key])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(value) and value >= 0:
                carry[key] = value
        self._carry = carry if self.role.rank == 0 else {}
        if not self._running:
            self._latest = self._empty_snapshot()

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<Tracker {state} zone={self._source.zone!r} {self._latest.co2eq_kg:.6g} kgCO2eq>"

    # -- internals -----------------------------------------------------------------
    def _forget_after_fork(self) -> None:
        """In a forked child: the sampler thread did not survive the fork, and the run log and
        meters belong to the parent. The child keeps the last totals and measures nothing."""
        self._running = False
        self._sampler = None
        self._runlog = None
        self._meters = []
        self._lock = threading.RLock()
        self._sample_lock = threading.Lock()

    def _empty_snapshot(self) -> Snapshot:
        return self._publish(0.0)

    def _start(self) -> None:
        self.faults.rewind(self._setup_faults)  # each run reports its own faults once
        self.role = self._role_given or role_from_env()
        if self.role.rank != 0:
            self._carry = {}
        self._host_meters = (
            self.role.host_meters if self._host_meters_given is None else self._host_meters_given
        )
        self._accounting = Accounting(self.config.pue)
        self._intervals = 0
        self._logged_warnings = 0
        self._progress = None
        self._progress_raw = (0, None)
        self.decision = CONTINUE
        budget, stop_on = self.config.budget_kg, self.config.stop_on
        self._budget = Budget(budget, stop_on) if budget else None
        self._job_budget = Budget(budget, stop_on) if budget and self.role.distributed else None
        self.job_decision = CONTINUE
        self.run_id = new_run_id()
        self._meters = self._build_meters()
        for meter in self._meters:
            self._accounting.add_channels(meter.channels)
        self._source.start()
        self._t0 = time.monotonic()
        self._latest = self._publish(0.0)
        self._runlog = self._open_runlog()
        self._running = True
        self._sampler = Sampler(self.config.interval_s, self._tick, self._tick_failed)
        self._sampler.start()
        _RUNNING.add(self)  # stopped at interpreter exit if the caller never does

    def _stop(self) -> Snapshot:
        hung = self._sampler is not None and not self._sampler.stop(timeout_s=_HUNG_S)
        self._sampler = None
        _RUNNING.discard(self)
        if self._sample_lock.acquire(timeout=0.0 if hung else _HUNG_S):
            try:
                self._sample()
            finally:
                self._sample_lock.release()
        else:
            self.faults.warn(
                "tracker:hung",
                "a meter read hung: no final reading; the totals are those of the last interval",
            )
        self._generation += 1  # a read still hanging will not touch this run's totals
        self._source.stop()
        for meter in self._meters:
            try:
                meter.close()
            except Exception as exc:
                self.faults.warn(f"meter:close:{meter.name}", f"meter {meter.name} failed to close: {exc!r}")
        final = self._latest
        if len(final.warnings) != len(self.faults):  # a fault while stopping (meter close)
            final = self._latest = dataclasses.replace(final, warnings=self.faults.messages)
        if self._runlog is not None:
            for message in final.warnings[self._logged_warnings :]:
                self._runlog.warning(self._accounting.t, message)
            self._logged_warnings = len(final.warnings)
            self._runlog.final(final)
        return final

    def _build_meters(self) -> list[Meter]:
        from carbon_core.meters.registry import build_meters

        processes = self._processes
        if processes is None and self._host_meters:
            processes = node_processes(self.role)
        return build_meters(
            self.config.meters,
            gpus=self.config.gpus,
            faults=self.faults,
            processes=processes,
            host=self._host_meters,
            local_rank=self.role.local_rank if self.role.distributed else None,
        )

    def _open_runlog(self) -> Optional[RunLog]:
        if self.config.log_dir is None:
            return None
        import platform

        snap = self._latest
        header = {
            "run_id": self.run_id,
            "job_id": job_id(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(),
            "node_rank": self.role.node_rank,
            "rank": self.role.rank,
            "world_size": self.role.world_size,
            "versions": {"carbon_core": __version__, "python": platform.python_version()},
            "zone": snap.zone,
            "intensity_source": snap.intensity_source,
            "location_source": self._source.location_source,
            "channels": {
                n: {"component": c.component, "method": c.method}
                for n, c in self._accounting.channels.items()
            },
            "devices": list(snap.devices),
            "hardware": {m.name: m.info for m in self._meters},
            "config": self.config.public(),
        }
        try:
            return RunLog.create(self.config.log_dir, header, self.faults)
        except Exception as exc:  # the run log is optional: measuring goes on without it
            self.faults.warn("runlog:create", f"run log disabled: cannot create it ({exc!r})")
            return None

    def _tick(self) -> None:
        with self._sample_lock:
            if self._running:
                self._sample()

    def _tick_failed(self, exc: BaseException) -> None:
        self.faults.warn(f"sampler:{type(exc).__name__}", f"carbon-core sampling failed: {exc!r}")

    def _sample(self) -> None:
        generation = self._generation
        t = time.monotonic() - self._t0
        readings: dict[str, float] = {}
        for meter in list(self._meters):
            try:
                readings.update(self._checked(meter, meter.read()))
            except Exception as exc:
                self._meters.remove(meter)
                self.faults.warn(
                    f"meter:{meter.name}",
                    f"meter {meter.name} failed ({exc!r}); its energy so far is kept, it is no longer read",
                )
        if generation != self._generation:  # the run stopped while a read hung
            return
        now = self._source.current()
        interval = self._accounting.add(t, readings, now.gco2eq_per_kwh, now.source)
        self._intervals += 1
        self._latest = self._publish(t, interval.power_w)
        if self._budget is not None:
            snap = self._latest
            self.decision = self._budget.check(snap.co2eq_kg, snap.predicted_co2eq_kg)
        if self._runlog is not None:
            self._runlog.interval(interval)
            for message in self._latest.warnings[self._logged_warnings :]:
                self._runlog.warning(t, message)
            self._logged_warnings = len(self._latest.warnings)

    def _checked(self, meter: Meter, values: Mapping[str, float]) -> dict[str, float]:
        """The readings that are finite numbers; anything else (NaN, inf, None, a string,
        an int too large for a float) would poison the totals for the rest of the run, so
        it is dropped with one warning per channel and the channel keeps its last value."""
        out: dict[str, float] = {}
        for name, value in values.items():
            try:
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError("not a number")
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError("not finite")
            except (TypeError, ValueError, OverflowError):
                self.faults.warn(
                    f"meter:{meter.name}:{name}:bad-value",
                    f"meter {meter.name} gave {name} = {value!r:.40}, not a finite number of joules; "
                    "that reading is ignored (the channel keeps its last value)",
                )
                continue
            out[name] = number
        return out

    def _fraction_done(self) -> Optional[float]:
        done, total = self._progress_raw
        try:
            fraction = float(done) / float(total) if total else None
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            fraction = None
        if fraction is not None and not math.isfinite(fraction):
            fraction = None
        self._progress = None if fraction is None else max(0.0, min(1.0, fraction))
        return self._progress

    def _publish(self, t: float, power_w: float = 0.0) -> Snapshot:
        acc = self._accounting
        now = self._source.current()
        carry = self._carry
        co2_kg = acc.co2eq_g / 1000.0 + carry.get("co2eq_kg", 0.0)
        parts = {}
        for comp in ("gpu", "cpu", "ram"):
            kwh, before = acc.kwh(comp), carry.get(f"energy_{comp}_kwh")
            parts[comp] = kwh if before is None else (kwh or 0.0) + before
        devices: list[str] = []
        for meter in self._meters:
            devices.extend(meter.info.get("devices", ()))
        return Snapshot(
            duration_s=t + carry.get("duration_s", 0.0),
            energy_kwh=sum(v for v in parts.values() if v is not None),
            energy_gpu_kwh=parts["gpu"],
            energy_cpu_kwh=parts["cpu"],
            energy_ram_kwh=parts["ram"],
            co2eq_kg=co2_kg,
            power_w=power_w,
            intensity_gco2eq_per_kwh=now.gco2eq_per_kwh,
            predicted_co2eq_kg=forecast(co2_kg, self._fraction_done(), self._intervals),
            zone=now.zone,
            intensity_source=now.source,
            methods=acc.methods(),
            warnings=self.faults.messages,
            devices=tuple(devices),
            progress=self._progress,
            pue=self.config.pue,
        )


def carried_totals(snap: Snapshot) -> dict[str, float]:
    """The totals of ``snap`` that a checkpoint keeps (see :meth:`Tracker.state_dict`)."""
    return {key: float(value) for key in CARRIED if (value := getattr(snap, key)) is not None}


#: trackers currently running in this process (for the exit and fork handlers)
_RUNNING: weakref.WeakSet[Tracker] = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    """Interpreter exit: stop every tracker still running, so each run log gets its final
    record. One hook for the process (registering one per ``start()`` would grow CPython's
    atexit table by a slot per run, ``unregister`` never shrinks it)."""
    for tracker in list(_RUNNING):
        tracker.stop()  # never raises


atexit.register(_stop_all_at_exit)


def _after_fork_in_child() -> None:
    for tracker in list(_RUNNING):
        tracker._forget_after_fork()
    _RUNNING.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
