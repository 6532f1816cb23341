"""Energy and kgCO2eq beside the loss in Keras 3 (any backend), and a carbon budget.

``model.fit(x, y, callbacks=[CarbonCallback(budget_kg=0.5), TensorBoard(...)])``: put it
first. See :class:`CarbonCallback`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Optional

import keras

from carbon_core.callbacks.hooks import (
    bracket,
    caller_frame,
    fewer_keys,
    find_caller,
    leading_size,
    lists_callback,
    move_before,
)
from carbon_core.callbacks.options import tracker_options
from carbon_core.callbacks.session import CallbackMixin, CallbackSession

__all__ = ["CarbonCallback"]
logger = logging.getLogger("carbon_core")
_PREFIX = "carbon/"
#: the callbacks whose saves are the ``checkpoint`` phase
_SAVERS = (keras.callbacks.ModelCheckpoint, keras.callbacks.BackupAndRestore)
_PER_SAMPLE = ("carbon/energy_j_per_sample", "carbon/co2eq_g_per_sample")
_PER_TOKEN = ("carbon/energy_j_per_token", "carbon/co2eq_g_per_token")


class CarbonCallback(CallbackMixin, keras.callbacks.Callback):  # type: ignore[misc]
    """Adds the ``carbon/...`` metrics to the ``logs`` and stops on a carbon budget.

    Its parameters are the core :class:`~carbon_core.Tracker`'s keyword options (``zone``,
    ``pue``, ``intensity``, ``live``, ``interval_s``, ``gpus``, ``log_dir``, ``budget_kg``,
    ``stop_on``, ...), typed, in its signature; checked here: a bad value raises
    ``ValueError`` naming it.

    - **Every key, every epoch**: each batch's and each epoch's logs get every ``carbon/...``
      key of the run, the first batch included (one reading is taken then if the sampler has
      not read yet), with NaN where there is no figure yet (the forecast, until 2 % of the
      run is done): ``History.history`` lists have the length of ``loss``, so
      ``pandas.DataFrame(history.history)`` works, and ``CSVLogger`` gets every column from
      the first epoch (and no empty ``val_carbon/...`` columns without validation data).
    - **Progress bar**: it shows only ``carbon/co2eq_kg`` (:attr:`progress_bar_keys`);
      History, CSVLogger, TensorBoard and every other callback get all the keys.
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
      predicted to be; progress is ``epochs x steps`` from ``self.params``. The summary,
      printed after the progress bar's last line, says what stopped training, where,
      against which budget (also ``callback.stopped``).
    - **Run log**: Keras has no log folder of its own, so it goes to ``log_dir`` as
      configured (``./carbon_runs`` by default).
    - **Errors**: Keras has no exception hook. The training step is guarded, so an error or
      Ctrl-C inside it stops the tracker at once; an error anywhere else in ``fit`` (the
      dataset, another callback) stops it within a quarter of a second (a watch on ``fit``'s
      frame), and the summary is printed either way. Not synchronised across processes.
      ``evaluate``/``predict`` alone are not measured, and nothing is printed for them.
    - **Per unit and per phase**: it counts each step's samples (the batch sizes of Keras' own
      data adapter, the last partial batch included; else the first dimension of the step's
      data) for ``carbon/energy_j_per_sample`` and ``carbon/co2eq_g_per_sample`` (tokens:
      ``callback.tracker.count(tokens=...)``), and marks the phases: ``train`` inside each
      training step (``model.train_function``), ``validation`` from ``on_test_begin`` to
      ``on_test_end`` (the validation inside ``fit``), ``checkpoint`` inside the
      ``on_epoch_end``/``on_train_batch_end`` of each ``ModelCheckpoint`` and
      ``BackupAndRestore`` (their saves; they run after this callback, so an epoch's save
      shows in the next epoch's figures), ``other`` between them (data loading, callbacks).
      The ``carbon/phase/<name>_kwh`` keys of the phases the run will have (``train``,
      ``other``, ``validation`` once it has run, ``checkpoint`` with a saver listed) and the
      per-sample keys are in every log from the first, NaN before their first figure.
    """

    async_safe = True
    #: the ``carbon/...`` keys the progress bar shows
    progress_bar_keys: tuple[str, ...] = ("carbon/co2eq_kg",)

    @tracker_options
    def __init__(self, **options: Any) -> None:
        """Energy and CO2eq beside the loss, and an optional carbon budget."""
        super().__init__()
        self.session = CallbackSession(options)
        self._epoch = 0
        self._callbacks: list[Any] = []  # the CallbackList's, while fitting
        self._undo: list[Callable[[], None]] = []
        self._begin = 0  # the first batch of the step about to run
        self._data: Any = None  # fit's epoch iterator (its data adapter knows the batch sizes)
        #: the keys every log gets, NaN before their first figure (replaced, never changed in place:
        #: batch ends run on Keras' worker threads)
        self._expected: frozenset[str] = frozenset()

    # -- hooks -----------------------------------------------------------------------
    def on_train_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        self._put_first()
        self.session.begin()
        for bar in (cb for cb in self._callbacks if isinstance(cb, keras.callbacks.ProgbarLogger)):
            self._undo.append(fewer_keys(bar, ("on_train_batch_end", "on_epoch_end"), self._on_bar))
        savers = [cb for cb in self._callbacks if isinstance(cb, _SAVERS)]
        self._expected = frozenset(
            {*_PER_SAMPLE, "carbon/phase/train_kwh", "carbon/phase/other_kwh"}
            | ({"carbon/phase/checkpoint_kwh"} if savers else set())
        )
        for saver in savers:
            hooks = (
                ("on_epoch_end", "on_train_batch_end")
                if getattr(saver, "save_freq", "epoch") != "epoch"
                else ("on_epoch_end",)
            )
            for hook in hooks:
                self._undo.append(
                    bracket(
                        saver,
                        hook,
                        lambda: self.session.enter("checkpoint"),
                        lambda _: self.session.leave("checkpoint"),
                    )
                )
        fit = caller_frame(lambda o: o is self.model)
        self._data = fit.f_locals.get("epoch_iterator") if fit is not None else None
        if getattr(self.model, "train_function", None) is not None:
            self.guard_training(self.model, "train_function", fit, self._step_begins, self._step_ends)

    def on_train_batch_begin(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self._begin = batch

    def on_test_begin(self, logs: Optional[dict[str, Any]] = None) -> None:
        if self.session.running:
            self._expected |= {"carbon/phase/validation_kwh"}
            self.session.enter("validation")

    def on_test_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        self.session.leave("validation")

    def on_epoch_begin(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Optional[dict[str, Any]] = None) -> None:
        epochs, steps = self.params.get("epochs"), self.params.get("steps")
        if steps:
            self.tracker.progress(self._epoch * steps + batch + 1, (epochs or 0) * steps)
        self._report(logs, f"epoch {self._epoch + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: Optional[dict[str, Any]] = None) -> None:
        if not self.params.get("steps"):
            self.tracker.progress(epoch + 1, self.params.get("epochs"))
        self._report(logs, f"the end of epoch {epoch + 1}")
        if logs is not None:
            self._csv_columns(logs)

    def on_train_end(self, logs: Optional[dict[str, Any]] = None) -> None:
        while self._undo:
            self._undo.pop()()
        self._callbacks = []
        self.finish()

    # -- internals -------------------------------------------------------------------
    def _on_bar(self, key: str) -> bool:
        return not key.startswith(_PREFIX) or key in self.progress_bar_keys

    def _step_begins(self, args: tuple[Any, ...]) -> None:
        """Before each training step (the training thread): count its samples, open ``train``."""
        samples = self._batch_sizes() or leading_size(args)
        if samples:
            self.session.count(samples)
        self.session.enter("train")

    def _step_ends(self, _: Any) -> None:
        self.session.leave("train")

    def _batch_sizes(self) -> Optional[int]:
        """The samples of the step about to run, from fit's data adapter (None if it does not know)."""
        try:
            adapter = self._data.data_adapter
            size, batches = adapter.batch_size, adapter.num_batches
            if not size:
                return None
            total = 0
            for b in range(
                self._begin, self._begin + int(getattr(self._data, "steps_per_execution", 1) or 1)
            ):
                if batches is not None and b >= batches:
                    break
                last = batches is not None and b == batches - 1 and adapter.has_partial_batch
                total += int(adapter.partial_batch_size or size) if last else int(size)
            return total
        except Exception:  # an adapter that cannot say: the step's data is read instead
            return None

    def _report(self, logs: Optional[dict[str, Any]], at: str) -> None:
        snap, decision = self.session.figures(job=False)  # no collective from Keras' worker threads
        if snap.tokens:  # counted by the user's code: from now on in every log
            self._expected |= set(_PER_TOKEN)
        if logs is not None:
            logs.update(self.session.metrics(snap, missing=math.nan, expected=self._expected))
        if decision.stop and self.model is not None:
            self.session.acted_on(decision, at)
            self.model.stop_training = True

    def _csv_columns(self, logs: dict[str, Any]) -> None:
        """Fix a CSVLogger's columns before it does, as it would, without the ``val_carbon/...``
        ones it would add (left empty) when there is no validation data."""
        if any(k.startswith("val_") for k in logs):
            return  # CSVLogger adds no val_ columns of its own then
        for cb in self._callbacks:
            if isinstance(cb, keras.callbacks.CSVLogger) and getattr(cb, "keys", ()) is None:
                keys = sorted(logs)
                cb.keys = keys + [f"val_{k}" for k in keys if not k.startswith(_PREFIX)]

    def _put_first(self) -> None:
        """Move before any callback listed earlier, so that they see the metrics."""
        owner = find_caller(lists_callback(self))
        self._callbacks = owner.callbacks if owner is not None else []
        if owner is not None and move_before(owner.callbacks, self, 0):
            logger.warning(
                "carbon_keras.CarbonCallback was not first in callbacks=[...]; moved it first "
                "so that TensorBoard, CSVLogger and the other callbacks see the carbon/... metrics"
            )
