"""``carbon-core run`` and the process tree of the command: signals reach every process the
command started, carbon-core waits for them, Ctrl-C in a terminal works as for any command,
and a reader that goes away (``| head -c1``) does not change the exit status.

Real processes throughout: a shell script that starts the training (a Python process with
a SIGTERM handler that finishes its "checkpoint" before exiting), real signals, a real
pseudo-terminal as the controlling terminal, a real ``head``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.fault,
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and terminals"),
]

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "carbon_core.cli"]
#: the training: says where it is, then on SIGTERM/SIGINT/SIGHUP writes its checkpoint and exits
TRAIN = """\
import os, signal, sys, time
def stop(signum, frame):
    with open("checkpoint", "a") as f:
        f.write(signal.Signals(signum).name + "\\n")
    time.sleep(0.3)  # a checkpoint takes a while
    with open("done", "w") as f:
        f.write("saved\\n")
    sys.exit(0)
for name in ("SIGTERM", "SIGINT", "SIGHUP"):
    signal.signal(getattr(signal, name), stop)
with open("pid", "w") as f:
    f.write(str(os.getpid()))
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CARBON_")}
    out.update(
        CARBON_ZONE="DE", CARBON_LOG_DIR=str(tmp_path / "logs"), CARBON_INTERVAL_S="0.1",
        PYTHONPATH=str(ROOT),
    )  # fmt: skip
    return out


@pytest.fixture
def train_sh(tmp_path: Path) -> Iterator[Path]:
    """``./train.sh``: a shell that runs the training and waits for it (it is not exec'd)."""
    (tmp_path / "train.py").write_text(TRAIN)
    script = tmp_path / "train.sh"
    script.write_text(f'#!/bin/sh\n"{sys.executable}" train.py\necho "training over: $?"\n')
    script.chmod(0o755)
    yield script
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):  # never leave it behind
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


# -- no terminal: a batch job, a container, CI ---------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_reaches_the_training_behind_a_shell_script(
    env: dict[str, str], train_sh: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [*CLI, "run", "--", "./train.sh"], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    pid = int((tmp_path / "pid").read_text())
    proc.send_signal(sig)  # to carbon-core alone, as a scheduler or `kill` sends it
    _, err = proc.communicate(timeout=60)
    assert (tmp_path / "checkpoint").read_text() == f"{sig.name}\n", err  # the training got it, once
    assert (tmp_path / "done").exists(), "carbon-core returned before the training had finished"
    assert not _alive(pid)
    assert proc.returncode in (0, 128 + sig), err  # the shell's status: it exited or the signal killed it
    assert "Traceback" not in err and "CO2eq" in err
    (log,) = (tmp_path / "logs").glob("*.jsonl")
    assert '"type":"final"' in log.read_text().splitlines()[-1]


def test_the_whole_tree_is_waited_for_even_after_the_shell_has_gone(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The shell runs the training in the background and exits at once on SIGTERM: the
    training, now an orphan, still gets the signal and is waited for."""
    (tmp_path / "train.py").write_text(TRAIN)
    command = ["sh", "-c", f'"{sys.executable}" train.py & wait']
    proc = subprocess.Popen(
        [*CLI, "run", "--", *command], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert (tmp_path / "done").exists(), err
        assert not _alive(int((tmp_path / "pid").read_text()))
        assert proc.returncode == 128 + signal.SIGTERM and "killed by SIGTERM" in err
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)


# -- under a terminal ---------------------------------------------------------------------
#: makes the pseudo-terminal on stdin the controlling terminal of a new session, then runs
#: carbon-core in it: a login shell's foreground job, without the shell
IN_TERMINAL = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)


class Terminal:
    """carbon-core on a pseudo-terminal; everything it and its command write is collected."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", IN_TERMINAL, "-m", "carbon_core.cli", *args], env=env, cwd=cwd,
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self.output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every writer has gone
                return
            if not data:
                return
            self.output += data

    def wait_for(self, text: bytes) -> None:
        deadline = time.monotonic() + 60
        while text not in self.output:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.output.decode(
                errors="replace"
            )
            time.sleep(0.02)

    def finish(self) -> int:
        rc = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        os.close(self.master)
        return rc


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals")
def test_ctrl_c_in_a_terminal_reaches_the_command_once(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    term = Terminal(["run", "--", sys.executable, "train.py"], env, tmp_path)
    try:
        term.wait_for(b"ready")
        os.write(term.master, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground job
        rc = term.finish()
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)
    text = term.output.decode(errors="replace")
    assert rc == 0, text  # the training's own handler decided how to end
    assert (tmp_path / "checkpoint").read_text() == "SIGINT\n"
    assert "exited with code 0" in text and "CO2eq" in text and "Traceback" not in text


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals")
def test_sigterm_in_a_terminal_reaches_the_training_behind_a_shell_script(
    env: dict[str, str], train_sh: Path, tmp_path: Path
) -> None:
    """Under a terminal the command stays in carbon-core's process group (for job control),
    and a signal sent to carbon-core alone still reaches every process of the command."""
    term = Terminal(["run", "--", "./train.sh"], env, tmp_path)
    term.wait_for(b"ready")
    term.proc.send_signal(signal.SIGTERM)
    rc = term.finish()
    text = term.output.decode(errors="replace")
    assert (tmp_path / "checkpoint").read_text() == "SIGTERM\n", text
    assert (tmp_path / "done").exists() and not _alive(int((tmp_path / "pid").read_text()))
    assert rc in (0, 128 + signal.SIGTERM) and "Traceback" not in text


# -- a reader that goes away ----------------------------------------------------------------
#: says hello (if anyone still reads), waits until the test has let the reader go, then exits 3
WAITS = (
    "import contextlib, os, time\n"
    "with contextlib.suppress(OSError):\n"
    "    os.write(1, b'hello\\n')\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.02)\n"
    "raise SystemExit(3)\n"
)


@pytest.mark.skipif(shutil.which("head") is None, reason="no head")
@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_run_json_into_head_keeps_the_commands_exit_code(
    env: dict[str, str], tmp_path: Path, both: bool
) -> None:
    """``carbon-core run --json -- cmd | head -c1`` (and ``2>&1 | head -c1``)."""
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as err_file:
        proc = subprocess.Popen(
            [*CLI, "run", "--json", "--", sys.executable, "-c", WAITS], env=env, cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if both else err_file,
        )  # fmt: skip
        assert proc.stdout is not None
        head = subprocess.run(["head", "-c1"], stdin=proc.stdout, capture_output=True, timeout=60)
        proc.stdout.close()  # head has exited: nobody reads carbon-core's stdout any more
        assert head.stdout == b"h" or (both and len(head.stdout) == 1)  # or carbon-core's first word
        (tmp_path / "go").touch()
        rc = proc.wait(timeout=60)
    assert rc == 3
    if not both:
        text = errors.read_text()
        assert "exited with code 3" in text
        for noise in ("Traceback", "BrokenPipe", "Exception ignored"):
            assert noise not in text, text
