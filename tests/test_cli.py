"""The ``carbon-core`` command, run as a real subprocess (offline: CARBON_ZONE=DE)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from carbon_core.child import descendants

CLI = [sys.executable, "-m", "carbon_core.cli"]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("CARBON_")}
    out.update(CARBON_ZONE="DE", CARBON_LOG_DIR=str(tmp_path / "logs"), CARBON_INTERVAL_S="0.1")
    return out


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _logs(env: dict[str, str]) -> list[Path]:
    return sorted(Path(env["CARBON_LOG_DIR"]).glob("*.jsonl"))


def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


# -- run --------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [0, 3])
def test_run_passes_the_exit_code_through(env: dict[str, str], code: int) -> None:
    res = cli(
        "run",
        "--interval",
        "0.1",
        "--",
        sys.executable,
        "-c",
        f"import time; time.sleep(0.3); print('hello'); raise SystemExit({code})",
        env=env,
    )
    assert res.returncode == code, res.stderr
    assert "hello" in res.stdout
    assert f"exited with code {code}" in res.stderr
    assert "CO2eq" in res.stderr and "table:country:DE:2024" in res.stderr
    assert "Traceback" not in res.stderr
    assert len(_logs(env)) == 1


def test_run_json_is_the_last_stdout_line(env: dict[str, str], tmp_path: Path) -> None:
    res = cli(
        "run",
        "--json",
        "--log-dir",
        str(tmp_path / "mine"),
        "--",
        sys.executable,
        "-c",
        "print('child output')",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "child output"
    data = json.loads(lines[-1])
    assert data["exit_code"] == 0 and data["signal"] is None
    assert data["zone"] == "DE" and data["co2eq_kg"] >= 0
    assert data["run_log"].startswith(str(tmp_path / "mine"))
    lo, hi = data["uncertainty"]["energy_kwh"]
    assert lo <= data["energy_kwh"] <= hi


def test_run_with_log_off_writes_no_log(env: dict[str, str]) -> None:
    res = cli("run", "--log-dir", "off", "--", sys.executable, "-c", "pass", env=env)
    assert res.returncode == 0, res.stderr
    assert "run log: off" in res.stderr
    assert not _logs(env)


def test_run_child_killed_by_signal_gives_128_plus_n(env: dict[str, str]) -> None:
    res = cli(
        "run", "--", sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", env=env
    )
    assert res.returncode == 128 + signal.SIGKILL, res.stderr
    assert "killed by SIGKILL" in res.stderr


def test_run_command_not_found(env: dict[str, str]) -> None:
    res = cli("run", "--", "no-such-command-carbon-core-test", env=env)
    assert res.returncode == 127
    assert "command not found" in res.stderr and "Traceback" not in res.stderr


def _start_sleeper(env: dict[str, str], script: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, "run", "--interval", "0.1", "--", sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"
HANDLER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_sigterm_is_forwarded_and_the_death_reported(env: dict[str, str]) -> None:
    proc = _start_sleeper(env, SLEEPER)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "killed by SIGTERM" in err
    assert "CO2eq" in err  # the summary is printed all the same
    records = [json.loads(line) for line in _logs(env)[0].read_text().splitlines()]
    assert records[-1]["type"] == "final"


def test_sigterm_reaches_a_child_that_handles_it(env: dict[str, str]) -> None:
    proc = _start_sleeper(env, HANDLER)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 7, err  # the child's own handler ran: it got the signal


def test_sigint_is_forwarded_when_not_from_a_terminal(env: dict[str, str]) -> None:
    # the command catches SIGINT itself: where the test runs as a shell's background job,
    # SIGINT is ignored from the start and that disposition is inherited (as it should be)
    proc = _start_sleeper(
        env,
        "import signal, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "try:\n    print('ready', flush=True)\n    time.sleep(60)\n"
        "except KeyboardInterrupt:\n    raise SystemExit(5)\n",
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 5, err


def test_sigkill_mid_run_leaves_a_log_report_reads(env: dict[str, str]) -> None:
    proc = _start_sleeper(env, SLEEPER)
    sleepers: list[int] = []
    try:

        def enough_intervals() -> bool:
            logs = _logs(env)
            return bool(logs) and logs[0].read_text().count('"type":"interval"') >= 3

        _wait_for(enough_intervals)
        sleepers = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        for pid in sleepers:  # orphaned when carbon-core is killed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate()
    log = _logs(env)[0]
    written = log.read_text().count('"type":"interval"')
    res = cli("report", str(log), env=env)
    assert res.returncode == 0, res.stderr
    assert "no final record" in res.stdout and "no (killed?)" in res.stdout
    data = json.loads(cli("report", "--json", str(log), env=env).stdout)
    assert data["complete"] is False
    assert data["duration_s"] >= 0.1 * (written - 1)
    assert data["energy_kwh"] > 0


# -- report -----------------------------------------------------------------------------------
@pytest.fixture
def finished_log(env: dict[str, str]) -> Path:
    res = cli("run", "--", sys.executable, "-c", "import time; time.sleep(0.5)", env=env)
    assert res.returncode == 0, res.stderr
    return _logs(env)[0]


def test_report_table_and_json(finished_log: Path, env: dict[str, str]) -> None:
    res = cli("report", str(finished_log), env=env)
    assert res.returncode == 0, res.stderr
    assert "CPU" in res.stdout and "yes" in res.stdout and "table:country:DE:2024" in res.stdout
    data = json.loads(cli("report", "--json", str(finished_log), env=env).stdout)
    assert data["complete"] is True and len(data["nodes"]) == 1


def test_report_tolerates_a_torn_last_line(finished_log: Path, env: dict[str, str]) -> None:
    torn = finished_log.with_name("torn.jsonl")
    lines = finished_log.read_text().splitlines(keepends=True)
    torn.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # final record cut
    res = cli("report", "--json", str(torn), env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["complete"] is False


def test_report_merges_several_logs(finished_log: Path, env: dict[str, str]) -> None:
    one = json.loads(cli("report", "--json", str(finished_log), env=env).stdout)
    header, *rest = finished_log.read_text().splitlines(keepends=True)
    node1 = {**json.loads(header), "run_id": "node1run", "node_rank": 1}  # the same run on another node
    copy = finished_log.with_name("node1.jsonl")
    copy.write_text(json.dumps(node1) + "\n" + "".join(rest))
    res = cli("report", "--json", str(finished_log), str(copy), env=env)
    both = json.loads(res.stdout)
    assert len(both["nodes"]) == 2 and res.stderr == ""
    assert both["energy_kwh"] == pytest.approx(2 * one["energy_kwh"])
    assert "total" in cli("report", str(finished_log), str(copy), env=env).stdout


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0]
    assert data[-8:-4] == b"IEND"
    return width, height


def test_report_plot_writes_a_real_png(finished_log: Path, env: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "run.png"
    res = cli("report", str(finished_log), "--plot", str(out), env=env)
    assert res.returncode == 0, res.stderr
    assert _png_size(out) == (1000, 600)
    import matplotlib.image

    pixels = matplotlib.image.imread(str(out))
    assert pixels.shape[:2] == (600, 1000)
    assert pixels.std() > 0.01  # something was drawn


def test_report_plot_without_matplotlib(finished_log: Path, env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text("raise ImportError('blocked for the test')\n")
    env = {**env, "PYTHONPATH": str(blocker)}
    res = cli("report", str(finished_log), "--plot", str(tmp_path / "x.png"), env=env)
    assert res.returncode == 1
    assert "carbon-core[plot]" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("name", ["missing.jsonl", "not-a-log.txt"])
def test_report_unreadable_log_is_one_line_exit_1(env: dict[str, str], tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text("hello world\n")
    res = cli("report", str(path), env=env)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and str(path) in res.stderr
    assert "Traceback" not in res.stderr


# -- zones, usage, imports --------------------------------------------------------------------
def test_zones(env: dict[str, str]) -> None:
    res = cli("zones", "SE", env=env)
    assert res.returncode == 0 and "SE-SE3" in res.stdout and "table:" in res.stdout
    data = json.loads(cli("zones", "--json", env=env).stdout)
    de = next(z for z in data if z["zone"] == "DE")
    assert de["source"] == "table:country:DE:2024" and de["gco2eq_per_kwh"] > 0
    assert cli("zones", "no-such-zone-anywhere", env=env).returncode == 1


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["run"],
        ["run", "--"],
        ["run", "--pue", "abc", "--", "true"],
        ["run", "--pue", "0.5", "--", "true"],
        ["run", "--interval", "-1", "--", "true"],
        ["report"],
        ["report", "--bogus", "x.jsonl"],
        ["zones", "a", "b"],
    ],
)
def test_bad_arguments_exit_2_with_usage(env: dict[str, str], args: list[str]) -> None:
    res = cli(*args, env=env)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "usage:" in res.stderr
    assert "Traceback" not in res.stderr
    assert not _logs(env)


def test_help_documents_exit_codes(env: dict[str, str]) -> None:
    for args in (["--help"], ["run", "--help"], ["report", "--help"]):
        res = cli(*args, env=env)
        assert res.returncode == 0 and "exit codes:" in res.stdout and "128+N" in res.stdout


def test_demo_runs(env: dict[str, str], tmp_path: Path) -> None:
    res = subprocess.run(
        [*CLI, "demo", "--builtin", "--seconds", "0.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    assert "CO2eq" in res.stdout or "CO2eq" in res.stderr


def test_importing_the_cli_is_light() -> None:
    code = (
        "import sys, carbon_core.cli; "
        "bad = [m for m in ('matplotlib', 'rich', 'requests', 'psutil') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
