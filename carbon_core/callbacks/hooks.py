"""Working around the frameworks' call order, in one place.

Keras and transformers give a callback no reference to the object that calls it and no
exception hook. These helpers find that caller on the stack, move the callback before the
reporters in its list, guard the training step so that an error there stops measuring at
once, watch the training call so that an error anywhere else stops it within a moment, and
show another callback (a progress bar) fewer of the keys that every other one gets.
Each is tested against the real frameworks (tests/test_keras.py, tests/test_transformers.py).
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Optional

logger = logging.getLogger("carbon_core")


def find_caller(predicate: Callable[[Any], bool], depth: int = 12) -> Any:
    """The first ``self`` up the call stack (within ``depth`` frames) matching ``predicate``.

    Callbacks are called by a framework object that holds the callback list (Keras'
    ``CallbackList``, transformers' ``CallbackHandler``) but are given no reference to it;
    its dispatch method is always a few frames up, so it is found here. None if not.
    """
    frame = caller_frame(predicate, depth)
    return None if frame is None else frame.f_locals.get("self")


def caller_frame(predicate: Callable[[Any], bool], depth: int = 12) -> Optional[FrameType]:
    """The frame of the first method up the call stack whose ``self`` matches ``predicate``."""
    frame: Optional[FrameType] = sys._getframe(1)
    for _ in range(depth):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        try:
            if owner is not None and predicate(owner):
                return frame
        except Exception:
            continue
    return None


class TrainingCallWatch:
    """Calls ``on_gone`` once the framework's training call (``frame``, on this thread) has
    left the stack while training is still on: it raised outside the guarded step (a data
    collator, a dataset, another callback). Checked every ``every_s`` on a daemon thread by
    a walk of the training thread's stack (a few microseconds); ``stop()`` ends the watch.
    """

    def __init__(self, frame: FrameType, on_gone: Callable[[], object], every_s: float = 0.25) -> None:
        self._frame, self._on_gone, self._every_s = frame, on_gone, every_s
        self._thread_id = threading.get_ident()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="carbon-core-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join(1.0)

    def _on_stack(self) -> bool:
        frame = sys._current_frames().get(self._thread_id)
        while frame is not None:
            if frame is self._frame:
                return True
            frame = frame.f_back
        return False

    def _run(self) -> None:
        while not self._done.wait(self._every_s):
            if not self._on_stack():
                self._done.set()
                try:
                    self._on_gone()
                except Exception:  # measuring must never raise anywhere
                    logger.exception("carbon-core: failed to stop the tracker after training ended")


def lists_callback(me: object) -> Callable[[Any], bool]:
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


def guard(
    owner: Any,
    name: str,
    on_error: Callable[[BaseException], object],
    before: Optional[Callable[[tuple[Any, ...]], Any]] = None,
    after: Optional[Callable[[Any], object]] = None,
) -> Callable[[], None]:
    """Shadow ``owner.<name>`` (the framework's per-step function) so that an exception
    raised in it calls ``on_error`` before propagating; returns the undo function.

    For frameworks with no exception hook (Keras, transformers): a crash or Ctrl-C in
    the training step still stops the tracker at once, so the totals are not lost.
    ``before(args)`` runs before each call (it sees the step's batch: the adapters count
    samples and open the ``train`` phase there) and ``after(what before returned)`` after
    it; neither may raise.
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
        token = before(args) if before is not None else None
        try:
            return original(*args, **kwargs)
        except BaseException as exc:
            undo()
            try:
                on_error(exc)
            except Exception:  # measuring must never mask the training error
                logger.exception("carbon-core: failed to stop the tracker after %r", exc)
            raise
        finally:
            if after is not None:
                after(token)

    setattr(owner, name, guarded)
    return undo


def bracket(
    owner: Any, name: str, enter: Callable[[], Any], leave: Callable[[Any], object]
) -> Callable[[], None]:
    """Shadow the method ``owner.<name>`` so that each call runs between ``enter()`` and
    ``leave(what enter returned)`` (a phase around a framework's checkpoint save); returns the
    undo function. A method already bracketed is bracketed once. Neither callable may raise."""
    original = getattr(owner, name, None)
    if original is None or getattr(original, "_carbon_bracketed", False):
        return lambda: None
    had_own = name in getattr(owner, "__dict__", {})

    def bracketed(*args: Any, **kwargs: Any) -> Any:
        token = enter()
        try:
            return original(*args, **kwargs)
        finally:
            leave(token)

    bracketed._carbon_bracketed = True  # type: ignore[attr-defined]

    def undo() -> None:
        if getattr(owner, name, None) is bracketed:
            if had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)

    setattr(owner, name, bracketed)
    return undo


def leading_size(batch: Any, depth: int = 4) -> Optional[int]:
    """The batch size of ``batch``: the first dimension of the first array or tensor found in
    it (a tensor, or one inside a tuple, list or dict, a few levels deep); None if there is
    none. Reads shapes only: never copies or synchronises a device."""
    shape = getattr(batch, "shape", None)
    if shape is not None:
        try:
            return int(shape[0]) if len(shape) > 0 else None
        except (TypeError, ValueError, IndexError):
            return None
    if depth <= 0:
        return None
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for item in itertools.islice(items, 8):
        found = leading_size(item, depth - 1)
        if found is not None:
            return found
    return None


def fewer_keys(owner: Any, names: tuple[str, ...], keep: Callable[[str], bool]) -> Callable[[], None]:
    """Shadow the hooks ``names`` of ``owner`` (each called as ``hook(index, logs)``) so that
    they see only the keys ``keep`` accepts, in a copy: the shared ``logs`` dict, and so
    every other callback, keeps them all. Returns the undo function."""
    shadowed = []
    for name in names:
        hook = getattr(owner, name, None)
        if hook is None or name in getattr(owner, "__dict__", {}):
            continue

        def fewer(index: Any, logs: Any = None, _hook: Callable[..., Any] = hook) -> Any:
            if isinstance(logs, dict):
                logs = {k: v for k, v in logs.items() if keep(k)}
            return _hook(index, logs)

        setattr(owner, name, fewer)
        shadowed.append(name)

    def undo() -> None:
        for name in shadowed:
            owner.__dict__.pop(name, None)

    return undo
