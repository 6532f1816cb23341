"""Process faults: SIGKILL mid-run, stop() twice / from another thread / never, a thousand
start/stop cycles, and a fork after start.

Whatever happens to the process, the run log stays readable and loses at most the
interval in flight; nothing the tracker leaves behind (threads, file handles, memory)
grows with the number of runs; interpreter exit never hangs.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_grid_server import FakeGridServer, Reply

from carbon_core import Tracker
from carbon_core.runlog import read_records

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

INTERVAL_S = 0.1


def _child(tmp_path: Path, code: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=full_env, cwd=tmp_path,
    )  # fmt: skip


def _log(log_dir: Path) -> list[dict[str, Any]]:
    (path,) = log_dir.glob("*.jsonl")
    return list(read_records(path))


def test_sigkill_loses_at_most_the_interval_in_flight(tmp_path: Path) -> None:
    proc = _child(
        tmp_path,
        f"""
        import time
        from carbon_core import Tracker
        t = Tracker(interval_s={INTERVAL_S}, intensity=100, gpus="none", log_dir="log",
                    meters=["cpu-estimate", "ram-estimate"])
        print(time.monotonic(), flush=True)  # just before the run's clock starts
        t.start()
        while True:
            sum(i * i for i in range(10000))  # busy, like training
        """,
    )
    assert proc.stdout is not None
    t0 = float(proc.stdout.readline())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # let it run a few intervals (a loaded CI box is slow)
        logs = list((tmp_path / "log").glob("*.jsonl"))
        if logs and logs[0].read_text().count('"type":"interval"') >= 6:
            break
        time.sleep(0.05)
    time.sleep(0.13)  # somewhere inside an interval
    killed_at = time.monotonic()  # CLOCK_MONOTONIC is the same clock in both processes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    records = _log(tmp_path / "log")  # every line is whole JSON, the reader never raises
    assert records[0]["type"] == "header"
    assert all(r["type"] != "final" for r in records)
    intervals = [r for r in records if r["type"] == "interval"]
    assert len(intervals) >= 5
    lost_s = killed_at - t0 - intervals[-1]["t1"]
    assert 0 <= lost_s < INTERVAL_S + 0.25, f"{lost_s:.3f} s of measurement lost"
    for a, b in zip(intervals, intervals[1:]):
        assert b["t0"] == a["t1"]  # no gap: each interval starts where the last ended
        assert all(b["joules"][c] >= a["joules"][c] for c in a["joules"])


def test_sigkill_leaves_a_log_the_reader_and_report_load(tmp_path: Path) -> None:
    """A torn last line (the process killed while writing) is skipped, not an error."""
    proc = _child(
        tmp_path,
        """
        from carbon_core import Tracker
        t = Tracker(interval_s=0.01, intensity=100, gpus="none", log_dir="log",
                    meters=["cpu-estimate"]).start()
        print("up", flush=True)
        import time; time.sleep(60)
        """,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    time.sleep(0.3)
    proc.kill()
    proc.wait(10)
    (path,) = (tmp_path / "log").glob("*.jsonl")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"type": "interval", "t0": 1.0, "t1"')  # what a kill mid-write leaves
    records = list(read_records(path))
    assert records[-1]["type"] == "interval" and "joules" in records[-1]
    from carbon_core.runlog import load

    run = load(path)
    assert run is not None


def test_stop_twice_returns_the_same_final_snapshot() -> None:
    tracker = Tracker(interval_s=0.02, intensity=100, gpus="none", log_dir="off").start()
    time.sleep(0.1)
    first = tracker.stop()
    second = tracker.stop()
    assert first is second
    assert first.duration_s > 0
    assert tracker.snapshot() is first


def test_stop_from_another_thread_while_training_reads() -> None:
    tracker = Tracker(interval_s=0.01, intensity=100, gpus="none", log_dir="off").start()
    errors: list[BaseException] = []
    done = threading.Event()
    results: list[Any] = []

    def stopper() -> None:
        time.sleep(0.1)
        try:
            results.append(tracker.stop())
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)
        done.set()

    threading.Thread(target=stopper).start()
    reads = 0
    while not done.is_set():  # the training thread keeps reading snapshots meanwhile
        snap = tracker.snapshot()
        snap.to_metrics()
        reads += 1
    assert not errors and reads > 0
    assert tracker.stop() is results[0]


def test_concurrent_stops_all_return_one_final_snapshot() -> None:
    tracker = Tracker(interval_s=0.01, intensity=100, gpus="none", log_dir="off").start()
    time.sleep(0.05)
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def stop() -> None:
        barrier.wait()
        results.append(tracker.stop())

    threads = [threading.Thread(target=stop) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(results) == 8
    assert len({id(r) for r in results}) == 1


def test_exception_in_the_with_block_propagates_and_totals_are_kept(tmp_path: Path) -> None:
    tracker = Tracker(interval_s=0.02, intensity=100, gpus="none", log_dir=tmp_path / "log")
    with pytest.raises(ZeroDivisionError), tracker:
        time.sleep(0.1)
        1 / 0  # noqa: B018
    assert not tracker.running
    assert _log(tmp_path / "log")[-1]["type"] == "final"


def test_stop_and_start_before_any_interval(tmp_path: Path) -> None:
    tracker = Tracker(interval_s=300, intensity=100, gpus="none", log_dir=tmp_path / "log")
    assert tracker.stop().duration_s == 0  # never started: a no-op
    tracker.start()
    final = tracker.stop()  # before the first interval: the final reading covers it
    assert final.duration_s > 0
    types = [r["type"] for r in _log(tmp_path / "log") if r["type"] != "warning"]
    assert types == ["header", "interval", "final"]


EXIT_CHILD = """
import os, sys, time
from carbon_core import Tracker
t = Tracker(interval_s=0.05, gpus="none", log_dir="log", meters=["cpu-estimate"], **KW)
t.start()
time.sleep(0.3)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("how", ["return", "sys.exit", "exception"])
def test_interpreter_exit_without_stop_finalises_the_log(tmp_path: Path, how: str) -> None:
    ending = {"return": "", "sys.exit": "sys.exit(3)", "exception": "raise RuntimeError('user code died')"}[
        how
    ]
    code = "KW = {'intensity': 100}\n" + EXIT_CHILD + ending + "\n"
    started = time.monotonic()
    proc = _child(tmp_path, code)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert out.strip() == "exiting"
    assert proc.returncode == {"return": 0, "sys.exit": 3, "exception": 1}[how], err
    assert took < 15, f"exit took {took:.1f} s"
    records = _log(tmp_path / "log")
    assert records[-1]["type"] == "final", "the atexit hook wrote the final record"
    assert records[-1]["snapshot"]["duration_s"] >= 0.25
    if how != "exception":
        assert "Traceback" not in err, err


def test_interpreter_exit_while_a_live_request_hangs(tmp_path: Path) -> None:
    """The refresher is stuck on a server that never answers: exit is still prompt."""
    with FakeGridServer() as server:
        server.uk(Reply(mode="hang"))
        code = "KW = {'zone': 'GB', 'live': True}\n" + EXIT_CHILD
        started = time.monotonic()
        proc = _child(tmp_path, code, env={"CARBON_UK_URL": server.url + "/uk", "NO_PROXY": "127.0.0.1"})
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
        assert server.count() >= 1, "the child was waiting on the server"
    assert proc.returncode == 0, err
    assert took < 15, f"exit took {took:.1f} s"
    assert _log(tmp_path / "log")[-1]["type"] == "final"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("carbon-core")}


@pytest.mark.slow
def test_a_thousand_start_stop_cycles_leak_nothing(tmp_path: Path) -> None:
    import atexit

    def cycles(n: int, log: bool) -> None:
        tracker = Tracker(
            interval_s=0.01, intensity=100, gpus="none", log_dir=tmp_path / "log" if log else "off"
        )
        for _ in range(n):
            tracker.start()
            tracker.snapshot()
            tracker.stop()
        for _ in range(n // 10):  # and fresh trackers
            with Tracker(interval_s=0.01, intensity=100, gpus="none", log_dir="off"):
                pass

    cycles(50, log=True)  # warm up caches (imports, tables, psutil)
    gc.collect()
    fds, rss, count = _fds(), _rss_kb(), threading.active_count()
    ncallbacks = atexit._ncallbacks()
    cycles(1000, log=False)
    cycles(100, log=True)
    gc.collect()
    assert not _threads(), "no sampler or refresher thread left behind"
    assert threading.active_count() <= count
    assert _fds() <= fds, "no file handle left open"
    assert atexit._ncallbacks() <= ncallbacks, "no atexit hook left registered"
    grown_kb = _rss_kb() - rss
    assert grown_kb < 20_000, f"RSS grew by {grown_kb} kB over 1,100 runs"
    assert len(list((tmp_path / "log").glob("*.jsonl"))) == 150


def test_fork_after_start_child_measures_nothing_parent_continues(tmp_path: Path) -> None:
    proc = _child(
        tmp_path,
        """
        import os, sys, time, json
        from carbon_core import Tracker
        from carbon_core.runlog import read_records
        t = Tracker(interval_s=0.02, intensity=100, gpus="none", log_dir="log",
                    meters=["cpu-estimate", "ram-estimate"]).start()
        time.sleep(0.2)
        (path,) = __import__("pathlib").Path("log").glob("*.jsonl")
        pid = os.fork()
        if pid == 0:  # child: a DataLoader worker, say
            snap = t.snapshot()
            before = path.stat().st_size
            final = t.stop()  # a no-op here
            time.sleep(0.2)
            assert final is snap and not t.running
            assert t.log_path is None  # the log is the parent's
            sys.exit(0)  # a normal exit: atexit hooks run in the child too
        _, status = os.waitpid(pid, 0)
        size_after_child = path.stat().st_size
        time.sleep(0.2)
        mid = t.snapshot()
        final = t.stop()
        records = list(read_records(path))
        types = [r["type"] for r in records]
        print(json.dumps({"status": os.waitstatus_to_exitcode(status), "final": types.count("final"),
                          "header": types.count("header"), "grew": path.stat().st_size > size_after_child,
                          "later": final.duration_s > mid.duration_s > 0.2}))
        """,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"status": 0, "final": 1, "header": 1, "grew": True, "later": True}, (result, err)
