"""The processes whose CPU time and memory the estimates attribute to the run.

By default: this process and all its descendants (a ``carbon-core run`` child, data-loader
workers). The distributed layer can widen this to every training process of the node.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

ProcessSelector = Callable[[], Iterable[Any]]  # yields psutil.Process objects


def process_tree(pid: int | None = None) -> ProcessSelector:
    """A selector for ``pid`` (default: this process) and its live descendants."""
    import psutil

    root = psutil.Process(pid or os.getpid())

    def select() -> list[Any]:
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return [root]

    return select
