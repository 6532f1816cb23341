"""Working around the frameworks' call order, in one place.

Keras and transformers give a callback no reference to the object that calls it and no
exception hook. These helpers find that caller on the stack, move the callback before the
reporters in its list, and guard the training step so that an error still stops measuring.
Each is tested against the real frameworks (tests/test_keras.py, tests/test_transformers.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("carbon_core")


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
