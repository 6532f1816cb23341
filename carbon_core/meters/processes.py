"""The processes whose CPU time and memory the estimates attribute to the run.

By default: this process and all its descendants (a ``carbon-core run`` child, data-loader
workers). The distributed layer can widen this to every training process of the node.

Finding descendants means scanning every process of the machine (``/proc``), which costs
milliseconds; the list is therefore refreshed at growing intervals, 1 s, 2 s, 4 s, then
every ``refresh_s`` seconds (10 by default), and reused in between. A process born in
between is picked up at the next refresh with all the CPU time it used so far (and one
that ended meanwhile counts through its parent's reaped-children time), so only its
memory between birth and refresh is missed.

On Linux the processes are read straight from ``/proc``: the files, fields and formulas
psutil uses there, so every figure is the one psutil would give, without importing psutil
(tens of milliseconds) when a tracker starts. Elsewhere they are ``psutil.Process`` objects.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Meter

#: yields the measured processes: objects with ``cpu_times()`` and ``memory_info()``, as psutil's
ProcessSelector = Callable[[], Iterable[Any]]
REFRESH_S = 10.0
PROC = "/proc"


class CpuTimes(NamedTuple):
    """Seconds of CPU, as ``psutil.Process.cpu_times()``: own, and of reaped descendants."""

    user: float
    system: float
    children_user: float
    children_system: float


class MemoryInfo(NamedTuple):
    rss: int  #: resident set size, bytes


@lru_cache(maxsize=1)
def _units() -> tuple[int, int]:
    """(clock ticks per second, page size in bytes): the units of /proc/<pid>/stat and statm."""
    return os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and ')')."""
    with open(f"{PROC}/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rfind(b")") + 2 :].split()


class ProcfsProcess:
    """One process read from ``/proc``; raises OSError once it is gone, as psutil raises its errors."""

    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_times(self) -> CpuTimes:
        fields, ticks = _stat(self.pid), _units()[0]
        return CpuTimes(*(float(fields[i]) / ticks for i in (11, 12, 13, 14)))  # utime .. cstime

    def memory_info(self) -> MemoryInfo:
        with open(f"{PROC}/{self.pid}/statm", "rb") as f:
            return MemoryInfo(int(f.readline().split()[1]) * _units()[1])


def _descendant_pids(root: int, root_start: int) -> list[int]:
    """``psutil.Process(root).children(recursive=True)`` on Linux: the same pids, in the same order.

    A process that started before ``root`` holds a reused pid and is left out; OSError when
    ``root`` itself is gone or its pid was reused, or when a process cannot be read.
    """
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            fields = _stat(int(name))
        except (FileNotFoundError, ProcessLookupError):  # ended while listing
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
        started[int(name)] = int(fields[19])
    if int(_stat(root)[19]) != root_start:
        raise ProcessLookupError(f"pid {root} now names another process")
    found: list[int] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in seen:  # pids reused while listing can make a cycle
            continue
        seen.add(pid)
        for child in children.get(pid, ()):
            if root_start <= started[child]:
                found.append(child)
                stack.append(child)
    return found


def _procfs_tree(pid: int) -> tuple[Any, Callable[[], list[Any]]]:
    start = int(_stat(pid)[19])

    def descendants() -> list[Any]:
        try:
            return [ProcfsProcess(p) for p in _descendant_pids(pid, start)]
        except OSError:
            return []

    return ProcfsProcess(pid), descendants


def _psutil_tree(pid: int) -> tuple[Any, Callable[[], list[Any]]]:
    import psutil

    root = psutil.Process(pid)

    def descendants() -> list[Any]:
        try:
            return root.children(recursive=True)
        except psutil.Error:
            return []

    return root, descendants


def process_tree(pid: int | None = None, refresh_s: float = REFRESH_S) -> ProcessSelector:
    """A selector for ``pid`` (default: this process) and its live descendants."""
    pid = pid or os.getpid()
    root, descendants = (_procfs_tree if os.path.exists(f"{PROC}/{pid}/stat") else _psutil_tree)(pid)
    cache: list[Any] = [root]
    next_scan, period = 0.0, 1.0

    def select() -> list[Any]:
        nonlocal cache, next_scan, period
        now = time.monotonic()
        if now >= next_scan:
            next_scan, period = now + period, min(refresh_s, period * 2)
            cache = [root, *descendants()]
        return cache

    return select


class ProcessTreeMeter(Meter):
    """Base of the estimates that attribute to the run what its processes use."""

    def __init__(self, faults: FaultLog | None = None, processes: ProcessSelector | None = None) -> None:
        super().__init__(faults)
        self._select = processes or process_tree()

    def _total(self, figure: Callable[[Any], float]) -> float:
        """``figure`` summed over the measured processes; one gone or inaccessible is skipped."""
        total: float = 0
        for proc in self._select():
            try:
                total += figure(proc)
            except Exception:
                continue
        return total
