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

from carbon_core.adapter import CarbonRun
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


class CarbonCallback(*_callback_bases()):  # type: ignore[misc]
    """Logs the ``carbon/...`` metrics through Lightning and stops on a carbon budget.

    Keyword arguments are the core :class:`~carbon_core.Tracker`'s (``zone``, ``pue``,
    ``intensity``, ``live``, ``interval_s``, ``gpus``, ``log_dir``, ``budget_kg``,
    ``stop_on``, ...), checked here: a bad value raises ``ValueError`` naming it.

    - Measures from ``on_fit_start`` (sanity validation included) to ``on_train_end``, or to
      ``on_exception`` (an error or Ctrl-C), so the totals are never lost; the summary is
      printed once, on global rank 0. ``callback.final`` holds the final snapshot.
    - Logs with ``pl_module.log`` every step (so the loggers receive the values every
      ``log_every_n_steps``) and at each epoch end: TensorBoard, CSV, W&B, MLflow alike.
      In a distributed job every rank logs the job's totals (one all-reduce, at logging
      steps only), so rank 0's loggers show the whole job.
    - With ``budget_kg`` it reports progress (``global_step / estimated_stepping_batches``)
      and sets ``trainer.should_stop`` when the core says so, the decision reduced across
      ranks like ``EarlyStopping`` (any rank over budget stops all). Lightning honours it
      after the current batch, once ``min_epochs``/``min_steps`` are met.
    - ``state_dict`` holds the totals: a run resumed with ``ckpt_path`` keeps counting.
    """

    def __init__(self, **tracker_kwargs: Any) -> None:
        super().__init__()
        self.run = CarbonRun(tracker_kwargs)
        self._total: Optional[float] = None

    @property
    def tracker(self) -> Any:
        """The :class:`~carbon_core.Tracker` of the current (or latest) run."""
        return self.run.tracker

    @property
    def final(self) -> Optional[Snapshot]:
        """The final snapshot once training ended (normally or by an exception)."""
        return self.run.final

    def snapshot(self) -> Snapshot:
        """The final snapshot once training ended, else the latest one."""
        return self.run.snapshot()

    # -- hooks -----------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.run.begin()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        total = trainer.estimated_stepping_batches
        self._total = float(total) if total and total != float("inf") else None

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self.run.progress(trainer.global_step, self._total)
        # Job totals are a collective in a distributed job: every rank takes them at the same
        # steps, the ones Lightning writes logs at. On a single process a budget is checked
        # every step (a plain read, no collective).
        every_step = self.run.budgeted and trainer.world_size == 1
        if not (every_step or _logs_this_step(trainer)):
            return
        snap, decision = self.run.sample()
        pl_module.log_dict(self.run.metrics(snap), on_step=True, on_epoch=False)
        if self.run.budgeted:  # reduced across ranks as EarlyStopping does
            stop = trainer.strategy.reduce_boolean_decision(decision.stop, all=False)
            trainer.should_stop = trainer.should_stop or stop

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        snap, _ = self.run.sample()
        pl_module.log_dict(self.run.metrics(snap), on_step=False, on_epoch=True, reduce_fx="max")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.run.finish(main=trainer.is_global_zero)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.run.finish(main=trainer.is_global_zero)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.run.finish(main=trainer.is_global_zero)  # no-op after on_train_end

    # -- checkpoint ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return self.run.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.run.load_state_dict(state_dict)


def _logs_this_step(trainer: Any) -> bool:
    """Whether Lightning sends step metrics to the loggers after this batch (the logger
    connector's own rule, every ``log_every_n_steps``); True if it cannot be read."""
    return bool(getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True))
