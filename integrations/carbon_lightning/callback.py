"""The Lightning callback.

One class for both namespaces. Lightning calls callback hooks by name, so a callback of
either namespace works in a list given to either Trainer; but a callback passed alone
(``Trainer(callbacks=cb)``) is wrapped in a list only when it is an instance of *that*
namespace's ``Callback``. :class:`CarbonCallback` therefore subclasses the ``Callback`` of
every namespace that is installed (``lightning.pytorch`` and/or ``pytorch_lightning``): one
import, ``from carbon_lightning import CarbonCallback``, works everywhere. The price is
importing the second namespace when both are installed.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional

from carbon_core.callbacks.session import CallbackMixin, CallbackSession
from carbon_core.snapshot import Snapshot


def _callback_bases() -> tuple[type, ...]:
    bases = []
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            bases.append(importlib.import_module(name).Callback)
        except ImportError:
            continue
    if not bases:
        raise ImportError(
            "carbon_lightning needs lightning or pytorch_lightning: pip install 'carbon-core[lightning]'"
        )
    return tuple(bases)


class CarbonCallback(CallbackMixin, *_callback_bases()):  # type: ignore[misc]
    """Logs the ``carbon/...`` metrics through Lightning and stops on a carbon budget.

    Keyword arguments are the core :class:`~carbon_core.Tracker`'s (``zone``, ``pue``,
    ``intensity``, ``live``, ``interval_s``, ``gpus``, ``log_dir``, ``budget_kg``,
    ``stop_on``, ...), checked here: a bad value raises ``ValueError`` naming it.

    - Measures from ``on_fit_start`` (sanity validation included) to ``on_train_end``, or to
      ``on_exception`` (an error or Ctrl-C), so the totals are never lost; the summary is
      printed once, on global rank 0. ``callback.final`` holds the final snapshot.
    - Logs with ``pl_module.log`` on the steps Lightning writes logs at (every
      ``log_every_n_steps``) and at each epoch end: TensorBoard, CSV, W&B, MLflow alike.
      In a distributed job every rank logs the job's totals, taken by one all-reduce every
      ``log_every_n_steps`` steps (the same steps on every rank), so rank 0's loggers show
      the whole job, with each rank's own energy as ``carbon/rank<N>/energy_kwh``.
    - With ``budget_kg`` it reports progress (``global_step / estimated_stepping_batches``)
      and sets ``trainer.should_stop`` when the core says so: checked every step on one
      process (a plain read), at those all-reduce steps in a distributed job, the decision
      reduced across ranks like ``EarlyStopping``'s. Lightning honours it after the current
      batch, once ``min_epochs``/``min_steps`` are met.
    - ``state_dict`` holds the totals: a run resumed with ``ckpt_path`` keeps counting.
    """

    no_exception_hook = False  # on_exception ends measuring

    def __init__(self, **tracker_kwargs: Any) -> None:
        super().__init__()
        self.session = CallbackSession(tracker_kwargs)
        self._total: Optional[float] = None
        self._snap: Optional[Snapshot] = None  # the latest figures taken (job totals when distributed)

    # -- hooks -----------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._snap = None
        self.session.begin()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        total = trainer.estimated_stepping_batches
        self._total = float(total) if total and total != float("inf") else None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self.session.tracker.progress(trainer.global_step, self._total)
        logs_now = _logs_this_step(trainer)
        distributed = trainer.world_size > 1
        taken = self.session.figures_at(
            trainer.global_step, trainer.log_every_n_steps, logs_now=logs_now, distributed=distributed
        )
        if taken is not None:
            self._snap, decision = taken
            if distributed and self.session.budgeted:  # reduced across ranks like EarlyStopping's
                stop = trainer.strategy.reduce_boolean_decision(decision.stop, all=False)
                trainer.should_stop = trainer.should_stop or stop
            elif not distributed:
                trainer.should_stop = trainer.should_stop or decision.stop
        if self._snap is not None and logs_now:
            # log_dict (not the loggers directly, as Lightning's own monitors do): the keys then
            # reach callback_metrics, so ModelCheckpoint(monitor="carbon/co2eq_kg") works
            pl_module.log_dict(self.session.metrics(self._snap), on_step=True, on_epoch=False)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        snap, _ = self.session.figures()
        pl_module.log_dict(self.session.metrics(snap), on_step=False, on_epoch=True, reduce_fx="max")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.session.finish(main=trainer.is_global_zero)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.session.finish(main=trainer.is_global_zero)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.session.finish(main=trainer.is_global_zero)  # no-op after on_train_end

    # -- checkpoint ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return self.session.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.session.load_state_dict(state_dict)


def _logs_this_step(trainer: Any) -> bool:
    """Whether Lightning sends step metrics to the loggers after this batch (the logger
    connector's own rule, every ``log_every_n_steps``); True if it cannot be read."""
    return bool(getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True))
