"""One tracker's life inside a framework's training run, shared by the three callbacks.

An adapter translates framework events into calls on a :class:`CallbackSession` and its
answers into framework actions. The rules every framework follows live here: checking the
keyword arguments, starting a tracker for the process's place in a distributed job, the run
log beside the framework's own logs, when to take figures (:meth:`CallbackSession.figures_at`)
and the one reading taken at once when a run logs before its first interval ends, the stop
decision (the same on every rank) and the line that says it, resume state, and the final
summary printed once on the main process.

Nothing is said before measuring starts: the tracker is built (and every argument checked)
when the callback is, but what it logs then (a zone it could not find) is held back and said
when training starts, so an evaluate-only or predict-only run, which the callbacks do not
measure, prints nothing. Those start-up warnings are not repeated in the summary.

Framework-free: this module imports no ML framework. Distributed jobs are the core's
business (:mod:`carbon_core.distributed`): the tracker knows its role, and
``job_snapshot()`` gives the same totals and decision on every rank.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any, Optional

from carbon_core.accounting import Carry
from carbon_core.budget import CONTINUE, StopDecision
from carbon_core.callbacks.hooks import TrainingCallWatch, guard
from carbon_core.config import OPTIONS
from carbon_core.snapshot import Snapshot
from carbon_core.summary import render, stop_line
from carbon_core.tracker import Tracker

logger = logging.getLogger("carbon_core")

#: the keyword arguments a callback accepts: the Tracker's configuration, nothing else
TRACKER_OPTIONS = tuple(o.name for o in OPTIONS if o.argument)
_SECRETS = tuple(o.name for o in OPTIONS if o.secret)
#: the run log's folder name, under the framework's own log folder (the option's default)
RUN_LOG_FOLDER = next(str(o.default) for o in OPTIONS if o.name == "log_dir")
_PREDICTED = "carbon/predicted_co2eq_kg"


class _Held(logging.Filter):
    """Holds back this thread's records on the carbon_core loggers (see :func:`_held`)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        self.records.append(record)
        return False


@contextmanager
def _held() -> Iterator[_Held]:
    """What this thread logs on the ``carbon_core`` loggers inside the block is kept in
    ``records`` instead of being emitted (other threads are not affected)."""
    held = _Held()
    names = ["carbon_core", *(n for n in logging.root.manager.loggerDict if n.startswith("carbon_core."))]
    loggers = [logging.getLogger(name) for name in names]
    for log in loggers:
        log.addFilter(held)
    try:
        yield held
    finally:
        for log in loggers:
            log.removeFilter(held)


class CallbackSession:
    """One tracker's life inside a framework's training run.

    Built at the callback's construction, so a bad argument raises ``ValueError`` naming
    the parameter there, not when training starts. ``begin()`` starts measuring,
    ``finish()`` stops (idempotent) and prints the summary once on the main process.
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(TRACKER_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown parameter(s): {', '.join(unknown)}; known: {', '.join(TRACKER_OPTIONS)}"
            )
        self.options = {k: v for k, v in options.items() if v is not None}
        with _held() as held:  # said when measuring starts (an evaluate-only run says nothing)
            self.tracker = Tracker(**self.options)  # validates every value now
        self._held = held.records
        self.final: Optional[Snapshot] = None
        #: the job's totals at the latest logging step (all ranks summed in a distributed job)
        self.last_job: Optional[Snapshot] = None
        self.running = False
        #: the budget stop acted on, and where (in the framework's words): (where, decision)
        self.stopped: Optional[tuple[str, StopDecision]] = None
        self._resume: Optional[dict[str, float]] = None
        self._printed = False
        self._read = False  # the one reading taken at once, in this run
        self._shown = 0  # warnings said when measuring started
        self._marks: dict[str, int] = {}  # the phases this callback has open: name -> token

    @property
    def budgeted(self) -> bool:
        """True when a carbon budget is set (only then is a stop decision ever synced)."""
        return self.tracker.config.budget_kg is not None

    def public_options(self) -> dict[str, Any]:
        """The options without secrets, JSON-serialisable (for framework checkpoint state)."""
        out = {k: v for k, v in self.options.items() if k not in _SECRETS}
        if "log_dir" in out:
            out["log_dir"] = os.fspath(out["log_dir"])
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def begin(self, folder: Any = None) -> None:
        """Start measuring (a no-op while running). The tracker reads this process's place
        in a distributed job (rank, local rank, node) when it starts, so host-wide meters
        run once per node.

        ``folder``: the framework's own log or output folder, when the adapter knows it; the
        run log then goes to ``<folder>/carbon_runs`` unless ``log_dir`` or
        ``CARBON_LOG_DIR`` says otherwise (``off`` included).
        """
        if self.running:
            return
        config = self.tracker.config
        if folder is not None and "log_dir" not in config.origin and config.log_dir is not None:
            where = os.path.join(os.fspath(folder), RUN_LOG_FOLDER)
            self.tracker.config = dataclasses.replace(config, log_dir=where)
        for record in self._held:  # what the tracker said when it was built
            logging.getLogger(record.name).handle(record)
        self._held = []
        if self._resume is not None:
            self.tracker.load_state_dict(self._resume)
        self.final = None
        self.stopped = None
        self._printed = self._read = False
        self._marks = {}
        self.running = True
        self.tracker.start()
        self._shown = len(self.tracker.faults)

    # -- what the frameworks mark: phases and units (cheap for every step) --------------------
    def enter(self, name: str) -> None:
        """Open the phase ``name`` (a framework event: a batch, a validation loop, a save) unless
        this callback has it open already; nothing when not measuring."""
        if self.running:
            token = self._marks.get(name)
            phases = self.tracker.phases
            if token is None or not phases.is_open(token):
                self._marks[name] = phases.open(name)

    def leave(self, name: str) -> None:
        """Close the phase ``name`` if this callback opened it (and what opened inside it)."""
        token = self._marks.pop(name, None)
        if token is not None:
            self.tracker.phases.close(token)

    def count(self, samples: Optional[float] = None, tokens: Optional[float] = None) -> None:
        """Count a step's samples and tokens (only while measuring)."""
        if self.running:
            self.tracker.count(samples, tokens)

    def figures(self, *, job: bool = True) -> tuple[Snapshot, StopDecision]:
        """The figures to log and the budget decision to act on.

        ``job=True``: the whole job's totals and the decision made on them, identical on
        every rank (:meth:`Tracker.job_snapshot`; in a distributed job a collective, so
        every rank must call it at the same step). ``job=False``: this process's own.
        """
        if not self.running:
            return self.snapshot(), CONTINUE
        if not self._read:  # a first logging step before the first interval ends
            self._read = True
            if self.tracker.intervals == 0:
                self.tracker.read_now()
        if job:
            snap, decision = self.tracker.job_snapshot()
            self.last_job = snap
            return snap, decision
        return self.tracker.snapshot(), self.tracker.should_stop

    def figures_at(
        self, step: int, every: int, *, logs_now: bool, distributed: Optional[bool] = None
    ) -> Optional[tuple[Snapshot, StopDecision]]:
        """The step cadence, the same in every framework: the figures to take after ``step``,
        or None when none are due.

        In a distributed job the job totals are an all-reduce, so every rank takes them at
        the same steps, chosen by the step counter alone (every ``every`` steps, the
        framework's logging interval). On one process they are a plain read: every step
        when a budget is set (the decision is then never late), else when the framework
        logs (``logs_now``).
        """
        if self.tracker.role.distributed if distributed is None else distributed:
            due = step % max(1, every) == 0
        else:
            due = self.budgeted or logs_now
        return self.figures() if due else None

    def metrics(
        self, snap: Snapshot, missing: Optional[float] = None, expected: Iterable[str] = ()
    ) -> dict[str, float]:
        """``snap``'s ``carbon/...`` metrics, or none before the tracker's first reading
        (a 0 there would be no measurement, and a dip below a resumed run's totals).

        ``missing=math.nan``: every key of the run, every time (for loggers that need the
        same keys at every epoch, such as Keras' History and CSVLogger), with ``missing``
        where there is no figure yet: before the first reading, the forecast before its
        warm-up, and the ``expected`` keys (per-unit figures, phases the run will have)
        before their first figure.
        """
        measured = snap.duration_s > (self._resume or {}).get("duration_s", 0.0)
        figures = snap.to_metrics()
        if missing is None:
            return figures if measured else {}
        figures.setdefault(_PREDICTED, missing)
        for key in expected:
            figures.setdefault(key, missing)
        return figures if measured else dict.fromkeys(figures, missing)

    def acted_on(self, decision: StopDecision, at: str) -> None:
        """The adapter stopped training on ``decision`` ``at`` (its words: "step 120"); the
        first such stop is said in the summary."""
        if decision.stop and self.stopped is None:
            self.stopped = (at, decision)

    @property
    def stop_line(self) -> str:
        """What stopped training, where, against which budget ("" when nothing did)."""
        return "" if self.stopped is None else stop_line(self.stopped[1], self.stopped[0])

    def snapshot(self) -> Snapshot:
        """The final snapshot once finished, else the latest one."""
        return self.final if self.final is not None else self.tracker.snapshot()

    def finish(self, *, main: Optional[bool] = None, say: bool = True) -> Snapshot:
        """Stop measuring (idempotent) and print the summary once, on the main process
        (global rank 0 unless ``main`` says otherwise). ``say=False``: not yet (a progress
        bar still holds the terminal's last line); a later ``finish()`` prints it."""
        if main is None:
            main = self.tracker.role.rank == 0
        if self.running:
            self.running = False
            self.final = self.tracker.stop()
        snap = self.snapshot()
        if say and main and self.final is not None and not self._printed:
            self._printed = True
            try:  # a closed or broken stdout must not raise into the training loop
                print(render(snap, shown_warnings=self._shown, stopped=self.stop_line), flush=True)
                if self.tracker.role.distributed and self.last_job is not None:
                    print(
                        f"job total over {self.tracker.role.world_size} processes, as of the last "
                        f"logging step:\n{render(self.last_job)}",
                        flush=True,
                    )
            except (OSError, ValueError) as exc:
                logger.warning("carbon-core: could not print the summary (%s)", exc)
        return snap

    def state_dict(self) -> dict[str, float]:
        """Totals to keep in a checkpoint, so a resumed run keeps counting.

        In a distributed job the frameworks keep only rank 0's callback state, so it holds
        the job's totals as of the latest logging step, and only rank 0 carries them on
        resume (see :meth:`Tracker.load_state_dict`): the job total counts them once.
        """
        if self.tracker.role.distributed and self.last_job is not None:
            return Carry.of(self.last_job).state()
        if self.running or self.final is not None:
            return self.tracker.state_dict()
        return dict(self._resume or {})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint's totals (before or after ``begin``)."""
        self._resume = {k: v for k, v in state.items() if isinstance(v, (int, float))}
        if self.running:
            self.tracker.load_state_dict(self._resume)


class CallbackMixin:
    """The conveniences every callback offers, written once: ``session``, ``tracker``,
    ``final``, ``snapshot()``, ``finish()``, and a guard on the framework's training step
    for frameworks without an exception hook (Keras, transformers).

    ``final`` is the final snapshot once training ended. In a framework with no exception
    hook, reading it while still measuring means training died outside the guarded step:
    it ends measuring first.
    """

    session: CallbackSession
    #: False where the framework calls the callback on an exception (Lightning's on_exception)
    no_exception_hook = True
    _undo_guard: Optional[Callable[[], None]] = None
    _watch: Optional[TrainingCallWatch] = None

    @property
    def tracker(self) -> Tracker:
        """The :class:`~carbon_core.Tracker` of the current (or latest) run."""
        return self.session.tracker

    @property
    def final(self) -> Optional[Snapshot]:
        """The final snapshot once training ended (normally or by an exception)."""
        if self.session.running and self.no_exception_hook:
            return self.finish()
        return self.session.final

    def snapshot(self) -> Snapshot:
        """The final snapshot once training ended, else the latest one."""
        return self.session.snapshot()

    @property
    def stopped(self) -> str:
        """What stopped training, at which step, against which budget; "" when the budget
        did not (the same line is in the summary)."""
        return self.session.stop_line

    def finish(self, main: Optional[bool] = None) -> Snapshot:
        """Stop measuring (idempotent), print the summary once and return the final snapshot."""
        if self._undo_guard is not None:
            self._undo_guard()
            self._undo_guard = None
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        return self.session.finish(main=main)

    def report(self, fmt: str = "text", path: Any = None, training_type: Optional[str] = None) -> str:
        """The run's footprint to publish (issue 20): ``"model-card"`` (the Hugging Face
        ``co2_eq_emissions`` block; with ``path``, that card gets it), ``"paper"``, ``"json"``,
        ``"csv"``, ``"html"`` or ``"text"``; see :func:`carbon_core.report.of_run`. The job's
        totals in a distributed job, else this run's (a resumed run's whole run)."""
        from carbon_core.report import of_run

        job = self.session.last_job if self.tracker.role.distributed else None
        snap = job if job is not None else self.snapshot()
        return of_run(fmt, snap, self.tracker.log_path, path=path, training_type=training_type)

    def guard_training(
        self,
        owner: Any,
        step: str,
        frame: Optional[FrameType],
        before: Optional[Callable[[tuple[Any, ...]], Any]] = None,
        after: Optional[Callable[[Any], object]] = None,
    ) -> None:
        """Stop measuring at once if ``owner.<step>`` (the training step) raises, and within
        a moment if the training call (``frame``: Keras' ``fit``, the Trainer's loop) ends
        by an error anywhere else, with the summary printed either way. ``before(args)`` and
        ``after(token)`` run around each step (see :func:`~carbon_core.callbacks.hooks.guard`)."""
        self._undo_guard = guard(owner, step, lambda exc: self.finish(), before, after)
        if frame is not None:
            self._watch = TrainingCallWatch(frame, self.finish)
