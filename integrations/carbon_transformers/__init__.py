"""Energy and kgCO2eq beside the loss in the Hugging Face Trainer, and a carbon budget.

``Trainer(..., args=TrainingArguments(report_to="tensorboard"), callbacks=[CarbonCallback()])``.
See :class:`CarbonCallback`.
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import TrainerCallback
from transformers.trainer_callback import DefaultFlowCallback, ExportableState

from carbon_core.callbacks.hooks import caller_frame, find_caller, leading_size, lists_callback, move_before
from carbon_core.callbacks.options import tracker_options
from carbon_core.callbacks.session import CallbackMixin, CallbackSession
from carbon_core.snapshot import Snapshot

__all__ = ["CarbonCallback"]
_NOT_TRAINING = ("eval_", "test_")


class CarbonCallback(CallbackMixin, TrainerCallback, ExportableState):
    """Adds the ``carbon/...`` metrics to the Trainer's logs and stops on a carbon budget.

    Its parameters are the core :class:`~carbon_core.Tracker`'s keyword options (``zone``,
    ``pue``, ``intensity``, ``live``, ``interval_s``, ``gpus``, ``log_dir``, ``budget_kg``,
    ``stop_on``, ...), typed, in its signature; checked here: a bad value raises
    ``ValueError`` naming it. The run log goes to ``<output_dir>/carbon_runs`` unless
    ``log_dir``/``CARBON_LOG_DIR`` is set.

    **How the metrics reach TensorBoard, W&B, MLflow, ...** The Trainer builds its callback
    list as ``[DefaultFlowCallback, <report_to integrations>, <your callbacks>, progress]``
    and gives every ``on_log`` the same ``logs`` dict in that order, so a key a user
    callback adds arrives after the reporters have written theirs. Callbacks get no
    reference to the Trainer; but the ``CallbackHandler`` that calls them is the caller of
    every hook. At ``on_init_end`` (and again at ``on_train_begin``, which also covers a
    callback added later or re-created by a checkpoint restore) this callback finds that
    handler a few frames up the stack and moves itself right after ``DefaultFlowCallback``,
    before every reporter. Its ``on_log`` then adds the metrics to ``logs`` before any
    reporter reads them; they also go into ``state.log_history``. The reporters name them
    as they name the loss: TensorBoard shows ``train/carbon/co2eq_kg`` beside ``train/loss``.
    Metrics are added to training logs only (not to ``eval_...`` logs), every
    ``logging_steps``, the first one included (one reading is taken then if the sampler
    has not read yet); ``report_to`` defaults to ``"none"`` in transformers 5.

    **The end of training**: measuring stops at the Trainer's final training log, the one
    ``train()`` returns (``train_runtime``, ``train_loss``, ...), which gets the final totals
    in units that survive ``log_metrics``' rounding to four decimals: ``carbon/co2eq_g``,
    ``carbon/energy_wh`` and ``carbon/energy_<gpu|cpu|ram>_wh`` (each key once per step: the
    per-step ``carbon/..._kg`` keys are not repeated there). So ``trainer.log_metrics("train",
    metrics)``, ``save_metrics`` (``train_results.json``) and the summary show the same
    total. ``trainer_state.json`` (``save_state()``) holds the final totals too.
    ``evaluate()``/``predict()`` alone are not measured, and nothing is printed for them.

    **Budget**: with ``budget_kg`` it reports ``state.global_step / state.max_steps`` and,
    after every step (every ``logging_steps`` in a distributed job), takes the job's decision
    (the same on every rank: the core all-reduces
    the totals when ``torch.distributed`` is initialised; the Trainer itself never syncs
    ``should_training_stop``), then sets ``control.should_training_stop`` (and
    ``should_log``, so the last figures are logged).

    **Errors**: the Trainer has no exception hook; the training step is guarded, so an error
    or Ctrl-C inside it stops the tracker at once, and an error anywhere else in the training
    loop (a data collator, a dataset, another callback) stops it within a quarter of a second
    (a watch on the loop's frame). The summary prints once, on world rank 0; after a
    budget stop it says what stopped training, at which step, against which budget (also
    ``callback.stopped``).

    **Per unit and per phase**: it counts the samples of every micro-batch the training step
    sees (gradient accumulation included; the job's in a distributed run, summed by the
    all-reduce) and, with ``include_num_input_tokens_seen`` on, the Trainer's own
    ``state.num_input_tokens_seen`` as tokens (already the job's: counted once, on world
    rank 0), for ``carbon/energy_j_per_sample``, ``carbon/co2eq_g_per_sample`` and the
    ``per_token`` pair. Phases: ``train`` from ``on_step_begin`` to ``on_step_end`` (the
    micro-batches and the optimiser step), ``validation`` from a step (or epoch) end whose
    ``control.should_evaluate`` is set to ``on_evaluate``, ``checkpoint`` from there (or
    that step end, with ``control.should_save``) to ``on_save``, ``other`` in between
    (loading the next batches, logging). ``carbon/phase/<name>_kwh`` is in every training log.

    **Resume**: the totals are saved in ``trainer_state.json`` (``ExportableState``) and
    read back when training resumes from a checkpoint, whether or not
    ``restore_callback_states_from_checkpoint`` is set (if it is, the Trainer replaces this
    instance with a new one; read ``final`` from the one in ``trainer.callback_handler``).
    """

    @tracker_options
    def __init__(self, **options: Any) -> None:
        """Energy and CO2eq beside the loss, and an optional carbon budget."""
        self.session = CallbackSession(options)
        self._job: tuple[int, Optional[Snapshot]] = (-1, None)
        self._tokens_seen = 0  # the Trainer's num_input_tokens_seen, as of the last step counted
        self._samples_by_step = 0  # samples a step, when the training step cannot be watched

    # -- checkpoint state (trainer_state.json) ---------------------------------------
    def state(self) -> dict[str, Any]:
        return {"args": self.session.public_options(), "attributes": {"carbon_totals": self.carbon_totals}}

    @property
    def carbon_totals(self) -> dict[str, float]:
        return self.session.state_dict()

    @carbon_totals.setter
    def carbon_totals(self, totals: dict[str, float]) -> None:
        self.session.load_state_dict(totals)

    # -- hooks -----------------------------------------------------------------------
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._put_before_reporters()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._put_before_reporters()
        if state.global_step > 0:  # resumed from a checkpoint
            saved = (state.stateful_callbacks or {}).get(type(self).__name__)
            saved = saved[0] if isinstance(saved, list) and saved else saved
            if isinstance(saved, dict):
                self.carbon_totals = saved.get("attributes", {}).get("carbon_totals", {})
        self.session.begin(getattr(args, "output_dir", None))
        self._tokens_seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        loop = caller_frame(lambda o: lists_callback(self)(getattr(o, "callback_handler", None)))
        self._samples_by_step = 0
        if loop is not None:  # each micro-batch's samples, as the training step gets it
            self.guard_training(loop.f_locals["self"], "training_step", loop, self._count_inputs)
        else:
            self._samples_by_step = int(state.train_batch_size or 0) * int(
                args.gradient_accumulation_steps or 1
            )
        if loop is not None:  # issue 20: the model card this Trainer writes gets co2_eq_emissions
            from carbon_core.report.model_card import fill_when_written

            fill_when_written(loop.f_locals["self"], self.report, self.tracker.faults.warn)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.session.leave("checkpoint")  # a save that never came (save_strategy="best")
        self.session.enter("train")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.session.leave("train")
        seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        if seen > self._tokens_seen and state.is_world_process_zero:  # the Trainer's count is the job's
            self.session.count(tokens=seen - self._tokens_seen)
        self._tokens_seen = seen
        if self._samples_by_step:
            self.session.count(self._samples_by_step)
        self._after(control)
        self.tracker.progress(state.global_step, state.max_steps)
        # figures are due every step with a budget; on_log uses them when they are this step's
        taken = self.session.figures_at(state.global_step, state.logging_steps, logs_now=False)
        if taken is not None:
            self._job = (state.global_step, taken[0])
            if taken[1].stop:
                self.session.acted_on(taken[1], f"step {state.global_step}")
                control.should_training_stop = True
                control.should_log = True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._after(control)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.session.leave("validation")
        if control.should_save:
            self.session.enter("checkpoint")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.session.leave("checkpoint")

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> None:
        if logs is None or any(k.startswith(_NOT_TRAINING) for k in logs):
            return
        if "train_runtime" in logs and "train_loss" in logs:  # the final training log: what train() returns
            # (with include_num_input_tokens_seen every log has train_runtime; only the final one train_loss)
            self.finish(main=state.is_world_process_zero)
            metrics = _totals(self.session.last_job if self.tracker.role.distributed else None, self.final)
        else:
            step, snap = self._job
            if snap is None or (step != state.global_step and not self.tracker.role.distributed):
                # no collective here: a log call may come from one rank only (a user's trainer.log)
                snap, _ = self.session.figures(job=False)
            metrics = self.session.metrics(snap)
        logs.update(metrics)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(metrics)  # the Trainer copied logs there before on_log

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.finish(main=state.is_world_process_zero)
        if not isinstance(state.stateful_callbacks.get(type(self).__name__), list):
            state.stateful_callbacks[type(self).__name__] = self.state()  # save_state(): the final totals

    # -- internals -------------------------------------------------------------------
    def _after(self, control: Any) -> None:
        """What the Trainer does after this step or epoch end (DefaultFlowCallback has set the
        flags): log, then evaluate, then save. The phase of what comes first opens now."""
        if control.should_evaluate:
            self.session.enter("validation")
        elif control.should_save:
            self.session.enter("checkpoint")

    def _count_inputs(self, args: tuple[Any, ...]) -> None:
        """Before each training step (``training_step(model, inputs, ...)``): its samples."""
        samples = leading_size(args[1]) if len(args) > 1 else None
        if samples:
            self.session.count(samples)

    def _put_before_reporters(self) -> None:
        handler = find_caller(lists_callback(self))
        if handler is not None:
            callbacks = handler.callbacks
            first = next((i for i, cb in enumerate(callbacks) if not isinstance(cb, DefaultFlowCallback)), 0)
            move_before(callbacks, self, first)


def _totals(job: Optional[Snapshot], own: Optional[Snapshot]) -> dict[str, float]:
    """The final totals in g and Wh (the job's, as of its last logging step, when distributed)."""
    snap = job or own
    if snap is None:
        return {}
    out = {"carbon/co2eq_g": snap.co2eq_kg * 1000.0, "carbon/energy_wh": snap.energy_kwh * 1000.0}
    for part, kwh in snap.energy_by_component().items():
        if kwh is not None:
            out[f"carbon/energy_{part}_wh"] = kwh * 1000.0
    return out
