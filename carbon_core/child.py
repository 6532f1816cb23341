"""Run a command as a child process: forward signals to every process it starts, report its
status shell style.

Without a terminal (a batch job, a container, CI), the command starts in a process group of
its own, and SIGINT, SIGTERM and SIGHUP are forwarded to that whole group: a ``train.sh``
and the ``python`` it runs both get them, not the shell alone. Under a terminal the command
stays in our process group, as a shell leaves a foreground job, so that Ctrl-C, Ctrl-Z,
``fg``/``bg`` and reading the terminal work as for any command; the terminal sends Ctrl-C to
the whole group itself, so a SIGINT is then not forwarded again (``kill -INT`` on a foreground
parent reaches only the parent), and a signal sent to us alone goes to the child and all its
descendants. After forwarding a signal we wait, once the child has exited, until every
process that got it has exited too, so that nothing is left running unmeasured.

Statuses follow the shell: the child's exit code, 128+N when signal N killed it, 126 when it
cannot be executed, 127 when it is not found.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any, Optional

FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP")
CANNOT_EXECUTE = 126
NOT_FOUND = 127
#: how often the processes that got a forwarded signal are looked at once the child has exited
POLL_S = 0.05


def _terminal_group() -> Optional[int]:
    """The foreground process group of our controlling terminal (on stdin, stdout or stderr)."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd)
        except OSError:
            continue
    return None


def terminal_sent_it_too() -> bool:
    """True when we are in the terminal's foreground process group (Ctrl-C reached the
    whole group, the command included)."""
    return _terminal_group() == os.getpgrp()


def start(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``command``: in a process group of its own, or in ours under a terminal (see above).
    Raises OSError as :class:`subprocess.Popen` does."""
    if _terminal_group() is not None:
        return subprocess.Popen(command)
    if sys.version_info >= (3, 11):
        return subprocess.Popen(command, process_group=0)
    return subprocess.Popen(command, preexec_fn=os.setpgrp)  # pragma: no cover - Python < 3.11


def _processes() -> Optional[list[tuple[int, int, int, bool]]]:
    """``(pid, parent pid, process group, alive)`` of every process (zombies are not alive),
    from /proc; None where there is none."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    out = []
    for name in filter(str.isdigit, names):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except (OSError, ValueError):
            continue  # not a process, or gone
        fields = data[data.rfind(b")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            out.append((int(name), int(fields[1]), int(fields[2]), fields[0] not in (b"Z", b"X")))
    return out


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started and their own, all the way down (none known without /proc)."""
    children: dict[int, list[int]] = {}
    for p, parent, _, _ in _processes() or ():
        children.setdefault(parent, []).append(p)
    out, todo = [], [pid]
    while todo:
        found = children.get(todo.pop(), [])
        out.extend(found)
        todo.extend(found)
    return out


def _running(group: Optional[int], pids: Sequence[int]) -> bool:
    """Whether a process of ``group`` (or, without one, one of ``pids``) is still running."""
    table = _processes()
    if table is not None:
        if group is not None:
            return any(g == group and alive for _, _, g, alive in table)
        return any(p in pids and alive for p, _, _, alive in table)
    if group is not None:
        return _exists(os.killpg, group)
    return any(_exists(os.kill, pid) for pid in pids)


def _exists(kill: Any, target: int) -> bool:
    try:
        kill(target, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it is there
        pass
    return True


def wait_forwarding(proc: subprocess.Popen[bytes]) -> int:
    """Wait for ``proc``, forwarding SIGINT/SIGTERM/SIGHUP to its process group (or, when it
    shares ours, to it and its descendants), then for every process that got one; the
    child's exit status, shell style."""
    group: Optional[int] = None
    with contextlib.suppress(OSError):
        group = os.getpgid(proc.pid)
    group = None if group == os.getpgrp() else group
    signalled: list[int] = []

    def forward(signum: int, frame: Optional[FrameType]) -> None:
        if signum == signal.SIGINT and terminal_sent_it_too():
            return
        if group is not None:
            signalled.append(group)
            with contextlib.suppress(OSError):  # they have all exited
                os.killpg(group, signum)
            return
        pids = [proc.pid, *descendants(proc.pid)] if proc.returncode is None else []
        for pid in pids:
            with contextlib.suppress(OSError):  # it has just exited
                os.kill(pid, signum)
        signalled.extend(pids)

    previous: dict[int, Any] = {}
    for name in FORWARDED:
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                previous[sig] = signal.signal(sig, forward)
            except ValueError:  # not the main thread: no forwarding
                break
    try:
        rc = proc.wait()
        while signalled and _running(group, signalled):
            time.sleep(POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return shell_status(rc)


def shell_status(returncode: int) -> int:
    """A ``Popen.returncode`` as a shell reports it: ``-N`` (killed by signal N) is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_name(status: int) -> Optional[str]:
    """``SIGTERM`` for the shell status 143, and so on; None when no signal is behind it."""
    if status <= 128:
        return None
    try:
        return signal.Signals(status - 128).name
    except ValueError:
        return None


def start_failure_status(exc: OSError) -> int:
    """The shell status of a command that could not be started: not found, or not executable."""
    return NOT_FOUND if isinstance(exc, FileNotFoundError) else CANNOT_EXECUTE
