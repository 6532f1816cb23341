"""The Tracker: the public face of carbon-core. Each ``start()`` makes one :class:`~carbon_core.run.Run`."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, TypeVar, Union

from carbon_core import config as _config
from carbon_core import lifecycle
from carbon_core.accounting import Carry
from carbon_core.budget import StopDecision
from carbon_core.distributed import Role, role_from_env
from carbon_core.faults import FaultLog
from carbon_core.intensity.resolve import resolve_source
from carbon_core.intensity.source import IntensitySource
from carbon_core.meters.base import Meter
from carbon_core.meters.registry import check_measured_once
from carbon_core.phases import PhaseClock
from carbon_core.run import Run, new_run
from carbon_core.snapshot import Snapshot

F = TypeVar("F", bound=Callable[..., Any])


class Tracker:
    """Measures the energy and emissions of whatever runs between ``start()`` and ``stop()``.

    Use it directly, as a context manager (``with Tracker(zone="DE") as t:``) or as a
    decorator (``@Tracker()``). Every argument left as ``None`` is read from the matching
    ``CARBON_*`` environment variable, else its default; each option's meaning, range and
    default is in :data:`carbon_core.config.OPTIONS` (and the README's table): sampling
    ``interval_s``, ``pue``, where the grid intensity comes from (``zone``, ``intensity``,
    ``live``, ``electricitymaps_token``), ``gpus``, ``meters`` (names and/or your own
    :class:`~carbon_core.meters.Meter` instances), ``log_dir`` and the carbon budget
    (``budget_kg``, ``stop_on``), the exporters to the monitoring a cluster runs
    (``export``, ``prometheus_port``, ``pushgateway_url``: README, "Fleets: Prometheus and
    OpenTelemetry"), and ``embodied_kg_per_hour`` (your figure for the hardware's embodied
    emissions: the M of the run log's SCI block). :meth:`count` and :meth:`phase` put the
    footprint per sample or token and per phase (README, "Per unit and per phase").

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
        export: Union[str, Sequence[str], None] = None,
        prometheus_port: Union[int, str, None] = None,
        pushgateway_url: Optional[str] = None,
        embodied_kg_per_hour: Optional[float] = None,
    ) -> None:
        self.config = _config.load(
            {
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
                "export": export,
                "prometheus_port": prometheus_port,
                "pushgateway_url": pushgateway_url,
                "embodied_kg_per_hour": embodied_kg_per_hour,
            }
        )
        check_measured_once(self.config.meters)
        self._faults = FaultLog()  # construction warnings; each run starts from these
        self._source = resolve_source(self.config, self._faults)
        self._lock = threading.RLock()
        self._carry = Carry()
        self._depth = 0  # nested with-blocks / decorated calls
        #: the current or latest run; before the first start, one that never runs
        self._run = self._idle_run(self._faults)

    # -- public surface -------------------------------------------------------------
    def start(self) -> Tracker:
        """Start measuring (a no-op when already running). Never raises."""
        with self._lock:
            if self._run.running:
                return self
            self.stop()  # a stop that Ctrl-C interrupted is finished first
            faults = self._faults.copy()
            try:
                self._run = new_run(self.config, self._source, self._carry, faults)
            except Exception as exc:  # measuring must never break the caller
                faults.warn("tracker:start", f"carbon-core could not start measuring: {exc!r}")
                self._run = self._idle_run(faults)
                return self
            lifecycle.started(self)  # from here on, stop() or the exit hook finalises the log
            try:
                self._run.start()
            except Exception as exc:
                faults.warn("tracker:start", f"carbon-core could not start measuring: {exc!r}")
                self.stop()
            return self

    def snapshot(self) -> Snapshot:
        """The latest totals: a plain read, cheap enough for every training step."""
        return self._run.latest

    def read_now(self, wait_s: float = 0.5) -> Snapshot:
        """Take a reading now, not at the end of the interval, and return the latest totals:
        the first figures of a run whose first logging step comes before its first interval
        ends. The read runs on a helper thread, waited for at most ``wait_s``, so a meter that
        hangs never holds up the caller. Never raises."""
        run = self._run
        if run.running:
            try:
                reader = threading.Thread(target=run.read_now, name="carbon-core-read", daemon=True)
                reader.start()
                reader.join(wait_s)
            except RuntimeError as exc:  # no thread to be had: the sampler's next reading will do
                run.faults.warn("tracker:read-now", f"carbon-core could not take a reading now: {exc!r}")
        return run.latest

    def progress(
        self,
        done: float,
        total: Optional[float],
        *,
        samples: Optional[float] = None,
        tokens: Optional[float] = None,
    ) -> None:
        """Tell the tracker how far the run is (steps or epochs done, out of total), and
        optionally the ``samples`` and ``tokens`` this step processed (as :meth:`count`).

        Cheap enough for every step: it only stores the pair; the sampler turns it into a
        fraction (ignored unless both are numbers and ``total`` > 0).
        """
        self._run.progress(done, total)
        if samples is not None or tokens is not None:
            self._run.count(samples, tokens)

    def count(self, samples: Optional[float] = None, tokens: Optional[float] = None) -> None:
        """Add the ``samples`` and/or ``tokens`` one step processed (call it every step; the
        framework callbacks count samples themselves, and the Hugging Face Trainer's tokens).
        The snapshots then carry the run's totals and the per-unit figures
        (``energy_j_per_sample``, ``co2eq_g_per_token``, ...). A value that is not a positive
        finite number is ignored, with one warning. Cheap for every step; counts only while
        running."""
        self._run.count(samples, tokens)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """``with tracker.phase("eval"):``: the energy drawn inside the block goes to the phase
        ``name`` (``carbon/phase/<name>_kwh``, the summary, the run log), split from the rest by
        time within each sampling interval, so a block shorter than an interval gets its share.
        Blocks nest (the innermost open phase is the active one; a name entered twice nests),
        and a phase still open at ``stop()`` ends there. The frameworks' callbacks mark
        ``train``, ``validation`` and ``checkpoint`` themselves; time in no phase is ``other``.
        A name is 1 to 64 letters, digits, ``_``, ``.`` or ``-``; another is ignored, with one
        warning. Opening or closing a phase costs about a microsecond; nothing happens when
        not running."""
        run = self._run
        token = run.phases.open(name) if run.running else -1
        try:
            yield
        finally:
            run.phases.close(token)

    @property
    def phases(self) -> PhaseClock:
        """The current run's open phases (for adapters: ``open(name)`` returns a token that
        ``close(token)`` takes); :meth:`phase` is the context manager for code."""
        return self._run.phases

    @property
    def should_stop(self) -> StopDecision:
        """The budget decision as of the latest interval (stop=False without a budget)."""
        return self._run.decision

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._run.running

    @property
    def intervals(self) -> int:
        """How many sampler intervals the current (or latest) run has accounted."""
        return self._run.intervals

    def stop(self) -> Snapshot:
        """Take a final reading, stop the sampler and return the final snapshot.

        Idempotent and safe from any thread; the totals cover exactly start to stop. If
        Ctrl-C interrupts it, a later ``stop()`` (or the interpreter's exit) finishes it.
        """
        with self._lock:
            run = self._run
            if run.finished or not run.started:
                return run.latest
            try:
                final = run.stop()
            except Exception as exc:
                run.faults.warn("tracker:stop", f"carbon-core failed while stopping: {exc!r}")
                run.finished = True
                final = run.with_all_warnings()
            lifecycle.stopped(self)
            return final

    def job_snapshot(self) -> tuple[Snapshot, StopDecision]:
        """The whole job's totals and the budget decision made on them.

        In a distributed job (``torch.distributed`` initialised) this is a collective: every
        rank must call it at the same step, and every rank gets the same totals and the same
        decision. Otherwise it is ``(snapshot(), should_stop)``. Never raises: if the
        collective fails, this rank's own figures are returned with one warning.
        """
        return self._run.job_snapshot()

    @property
    def role(self) -> Role:
        """This process's place in a distributed job (from RANK, LOCAL_RANK, SLURM_*, ...),
        read again at every ``start()``, when a launcher or framework has set up the job."""
        return self._run.role

    @property
    def run_id(self) -> str:
        """The id of the current (or latest) run; "" before the first start."""
        return self._run.run_id

    @property
    def faults(self) -> FaultLog:
        """The warnings of the current (or latest) run, each reported once."""
        return self._run.faults

    @property
    def intensity_source(self) -> IntensitySource:
        """Where the grid intensity comes from (read-only: zone, provider, current value)."""
        return self._source

    @property
    def log_path(self) -> Optional[str]:
        """The run log file of the current (or latest) run, or None when logging is off."""
        runlog = self._run.runlog
        return None if runlog is None or runlog.path is None else os.fspath(runlog.path)

    def state_dict(self) -> dict[str, float]:
        """The running totals, to save in a checkpoint (JSON-serialisable floats)."""
        return Carry.of(self.snapshot()).state()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint: later snapshots include these earlier totals.

        Call before or after ``start()``; values that are not finite numbers >= 0 are ignored.
        In a distributed job only global rank 0 carries them (a checkpoint holds the job's
        totals once; the job total sums every rank).
        """
        with self._lock:
            self._carry = Carry.from_state(state)
            if self._run.running:
                self._run.carry = self._carry if self._run.role.rank == 0 else Carry()
            else:
                self._run = self._idle_run(self._run.faults)

    def forget_after_fork(self) -> None:
        """In a forked child: the sampler thread did not survive the fork, and the run log and
        meters belong to the parent. The child keeps the last totals and measures nothing."""
        self._lock = threading.RLock()
        self._run.abandon()

    def __enter__(self) -> Tracker:
        """Nested ``with`` blocks (and a decorated function that recurses or calls another
        one decorated by the same tracker) make one run: the outermost exit stops it."""
        with self._lock:
            self._depth += 1
            return self.start()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth == 0:
                self.stop()

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        state = "running" if self._run.running else "stopped"
        return f"<Tracker {state} zone={self._source.zone!r} {self.snapshot().co2eq_kg:.6g} kgCO2eq>"

    # -- internals -----------------------------------------------------------------
    def _idle_run(self, faults: FaultLog) -> Run:
        """A run that never starts: its snapshot holds the carried totals and the warnings."""
        role = role_from_env()
        return Run(self.config, self._source, role, faults, self._carry if role.rank == 0 else Carry(), [])
