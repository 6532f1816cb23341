"""The processes whose CPU time and memory the estimates attribute to the run.

By default: this process and all its descendants (a ``carbon-core run`` child, data-loader
workers). The distributed layer can widen this to every training process of the node.

Finding descendants means scanning every process of the machine (``/proc``), which costs
milliseconds; the list is therefore refreshed at growing intervals, 1 s, 2 s, 4 s, then
every ``refresh_s`` seconds (10 by default), and reused in between. A process born in
between is picked up at the next refresh with all the CPU time it used so far (and one
that ended meanwhile counts through its parent's reaped-children time), so only its
memory between birth and refresh is missed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

ProcessSelector = Callable[[], Iterable[Any]]  # yields psutil.Process objects
REFRESH_S = 10.0


def process_tree(pid: int | None = None, refresh_s: float = REFRESH_S) -> ProcessSelector:
    """A selector for ``pid`` (default: this process) and its live descendants."""
    import psutil

    root = psutil.Process(pid or os.getpid())
    cache: list[Any] = [root]
    next_scan, period = 0.0, 1.0

    def select() -> list[Any]:
        nonlocal cache, next_scan, period
        now = time.monotonic()
        if now >= next_scan:
            next_scan, period = now + period, min(refresh_s, period * 2)
            try:
                cache = [root, *root.children(recursive=True)]
            except psutil.Error:
                cache = [root]
        return cache

    return select
