"""The processes whose CPU time and memory the estimates attribute to the run.

By default: this process and all its descendants (a ``carbon-core run`` child, data-loader
workers). The distributed layer can widen this to every training process of the node.

Finding descendants means scanning every process of the machine (``/proc``), which costs
milliseconds; the list is therefore refreshed at growing intervals, 1 s, 2 s, 4 s, then
every ``refresh_s`` seconds (10 by default), and reused in between. A process born in
between is picked up at the next refresh with all the CPU time it used so far (and one
that ended meanwhile counts through its parent's reaped-children time), so only its
memory between birth and refresh is missed.

Each process is known by its pid and start time (:class:`CpuReading` ``key``): a pid the
kernel hands to a new process is another process. Memory comes two ways: the resident set
(RSS, ``statm``, about 10 µs a read), in which a page shared by forked processes counts in
each of them, and the proportional set (PSS, ``smaps_rollup``), which splits each page
between its sharers but costs a walk of the page tables: about 0.1 ms plus 8 ms per GB
resident (measured on Linux 6.18), see :mod:`carbon_core.meters.ram_estimate`.

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


class CpuReading(NamedTuple):
    """One process's CPU seconds, with what tells it apart and whose child it is."""

    key: tuple[int, float]  #: (pid, start time): a reused pid is another process
    ppid: int
    own: float  #: user + system seconds of the process itself
    reaped: float  #: user + system seconds of its descendants that ended and were waited for


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

    def cpu_reading(self) -> CpuReading:
        fields, ticks = _stat(self.pid), _units()[0]
        own = (float(fields[11]) + float(fields[12])) / ticks
        reaped = (float(fields[13]) + float(fields[14])) / ticks
        return CpuReading((self.pid, float(fields[19])), int(fields[1]), own, reaped)

    def pss_readable(self) -> bool:
        """Whether ``smaps_rollup`` opens: the permission check is made there, the walk on read."""
        try:
            open(f"{PROC}/{self.pid}/smaps_rollup", "rb").close()
        except OSError:
            return False
        return True

    def memory_pss(self) -> tuple[int, int]:
        """``(rss, pss)`` in bytes from ``smaps_rollup``; (0, 0) for a zombie, which holds none
        (its ``smaps_rollup`` answers ESRCH).

        OSError where the file cannot be read (gone, no permission, a kernel before 4.14).
        """
        try:
            with open(f"{PROC}/{self.pid}/smaps_rollup", "rb") as f:
                data = f.read()
        except ProcessLookupError:  # a zombie, a kernel thread: no memory map at all
            return 0, 0
        if not data:
            return 0, 0
        lines = (line.split() for line in data.splitlines() if line.startswith((b"Rss:", b"Pss:")))
        kb = {fields[0]: int(fields[1]) for fields in lines}
        if b"Rss:" not in kb or b"Pss:" not in kb:
            raise OSError(f"no Rss and Pss in {PROC}/{self.pid}/smaps_rollup")
        return kb[b"Rss:"] * 1024, kb[b"Pss:"] * 1024


def cpu_reading(proc: Any) -> CpuReading:
    """:class:`CpuReading` of a process from ``/proc`` or of a psutil-like one; raises once it is gone."""
    if isinstance(proc, ProcfsProcess):
        return proc.cpu_reading()
    t = proc.cpu_times()
    pid = int(getattr(proc, "pid", id(proc)))
    create_time = getattr(proc, "create_time", None)
    ppid = getattr(proc, "ppid", None)
    return CpuReading(
        (pid, float(create_time()) if callable(create_time) else 0.0),
        int(ppid()) if callable(ppid) else -1,
        float(t.user + t.system),
        float(getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)),
    )


def still_running(proc: Any, key: tuple[int, float]) -> bool:
    """Whether the process ``key`` names still runs (a pid taken by another process does not)."""
    try:
        return cpu_reading(proc).key == key
    except Exception:
        return False


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
