"""Run a command as a child process: forward signals to it, report its status shell style.

SIGINT, SIGTERM and SIGHUP are forwarded to the child while we wait for it; a SIGINT is
not forwarded when we are in the terminal's foreground process group, since the terminal
has already sent it to the child as well (so ``kill -INT`` on a foreground parent reaches
only the parent). Statuses follow the shell: the child's exit code, 128+N when signal N
killed it, 126 when it cannot be executed, 127 when it is not found.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from types import FrameType
from typing import Any, Optional

FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP")
CANNOT_EXECUTE = 126
NOT_FOUND = 127


def terminal_sent_it_too() -> bool:
    """True when we are in the terminal's foreground process group (Ctrl-C reached the
    whole group, the command included)."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def wait_forwarding(proc: subprocess.Popen[bytes]) -> int:
    """Wait for ``proc``, forwarding SIGINT/SIGTERM/SIGHUP; its exit status, shell style."""

    def forward(signum: int, frame: Optional[FrameType]) -> None:
        if signum == signal.SIGINT and terminal_sent_it_too():
            return
        with contextlib.suppress(OSError):  # it has just exited
            proc.send_signal(signum)

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
