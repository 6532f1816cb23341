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
import math
from collections.abc import Callable
from typing import Any, Optional

from carbon_core.callbacks.hooks import bracket, leading_size
from carbon_core.callbacks.options import tracker_options
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

    Its parameters are the core :class:`~carbon_core.Tracker`'s keyword options (``zone``,
    ``pue``, ``intensity``, ``live``, ``interval_s``, ``gpus``, ``log_dir``, ``budget_kg``,
    ``stop_on``, ...), typed, in its signature, so LightningCLI configures it like any other
    callback (``--trainer.callbacks+=carbon_lightning.CarbonCallback
    --trainer.callbacks.init_args.zone=FR``, or a YAML config); checked here: a bad value
    raises ``ValueError`` naming it.

    - Measures from ``on_fit_start`` (sanity validation included) to ``on_train_end``, or to
      ``on_exception`` (an error or Ctrl-C), so the totals are never lost; the summary is
      printed once, on global rank 0, at ``on_fit_end`` (below the closed progress bar).
      ``callback.final`` holds the final snapshot. The run log goes beside Lightning's own
      logs (``trainer.log_dir``/carbon_runs) unless ``log_dir``/``CARBON_LOG_DIR`` is set.
      ``validate``/``test``/``predict`` alone are not measured, and nothing is printed for them.
    - Logs with ``pl_module.log`` on the steps Lightning writes logs at (every
      ``log_every_n_steps``), the first one included (one reading is taken then if the
      sampler has not read yet), and at each epoch end that is not also such a step (one
      value per step). TensorBoard, CSV, W&B, MLflow alike.
      In a distributed job every rank logs the job's totals, taken by one all-reduce every
      ``log_every_n_steps`` steps (the same steps on every rank), so rank 0's loggers show
      the whole job, with each rank's own energy as ``carbon/rank<N>/energy_kwh``.
    - Progress (for the forecast and ``stop_on="predicted"``) is counted in the units each
      limit is set in: batches against ``max_epochs`` x batches per epoch, optimiser steps
      against ``max_steps``, whichever is further along; so manual optimisation with
      several optimisers (a GAN) is forecast right.
    - With ``budget_kg`` it sets ``trainer.should_stop`` when the core says so: checked every
      step on one process (a plain read), at those all-reduce steps in a distributed job,
      the decision reduced across ranks like ``EarlyStopping``'s. Lightning honours it after
      the current batch, once ``min_epochs``/``min_steps`` are met. The summary says what
      stopped training, at which step, against which budget (also ``callback.stopped``).
    - ``state_dict`` holds the totals: a run resumed with ``ckpt_path`` keeps counting.
    - **Per unit and per phase**: it counts each training batch's samples (the first
      dimension of the batch's first tensor) for ``carbon/energy_j_per_sample`` and
      ``carbon/co2eq_g_per_sample`` (tokens: call ``callback.tracker.count(tokens=...)`` in
      ``training_step``), and marks the phases: ``train`` from ``on_train_batch_start`` to
      ``on_train_batch_end``, ``validation`` from ``on_validation_start`` to
      ``on_validation_end`` (the sanity check too), ``checkpoint`` around every
      ``trainer.save_checkpoint`` call (the whole save, ``ModelCheckpoint``'s included: its
      state dicts, ``on_save_checkpoint`` hooks and the write), ``other`` in between (set-up,
      data loading between batches). ``carbon/phase/<name>_kwh`` is logged with the other
      figures.
    """

    no_exception_hook = False  # on_exception ends measuring

    @tracker_options
    def __init__(self, **options: Any) -> None:
        """Energy and CO2eq beside the loss, and an optional carbon budget."""
        super().__init__()
        self.session = CallbackSession(options)
        self._limits = (0.0, 0.0)  # (max_steps, max_epochs x batches per epoch); 0: no such limit
        self._snap: Optional[Snapshot] = None  # the latest figures taken (job totals when distributed)
        self._logged_at = -1  # the step whose figures were logged last
        self._undo_save: Callable[[], None] = lambda: None  # trainer.save_checkpoint as it was

    # -- hooks -----------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._snap, self._logged_at = None, -1
        self.session.begin(_log_dir(trainer))
        self._undo_save()
        self._undo_save = bracket(
            trainer,
            "save_checkpoint",
            lambda: self.session.enter("checkpoint"),
            lambda _: self.session.leave("checkpoint"),
        )

    def on_train_batch_start(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self.session.enter("train")

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self.session.enter("validation")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self.session.leave("validation")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        steps, epochs, batches = trainer.max_steps, trainer.max_epochs, trainer.num_training_batches
        by_batches = batches * epochs if epochs and epochs > 0 and math.isfinite(batches) else 0.0
        self._limits = (float(steps) if steps and steps > 0 else 0.0, float(by_batches))

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any = None, batch: Any = None, *args: Any
    ) -> None:
        self.session.leave("train")
        samples = leading_size(batch)
        if samples:
            self.session.count(samples)
        elif self.session.running:
            self.tracker.faults.warn(
                "lightning:samples",
                "carbon-core found no tensor in the training batch to count samples by: the per-sample "
                "figures are left out (call callback.tracker.count(samples=...) in training_step)",
            )
        self.session.tracker.progress(*self._progress(trainer))
        logs_now = _logs_this_step(trainer)
        distributed = trainer.world_size > 1
        taken = self.session.figures_at(
            trainer.global_step, trainer.log_every_n_steps, logs_now=logs_now, distributed=distributed
        )
        if taken is not None:
            self._snap, decision = taken
            stop = decision.stop and not distributed
            if distributed and self.session.budgeted:  # reduced across ranks like EarlyStopping's
                stop = trainer.strategy.reduce_boolean_decision(decision.stop, all=False)
            if stop:
                self.session.acted_on(decision, f"step {trainer.global_step}")
                trainer.should_stop = True
                logs_now = _logs_this_step(trainer)  # Lightning logs the step it stops at
        if self._snap is not None and logs_now:
            # log_dict (not the loggers directly, as Lightning's own monitors do): the keys then
            # reach callback_metrics, so ModelCheckpoint(monitor="carbon/co2eq_kg") works
            pl_module.log_dict(self.session.metrics(self._snap), on_step=True, on_epoch=False)
            self._logged_at = trainer.global_step

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._logged_at == trainer.global_step:
            return  # this step's figures are logged already: one value per step
        snap, _ = self.session.figures()
        pl_module.log_dict(self.session.metrics(snap), on_step=False, on_epoch=True, reduce_fx="max")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        # measuring ends here; the summary waits for on_fit_end, once the progress bar (whose
        # on_train_end comes after this one) has closed its line
        self.session.finish(main=trainer.is_global_zero, say=False)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._undo_save()
        self.session.finish(main=trainer.is_global_zero)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._undo_save()
        self.session.finish(main=trainer.is_global_zero)  # the summary

    # -- checkpoint ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return self.session.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.session.load_state_dict(state_dict)

    # -- internals -------------------------------------------------------------------
    def _progress(self, trainer: Any) -> tuple[float, Optional[float]]:
        """(fraction done, 1) by the limit that is furthest along; (0, None) when unlimited."""
        steps, batches = self._limits
        done = trainer.global_step / steps if steps else 0.0
        if batches:  # batches seen, restored on resume with the loops' state
            done = max(done, (trainer.fit_loop.epoch_loop.total_batch_idx + 1) / batches)
        return done, (1.0 if steps or batches else None)


def _log_dir(trainer: Any) -> Optional[str]:
    """Lightning's log folder (the first logger's, else ``default_root_dir``); None if unreadable."""
    try:
        folder = trainer.log_dir
    except Exception:  # an exotic logger: the run log keeps its own default
        return None
    return folder if isinstance(folder, str) and folder else None


def _logs_this_step(trainer: Any) -> bool:
    """Whether Lightning sends step metrics to the loggers after this batch (the logger
    connector's own rule, every ``log_every_n_steps``); True if it cannot be read."""
    return bool(getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True))
