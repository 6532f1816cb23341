"""Energy and kgCO2eq beside the loss in Keras 3 (any backend), and a carbon budget.

``model.fit(x, y, callbacks=[CarbonCallback(budget_kg=0.5), TensorBoard(...)])``: put it
first. See :class:`CarbonCallback`.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import keras

from carbon_core.callbacks.hooks import caller_frame, find_caller, lists_callback, move_before
from carbon_core.callbacks.session import CallbackMixin, CallbackSession

__all__ = ["CarbonCallback"]
logger = logging.getLogger("carbon_core")


class CarbonCallback(CallbackMixin, keras.callbacks.Callback):
    """Adds the ``carbon/...`` metrics to the ``logs`` and stops on a carbon budget.

    Keyword arguments are the core :class:`~carbon_core.Tracker`'s (``zone``, ``pue``,
    ``intensity``, ``live``, ``interval_s``, ``gpus``, ``log_dir``, ``budget_kg``,
    ``stop_on``, ...), checked here: a bad value raises ``ValueError`` naming it.

    - **Order**: Keras passes one ``logs`` dict to the callbacks in list order, so only
      callbacks *after* this one see the metrics. History and the progress bar are
      appended after the user's list; ``TensorBoard``, ``CSVLogger`` and any callback
      monitoring ``carbon/...`` must come after this one. If another callback is listed
      before it, it moves itself to the front at ``on_train_begin`` and logs a warning.
    - **Batch end stays asynchronous**: on torch/JAX/NumPy Keras runs ``on_train_batch_end``
      on a thread pool unless a callback overrides it without ``async_safe``. This one
      declares ``async_safe = True`` (it only reads an immutable snapshot and sets a flag),
      so it never forces synchronous dispatch; a budget stop set there is therefore seen by
      the fit loop one or two batches later (and always by the end of the epoch).
    - **Stop**: ``model.stop_training = True`` when the core says the budget is spent or
      predicted to be; progress is ``epochs x steps`` from ``self.params``.
    - **Errors**: Keras has no exception hook. The training step is guarded, so an error or
      Ctrl-C inside it stops the tracker at once; an error anywhere else in ``fit`` (the
      dataset, another callback) stops it within a quarter of a second (a watch on ``fit``'s
      frame), and the summary is printed either way. Not synchronised across processes.
    """

    async_safe = True

    def __init__(self, **tracker_kwargs: Any) -> None:
        super().__init__()
        self.session = CallbackSession(tracker_kwargs)
        self._epoch = 0

    # -- hooks -----------------------------------------------------------------------
    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        self._put_first()
        self.session.begin()
        if getattr(self.model, "train_function", None) is not None:
            self.guard_training(self.model, "train_function", caller_frame(lambda o: o is self.model))

    def on_epoch_begin(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if steps:
            self.tracker.progress(self._epoch * steps + batch + 1, (epochs or 0) * steps)
        self._report(logs)

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        if not self.params.get("steps"):
            self.tracker.progress(epoch + 1, self.params.get("epochs"))
        self._report(logs)

    def on_train_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        self.finish()

    # -- internals -------------------------------------------------------------------
    def _report(self, logs: Optional[dict[str, Any]]) -> None:
        snap, decision = self.session.figures(job=False)  # no collective from Keras' worker threads
        if logs is not None:
            logs.update(self.session.metrics(snap))
        if decision.stop and self.model is not None:
            self.model.stop_training = True

    def _put_first(self) -> None:
        """Move before any callback listed earlier, so that they see the metrics."""
        owner = find_caller(lists_callback(self))
        if owner is not None and move_before(owner.callbacks, self, 0):
            logger.warning(
                "carbon_keras.CarbonCallback was not first in callbacks=[...]; moved it first "
                "so that TensorBoard, CSVLogger and the other callbacks see the carbon/... metrics"
            )
