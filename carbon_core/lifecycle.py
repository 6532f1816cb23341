"""Process-wide hooks over the trackers running in this process: interpreter exit and fork.

At interpreter exit every tracker still running is stopped, so each run log gets its final
record. One ``atexit`` hook serves the process (registering one per ``start()`` would grow
CPython's atexit table by a slot per run; ``unregister`` never shrinks it). In a forked child
the sampler thread did not survive the fork and the meters and run log belong to the parent:
each tracker there keeps its last totals and measures nothing.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> object: ...

    def forget_after_fork(self) -> None: ...


#: trackers currently running in this process
_RUNNING: weakref.WeakSet[Stoppable] = weakref.WeakSet()


def started(tracker: Stoppable) -> None:
    _RUNNING.add(tracker)


def stopped(tracker: Stoppable) -> None:
    _RUNNING.discard(tracker)


def _stop_all_at_exit() -> None:
    for tracker in list(_RUNNING):
        tracker.stop()  # never raises


def _after_fork_in_child() -> None:
    for tracker in list(_RUNNING):
        tracker.forget_after_fork()
    _RUNNING.clear()


atexit.register(_stop_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
