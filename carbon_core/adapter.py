"""What the three framework callbacks (Lightning, Keras, Hugging Face) share.

An adapter translates framework events into calls on a :class:`CarbonRun` and its answers
into framework actions. Everything that would otherwise be written three times lives
here: checking the keyword arguments, starting a tracker for the process's place in a
distributed job, the stop decision (and making it the same on every rank), the final
summary printed once on the main process, resume state, and small helpers for callbacks
that must find the framework object calling them or guard its training step.

Framework-free: this module imports no ML framework. Distributed jobs are the core's
business (:mod:`carbon_core.distributed`): the tracker knows its role, and
``job_snapshot()`` gives the same totals and decision on every rank.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Optional

from carbon_core.budget import CONTINUE, StopDecision
from carbon_core.snapshot import Snapshot
from carbon_core.summary import render
from carbon_core.tracker import Tracker, carried_totals

logger = logging.getLogger("carbon_core")

#: the Tracker's keyword arguments an adapter accepts (DESIGN.md, "Configuration")
TRACKER_OPTIONS = (
    "interval_s",
    "pue",
    "zone",
    "intensity",
    "live",
    "gpus",
    "log_dir",
    "budget_kg",
    "stop_on",
    "meters",
    "electricitymaps_token",
)
_SECRETS = ("electricitymaps_token",)


class CarbonRun:
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
        self.tracker = Tracker(**self.options)  # validates every value now
        self.final: Optional[Snapshot] = None
        #: the job's totals at the latest logging step (all ranks summed in a distributed job)
        self.last_job: Optional[Snapshot] = None
        self.running = False
        self._resume: Optional[dict[str, float]] = None
        self._printed = False

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

    def begin(self) -> None:
        """Start measuring (a no-op while running). The tracker reads this process's place
        in a distributed job (rank, local rank, node) when it starts, so host-wide meters
        run once per node."""
        if self.running:
            return
        if self._resume is not None:
            self.tracker.load_state_dict(self._resume)
        self.final = None
        self._printed = False
        self.running = True
        self.tracker.start()

    def progress(self, done: float, total: Optional[float]) -> None:
        self.tracker.progress(done, total)

    def sample(self, *, job: bool = True) -> tuple[Snapshot, StopDecision]:
        """The figures to log and the budget decision to act on.

        ``job=True``: the whole job's totals and the decision made on them, identical on
        every rank (:meth:`Tracker.job_snapshot`; in a distributed job a collective, so
        every rank must call it at the same step). ``job=False``: this process's own.
        """
        if not self.running:
            return self.snapshot(), CONTINUE
        if job:
            snap, decision = self.tracker.job_snapshot()
            self.last_job = snap
            return snap, decision
        return self.tracker.snapshot(), self.tracker.should_stop

    def metrics(self, snap: Snapshot) -> dict[str, float]:
        """``snap``'s ``carbon/...`` metrics, or none before the tracker's first reading
        (a 0 there would be no measurement, and a dip below a resumed run's totals)."""
        measured = snap.duration_s > (self._resume or {}).get("duration_s", 0.0)
        return snap.to_metrics() if measured else {}

    def snapshot(self) -> Snapshot:
        """The final snapshot once finished, else the latest one."""
        return self.final if self.final is not None else self.tracker.snapshot()

    def finish(self, *, main: Optional[bool] = None) -> Snapshot:
        """Stop measuring (idempotent) and print the summary once, on the main process
        (global rank 0 unless ``main`` says otherwise)."""
        if main is None:
            main = self.tracker.role.rank == 0
        if self.running:
            self.running = False
            self.final = self.tracker.stop()
        snap = self.snapshot()
        if main and self.final is not None and not self._printed:
            self._printed = True
            try:  # a closed or broken stdout must not raise into the training loop
                print(render(snap), flush=True)
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
            return carried_totals(self.last_job)
        if self.running or self.final is not None:
            return self.tracker.state_dict()
        return dict(self._resume or {})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint's totals (before or after ``begin``)."""
        self._resume = {k: v for k, v in state.items() if isinstance(v, (int, float))}
        if self.running:
            self.tracker.load_state_dict(self._resume)


class GuardedCallback:
    """What the Keras and Hugging Face callbacks share: the run, its tracker, the final
    snapshot, and a guard on the framework's training step (they have no exception hook).

    ``final`` ends measuring first when training died outside the guarded step.
    """

    run: CarbonRun
    _undo_guard: Optional[Callable[[], None]] = None

    @property
    def tracker(self) -> Tracker:
        """The :class:`~carbon_core.Tracker` of the current (or latest) run."""
        return self.run.tracker

    @property
    def final(self) -> Optional[Snapshot]:
        """The final snapshot; ends measuring first if training died outside the step."""
        return self.finish() if self.run.running else self.run.final

    def snapshot(self) -> Snapshot:
        """The final snapshot once training ended, else the latest one."""
        return self.run.snapshot()

    def finish(self, main: Optional[bool] = None) -> Snapshot:
        """Stop measuring (idempotent), print the summary once and return the final snapshot."""
        if self._undo_guard is not None:
            self._undo_guard()
            self._undo_guard = None
        return self.run.finish(main=main)

    def guard_step(self, owner: Any, name: str) -> None:
        """Stop measuring at once if ``owner.<name>`` (the training step) raises."""
        self._undo_guard = guard(owner, name, lambda exc: self.finish())


# -- finding the framework objects that call a callback ---------------------------------
def find_caller(predicate: Callable[[Any], bool], depth: int = 12) -> Any:
    """The first ``self`` up the call stack (within ``depth`` frames) matching ``predicate``.

    Callbacks are called by a framework object that holds the callback list (Keras'
    ``CallbackList``, transformers' ``CallbackHandler``) but are given no reference to it;
    its dispatch method is always a few frames up, so it is found here. None if not.
    """
    frame = sys._getframe(1)
    for _ in range(depth):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        try:
            if owner is not None and predicate(owner):
                return owner
        except Exception:
            continue
    return None


def holds(me: object) -> Callable[[Any], bool]:
    """A predicate for :func:`find_caller`: an object whose ``callbacks`` list holds ``me``."""

    def predicate(owner: Any) -> bool:
        callbacks = getattr(owner, "callbacks", None)
        return isinstance(callbacks, list) and any(cb is me for cb in callbacks)

    return predicate


def move_before(callbacks: list[Any], me: object, index: int) -> bool:
    """Move ``me`` to ``index`` in ``callbacks`` if it is later; True when moved.

    Safe while the framework is iterating over the list: moving an item from position
    ``i`` to ``j < i`` only shifts items ``j..i-1``, already visited, so no callback is
    skipped or called twice in the current event.
    """
    at = next((i for i, cb in enumerate(callbacks) if cb is me), None)
    if at is None or at <= index:
        return False
    callbacks.insert(index, callbacks.pop(at))
    return True


def guard(owner: Any, name: str, on_error: Callable[[BaseException], object]) -> Callable[[], None]:
    """Shadow ``owner.<name>`` (the framework's per-step function) so that an exception
    raised in it calls ``on_error`` before propagating; returns the undo function.

    For frameworks with no exception hook (Keras, transformers): a crash or Ctrl-C in
    the training step still stops the tracker at once, so the totals are not lost.
    """
    had_own = name in getattr(owner, "__dict__", {})
    original = getattr(owner, name)

    def undo() -> None:
        if getattr(owner, name, None) is guarded:
            if had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except BaseException as exc:
            undo()
            try:
                on_error(exc)
            except Exception:  # measuring must never mask the training error
                logger.exception("carbon-core: failed to stop the tracker after %r", exc)
            raise

    setattr(owner, name, guarded)
    return undo
