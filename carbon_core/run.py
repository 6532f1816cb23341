"""One measurement, from ``start()`` to ``stop()``: meters -> sampler -> accounting -> snapshot.

A :class:`Run` is made by :meth:`carbon_core.Tracker.start` and lives until that run stops;
a restarted tracker makes a new one. So nothing of one run leaks into the next: a meter
read that hangs past ``stop()`` finishes in a run nobody reads any more, and each run
reports its own faults once (its :class:`~carbon_core.faults.FaultLog` starts from the
tracker's construction warnings).

Threads: the sampler thread calls :meth:`Run.sample` every interval; the training thread
reads :attr:`Run.latest`, an immutable :class:`~carbon_core.snapshot.Snapshot` replaced in
one assignment, so a training step never waits.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Optional

from carbon_core.accounting import Accounting, Carry
from carbon_core.budget import CONTINUE, Budget, StopDecision, forecast
from carbon_core.distributed import Role, job_id, job_totals, node_processes, role_from_env
from carbon_core.faults import FaultLog
from carbon_core.meters.base import COMPONENTS, Meter, checked_read
from carbon_core.phases import PhaseClock, PhaseSplit
from carbon_core.sampler import Sampler
from carbon_core.snapshot import OTHER, Snapshot, marked
from carbon_core.units import Units

if TYPE_CHECKING:
    from carbon_core.config import Config
    from carbon_core.export.group import Exporters
    from carbon_core.intensity.source import IntensitySource
    from carbon_core.intensity.values import Intensity
    from carbon_core.runlog.writer import RunLog

#: how long stop() waits for a sampler stuck in a meter read (twice at most)
HUNG_S = 2.5


class Run:
    """One start -> stop measurement (see the module docstring). Not reused."""

    def __init__(
        self,
        config: Config,
        source: IntensitySource,
        role: Role,
        faults: FaultLog,
        carry: Carry,
        meters: list[Meter],
    ) -> None:
        self.config, self.role, self.faults, self.carry = config, role, faults, carry
        self.source = source
        self.meters = meters
        self.runlog: Optional[RunLog] = None
        self.exporters: Optional[Exporters] = None
        self.accounting = Accounting(config.pue)
        for meter in meters:
            self.accounting.add_channels(meter.channels)
        self.budget = Budget(config.budget_kg, config.stop_on) if config.budget_kg else None
        #: this process's budget decision as of the latest interval (a plain read per step)
        self.decision: StopDecision = CONTINUE
        self.devices = tuple(d for m in meters for d in m.info.get("devices", ()))
        #: what the estimates assumed, from each estimating meter's own method text
        self.assumed = tuple(
            f"{c.component.upper()}: {m.info.get('assumed') or m.info['method']}"
            for m in meters
            for c in m.channels[:1]
            if c.method == "estimated" and (m.info.get("assumed") or m.info.get("method"))
        )
        self.methods = self.accounting.methods()
        self.running = False
        self.started = False
        self.finished = False  # set once stop() has written the final record
        self._stopped = False  # set once stop() has taken (or given up) the final reading
        self._intervals = 0
        self._logged_warnings = 0
        self._progress: tuple[Any, Any] = (0, None)
        self._sample_lock = threading.Lock()
        self._t0 = time.monotonic()
        #: samples and tokens, counted on the training thread
        self.units = Units(faults)
        #: the open phases (training thread) and their split (sampler thread)
        self.phases = PhaseClock(faults)
        self._split = PhaseSplit(self._t0)
        self.latest = self._snapshot(0.0, 0.0, source.current())
        self._sampler = Sampler(config.interval_s, self._tick, self._tick_failed)
        self.run_id = ""

    # -- the training thread --------------------------------------------------------------
    def start(self) -> None:
        """Open the run log (unless it is off), start the intensity source and the sampler."""
        from carbon_core.runlog.writer import new_run_id

        self.started = True
        self.run_id = new_run_id()
        self.runlog = open_log(self) if self.config.log_dir is not None else None
        self.exporters = open_exporters(self) if self.config.export else None
        self.source.start(self.faults)
        self.running = True
        self._sampler.start()

    @property
    def intervals(self) -> int:
        """How many sampler intervals have been accounted."""
        return self._intervals

    def progress(self, done: Any, total: Any) -> None:
        """Store the pair only (cheap for every step); the sampler makes it a fraction."""
        self._progress = (done, total)

    def count(self, samples: Any = None, tokens: Any = None) -> None:
        """Add a step's samples and tokens (cheap for every step; see :class:`Units`)."""
        if self.running:
            self.units.add(samples, tokens)

    def job_snapshot(self) -> tuple[Snapshot, StopDecision]:
        """The job's totals and the decision on them (see :meth:`Tracker.job_snapshot`)."""
        snap = self.latest
        if not self.role.distributed:
            return snap, self.decision
        try:
            job = job_totals(snap)
        except Exception as exc:
            self.faults.warn("distributed:all-reduce", f"job totals unavailable (all-reduce failed: {exc!r})")
            return snap, self.decision
        if self.budget is not None and job is not snap:
            return job, self.budget.check(job.co2eq_kg, job.predicted_co2eq_kg, job=True)
        return job, self.decision

    def stop(self) -> Snapshot:
        """Take the final reading, close the meters and the log; return the final snapshot.

        Resumable: if it is interrupted (Ctrl-C lands inside it), calling it again finishes
        what is left, so the run log always gets its final record (the exit hook retries).
        """
        self.running = False
        self.phases.close_all()  # a phase left open ends here
        hung = not self._sampler.stop(timeout_s=HUNG_S)
        self.source.stop()
        if not self._stopped:
            self._final_reading(hung)
        for meter in self.meters:
            try:
                meter.close()  # idempotent, by the meter contract
            except Exception as exc:
                self.faults.warn(f"meter:close:{meter.name}", f"meter {meter.name} failed to close: {exc!r}")
        final = self.with_all_warnings()
        if self.runlog is not None and not self.finished:
            self._log_new_warnings(self.accounting.t, final)
            self._log_spans(final=True)
            self.runlog.final(final, self.config.embodied_kg_per_hour)
        if self.exporters is not None:
            self.exporters.close()  # the final figures, once; a bounded wait
        self.finished = True
        return final

    def with_all_warnings(self) -> Snapshot:
        """The latest snapshot, made to hold every warning so far (faults while stopping
        come after the last interval's snapshot)."""
        if len(self.latest.warnings) != len(self.faults):
            self.latest = dataclasses.replace(self.latest, warnings=self.faults.messages)
        return self.latest

    def _final_reading(self, hung: bool) -> None:
        if self._sample_lock.acquire(timeout=0.0 if hung else HUNG_S):
            try:
                self.sample()
            finally:
                self._stopped = True
                self._sample_lock.release()
        else:
            self._stopped = True  # a read still hanging will not touch this run's totals
            self.faults.warn(
                "tracker:hung",
                "a meter read hung: no final reading; the totals are those of the last interval",
            )

    def abandon(self) -> None:
        """In a forked child: the sampler thread did not survive the fork, and the meters and
        the run log are the parent's. Keep the last totals, measure nothing, write nothing."""
        self.running = False
        self._stopped = self.finished = True
        self.runlog = None
        self.exporters = None

    # -- the sampler thread ---------------------------------------------------------------
    def read_now(self) -> None:
        """One reading on the calling thread, as the sampler takes them (faults kept the same way)."""
        try:
            self._tick()
        except Exception as exc:
            self._tick_failed(exc)

    def _tick(self) -> None:
        with self._sample_lock:
            if self.running:
                self.sample()

    def _tick_failed(self, exc: BaseException) -> None:
        self.faults.warn(f"sampler:{type(exc).__name__}", f"carbon-core sampling failed: {exc!r}")

    def sample(self) -> None:
        """Read every meter, account the interval at the intensity in force, publish."""
        t = time.monotonic() - self._t0
        readings: dict[str, float] = {}
        for meter in list(self.meters):
            try:
                readings.update(checked_read(meter, self.faults))
            except Exception as exc:
                self.meters.remove(meter)
                self.faults.warn(
                    f"meter:{meter.name}",
                    f"meter {meter.name} failed ({exc!r}); its energy so far is kept, it is no longer read",
                )
        if self._stopped:  # the run stopped while a read hung
            return
        now = self.source.current()  # read once: the interval and the snapshot agree
        interval = self.accounting.add(t, readings, now.gco2eq_per_kwh, now.source)
        shares = self._split.add(
            interval.t0, interval.t1, interval.energy_j, interval.co2eq_g, self.phases.switches
        )
        for name in interval.rejected:
            self.faults.warn(
                f"meter:implausible:{name}",
                f"{name}: a reading of {readings[name]:.6g} J implies more power than any such device "
                "draws; it is not counted (nor any later one like it), and the budget never sees it",
            )
        self._intervals += 1
        snap = self.latest = self._snapshot(t, interval.power_w, now)
        if self.budget is not None:
            self.decision = self.budget.check(snap.co2eq_kg, snap.predicted_co2eq_kg)
        if self.runlog is not None:
            marks = shares if set(shares) - {OTHER} or self.latest.phases else None  # all "other": left out
            self.runlog.interval(interval, marks, self.units.samples, self.units.tokens)
            self._log_spans()
            self._log_new_warnings(t, snap)
        else:
            self._split.take_spans()
        if self.exporters is not None:  # hands the figures over: a network call is on its own thread
            self.exporters.interval(interval)

    def _log_spans(self, final: bool = False) -> None:
        assert self.runlog is not None
        for span in self._split.take_spans(self.accounting.t if final else None):
            self.runlog.phase(span)

    def _log_new_warnings(self, t: float, snap: Snapshot) -> None:
        assert self.runlog is not None
        for message in snap.warnings[self._logged_warnings :]:
            self.runlog.warning(t, message)
        self._logged_warnings = len(snap.warnings)

    def _fraction_done(self) -> Optional[float]:
        done, total = self._progress
        try:
            fraction = float(done) / float(total) if total else None
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return None
        if fraction is None or not math.isfinite(fraction):
            return None
        return max(0.0, min(1.0, fraction))

    def _snapshot(self, t: float, power_w: float, now: Intensity) -> Snapshot:
        acc, carry = self.accounting, self.carry
        co2_kg = acc.co2eq_g / 1000.0 + carry.co2eq_kg
        parts = {comp: carry.energy_kwh(comp, acc.kwh(comp)) for comp in COMPONENTS}
        progress = self._fraction_done()
        return Snapshot(
            duration_s=t + carry.duration_s,
            energy_kwh=sum(v for v in parts.values() if v is not None),
            energy_gpu_kwh=parts["gpu"],
            energy_cpu_kwh=parts["cpu"],
            energy_ram_kwh=parts["ram"],
            co2eq_kg=co2_kg,
            power_w=power_w,
            intensity_gco2eq_per_kwh=now.gco2eq_per_kwh,
            predicted_co2eq_kg=forecast(co2_kg, progress, self._intervals),
            zone=now.zone,
            intensity_source=now.source,
            location=self.source.location,
            methods=self.methods,
            warnings=self.faults.messages,
            devices=self.devices,
            assumed=self.assumed,
            progress=progress,
            pue=self.config.pue,
            samples=carry.units("samples", self.units.samples),
            tokens=carry.units("tokens", self.units.tokens),
            phases=marked(carry.with_phases(self._split.totals())),
        )


def new_run(config: Config, source: IntensitySource, carry: Carry, faults: FaultLog) -> Run:
    """A run for this process's place in the job, read now (a launcher or framework has set
    it up by the time training starts): host-wide meters on local rank 0 of each node only,
    the GPU of this local rank, the carried totals on global rank 0 only."""
    from carbon_core.meters.registry import build_meters

    role = role_from_env()
    meters = build_meters(
        config.meters,
        gpus=config.gpus,
        faults=faults,
        processes=node_processes(role) if role.host_meters else None,
        host=role.host_meters,
        local_rank=role.local_rank if role.distributed else None,
    )
    return Run(config, source, role, faults, carry if role.rank == 0 else Carry(), meters)


def open_log(run: Run) -> Optional[RunLog]:
    """The run's log, its header written (None when it cannot be created: one warning)."""
    from carbon_core._version import __version__
    from carbon_core.runlog.writer import RunLog, header

    assert run.config.log_dir is not None
    snap = run.latest
    fields = header(
        run_id=run.run_id,
        job_id=job_id(),
        node_rank=run.role.node_rank,
        rank=run.role.rank,
        world_size=run.role.world_size,
        version=__version__,
        zone=snap.zone,
        intensity_source=snap.intensity_source,
        location_source=run.source.location_source,
        location=run.source.location,
        channels=run.accounting.channels,
        devices=run.devices,
        hardware={m.name: m.info for m in run.meters},
        config=run.config.public(),
    )
    try:
        return RunLog.create(run.config.log_dir, fields, run.faults)
    except Exception as exc:  # the run log is optional: measuring goes on without it
        run.faults.warn("runlog:create", f"run log disabled: cannot create it ({exc!r})")
        return None


def open_exporters(run: Run) -> Optional[Exporters]:
    """The run's exporters, started, each labelled with this process's place in the job
    (None when none could start: one warning each)."""
    import platform

    from carbon_core.export.figures import Labels
    from carbon_core.export.group import Exporters, build

    snap, role, config = run.latest, run.role, run.config
    labels = Labels(
        job_id=job_id() or "", run_id=run.run_id, host=platform.node(), node_rank=role.node_rank,
        rank=role.rank, local_rank=role.local_rank, zone=snap.zone or "",
    )  # fmt: skip
    try:
        exporters = Exporters(
            build(config.export, labels, run.faults, prometheus_listen=config.prometheus_port,
                  pushgateway_url=config.pushgateway_url),
            run.accounting.channels, snap.intensity_gco2eq_per_kwh, snap.intensity_source, run.faults,
        )  # fmt: skip
        exporters.start()
    except Exception as exc:  # exporting is optional: measuring goes on without it
        run.faults.warn("export:start", f"exporters disabled: cannot start them ({exc!r})")
        return None
    return exporters
