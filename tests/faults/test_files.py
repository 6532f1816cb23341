"""Files: the run log directory unwritable, the disk full, a log path that is a symlink.

Training (here: the caller's loop reading snapshots) goes on, the fault costs one warning,
and nothing is written outside the chosen directory.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from carbon_core import Tracker
from carbon_core.runlog import read_records

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]


def _train(tracker: Tracker, seconds: float = 0.25) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tracker.snapshot().to_metrics()
        time.sleep(0.005)


def _run(log_dir: Any) -> Any:
    tracker = Tracker(interval_s=0.02, intensity=100, gpus="none", log_dir=log_dir).start()
    _train(tracker)
    return tracker, tracker.stop()


def _log_warnings(snap: Any) -> list[str]:
    return [w for w in snap.warnings if "run log" in w]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file", "too-long"])
def test_unwritable_log_dir(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    log_dir = {
        "under-a-file": blocker / "runs",  # mkdir fails (root cannot either)
        "is-a-file": blocker,
        "too-long": tmp_path / ("x" * 300),
    }[where]
    before = _tree(tmp_path)
    tracker, final = _run(log_dir)
    assert final.duration_s > 0 and final.energy_kwh > 0  # measured all the same
    assert len(_log_warnings(final)) == 1
    assert _tree(tmp_path) == before and blocker.read_text() == "not a directory\n"
    assert tracker.log_path is None


class _Full:
    """A file object whose writes (or flushes) fail as on a full disk, once ``full`` is set."""

    def __init__(self, real: Any, fail_on: str, full: bool = True) -> None:
        self.real, self.fail_on, self.full, self.calls = real, fail_on, full, 0

    def write(self, text: str) -> int:
        if self.full:
            self.calls += 1
        if self.full and self.fail_on == "write":
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real.write(text)

    def flush(self) -> None:
        if self.full and self.fail_on == "flush":
            raise OSError(errno.ENOSPC, "No space left on device")
        self.real.flush()

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("fail_on", ["write", "flush"])
def test_disk_full_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str) -> None:
    files: list[_Full] = []
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        files.append(_Full(real_fdopen(fd, *args, **kwargs), fail_on, full=False))
        return files[-1]

    monkeypatch.setattr("carbon_core.runlog.writer.os.fdopen", fdopen)
    tracker = Tracker(interval_s=0.02, intensity=100, gpus="none", log_dir=tmp_path / "log").start()
    _train(tracker, 0.1)
    (full,) = files
    full.full = True  # the disk fills up mid-run
    _train(tracker)
    final = tracker.stop()
    monkeypatch.undo()
    assert final.duration_s > 0.3
    (warning,) = _log_warnings(final)
    assert "No space left" in warning
    assert full.calls <= 2, "the log stops after the first failure"
    assert tracker.log_path is not None
    records = list(read_records(tracker.log_path))  # what was written before stays readable
    assert records[0]["type"] == "header" and len(records) >= 2


def test_disk_full_from_the_first_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        return _Full(real_fdopen(fd, *args, **kwargs), "write")

    monkeypatch.setattr("carbon_core.runlog.writer.os.fdopen", fdopen)
    _, final = _run(tmp_path / "log")
    monkeypatch.undo()
    assert final.duration_s > 0
    assert len(_log_warnings(final)) == 1


@pytest.mark.parametrize("target", ["existing-file", "dangling"])
def test_log_file_path_is_a_symlink_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """Someone planted a symlink where the run log will be created: it is not followed."""
    log_dir, elsewhere = tmp_path / "log", tmp_path / "elsewhere"
    log_dir.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    if target == "existing-file":
        victim.write_text("precious\n")
    monkeypatch.setattr("carbon_core.runlog.writer.new_run_id", lambda: "fixedrunid01")
    host = socket.gethostname().replace(os.sep, "_") or "host"
    now = time.time()
    for dt in range(-1, 4):  # the name holds the UTC second of the start
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now + dt))
        (log_dir / f"{stamp}-{host}-fixedrunid01.jsonl").symlink_to(victim)
    _, final = _run(log_dir)
    assert final.duration_s > 0
    assert len(_log_warnings(final)) == 1
    if target == "existing-file":
        assert victim.read_text() == "precious\n"
    else:
        assert not victim.exists()
    assert _tree(elsewhere) == ({"victim.txt"} if target == "existing-file" else set())


def test_log_dir_removed_mid_run(tmp_path: Path) -> None:
    import shutil

    tracker = Tracker(interval_s=0.02, intensity=100, gpus="none", log_dir=tmp_path / "log").start()
    _train(tracker, 0.1)
    shutil.rmtree(tmp_path / "log")
    _train(tracker, 0.1)
    final = tracker.stop()  # the open file is unlinked: writes go nowhere, no error
    assert final.duration_s > 0.15
    assert not (tmp_path / "log").exists(), "the directory is not re-created behind the user's back"
