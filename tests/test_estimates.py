"""The CPU and RAM estimates' inputs (TDP table, process tree) and the meter registry.

The process tree is read from /proc without psutil; these tests hold it to psutil's own
figures on a real tree of sleeping processes, whose CPU time and memory stand still.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_nvml
import psutil
import pytest

from carbon_core.data import read_text
from carbon_core.meters import processes
from carbon_core.meters.base import Meter
from carbon_core.meters.cpu_estimate import CpuEstimateMeter, lookup_tdp, tdp_table
from carbon_core.meters.ram_estimate import RamEstimateMeter
from carbon_core.meters.registry import METER_NAMES, METERS, NVML_NOT_FOUND, meter_class

SLEEPER = (
    "import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
)
SLEEPER += "x = bytearray(8 << 20)\nsum(range(3_000_000))\ntime.sleep(60)\n"


@pytest.fixture
def sleeping_tree() -> Iterator[psutil.Process]:
    """A child that burnt some CPU, holds 8 MiB and sleeps, with a sleeping grandchild."""
    child = subprocess.Popen([sys.executable, "-c", SLEEPER])
    proc = psutil.Process(child.pid)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            kids = proc.children(recursive=True)
            if kids and all(p.status() == psutil.STATUS_SLEEPING for p in [proc, *kids]):
                time.sleep(0.2)  # settled: nothing more to allocate or count
                break
            time.sleep(0.05)
        else:
            pytest.fail("the sleeping tree did not settle")
        yield proc
    finally:
        for p in proc.children(recursive=True):
            p.kill()
        child.kill()
        child.wait()


def _figures(procs: list[Any]) -> list[tuple[Any, ...]]:
    out = []
    for p in procs:
        t, m = p.cpu_times(), p.memory_info()
        out.append((p.pid, t.user, t.system, t.children_user, t.children_system, m.rss))
    return out


def test_process_tree_gives_psutils_processes_and_figures(sleeping_tree: psutil.Process) -> None:
    from_proc = processes.process_tree(sleeping_tree.pid)()
    assert all(isinstance(p, processes.ProcfsProcess) for p in from_proc)
    expected = [sleeping_tree, *sleeping_tree.children(recursive=True)]
    assert len(expected) == 2
    assert _figures(from_proc) == _figures(expected)  # same pids, same order, same figures


def test_without_proc_the_tree_is_psutils(
    sleeping_tree: psutil.Process, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _figures(processes.process_tree(sleeping_tree.pid)())
    monkeypatch.setattr(processes, "PROC", "/nonexistent-proc")
    from_psutil = processes.process_tree(sleeping_tree.pid)()
    assert all(isinstance(p, psutil.Process) for p in from_psutil)
    assert _figures(from_psutil) == expected
    tree = processes.process_tree(sleeping_tree.pid)
    cpu = CpuEstimateMeter(processes=tree, model="AMD EPYC 7763", sockets=1)
    assert cpu.read() == {"cpu:estimate": 0.0}  # psutil's processes, counted one by one
    ram = RamEstimateMeter(processes=tree)  # no smaps_rollup where there is no /proc: RSS, and said so
    assert ram.info["memory"] == "rss" and ram.memory_bytes() == sum(f[-1] for f in expected)


def _pss(procs: list[psutil.Process]) -> int:
    return sum(p.memory_full_info().pss for p in procs)


def test_ram_estimate_is_the_proportional_memory_of_the_tree(sleeping_tree: psutil.Process) -> None:
    tree = [sleeping_tree, *sleeping_tree.children(recursive=True)]
    before = _pss(tree)  # shared libraries' pages move as other processes map them: a range
    meter = RamEstimateMeter(processes=processes.process_tree(sleeping_tree.pid))
    held, after = meter.memory_bytes(), _pss(tree)
    assert min(before, after) - (1 << 20) <= held <= max(before, after) + (1 << 20)
    assert 8 << 20 < held < sum(p.memory_info().rss for p in tree)  # shared pages split, not repeated
    assert meter.info["watts_per_gb"] == 0.392 and meter.info["memory"] == "pss"  # Cloud Carbon Footprint
    assert "proportional set size (PSS" in meter.info["method"]


def test_procfs_reads_pss_and_cpu_as_psutil_does(sleeping_tree: psutil.Process) -> None:
    for proc in [sleeping_tree, *sleeping_tree.children(recursive=True)]:
        ours = processes.ProcfsProcess(proc.pid)
        full = proc.memory_full_info()
        rss, pss = ours.memory_pss()
        assert rss == full.rss and abs(pss - full.pss) < 1 << 20
        reading, times = ours.cpu_reading(), proc.cpu_times()
        assert reading.ppid == proc.ppid() and reading.key[0] == proc.pid
        assert reading.own == pytest.approx(times.user + times.system)
        assert reading.reaped == pytest.approx(times.children_user + times.children_system)


def _fake_proc(root: Path, pid: int, rss_mib: int, pss_mib: int) -> None:
    """/proc/<pid>/{stat,statm,smaps_rollup} of one process, as Linux writes them."""
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    fields = ["S", "1", *["0"] * 17, "1000", *["0"] * 30]  # starttime is the 20th field
    (d / "stat").write_text(f"{pid} (python) {' '.join(fields)}\n")
    (d / "statm").write_text(f"100000 {(rss_mib << 20) // os.sysconf('SC_PAGE_SIZE')} 0 0 0 0 0\n")
    (d / "smaps_rollup").write_text(
        f"0-1 ---p 0 00:00 0 [rollup]\nRss: {rss_mib << 10} kB\nPss: {pss_mib << 10} kB\n"
    )


def test_between_pss_reads_rss_is_scaled_by_the_last_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_proc(tmp_path, 700, rss_mib=400, pss_mib=100)
    monkeypatch.setattr(processes, "PROC", str(tmp_path))
    meter = RamEstimateMeter(processes=processes.process_tree(700), pss_budget=1e-9)  # one read a lifetime
    assert meter.memory_bytes() == 100 << 20  # PSS read
    _fake_proc(tmp_path, 700, rss_mib=800, pss_mib=800)  # what the next PSS read would say
    assert meter.memory_bytes() == 200 << 20  # RSS x the ratio at the last read, 100 / 400
    with pytest.raises(ValueError, match="pss_budget"):
        RamEstimateMeter(processes=processes.process_tree(700), pss_budget=0.0)


def test_the_start_reads_no_pss_and_its_power_uses_the_first_reads_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_proc(tmp_path, 700, rss_mib=400, pss_mib=100)
    monkeypatch.setattr(processes, "PROC", str(tmp_path))
    began = time.monotonic()
    meter = RamEstimateMeter(processes=processes.process_tree(700))
    time.sleep(0.05)
    joules = meter.read()["ram"]
    held_w = 0.392 * 100 / 1024  # 100 MiB of PSS throughout; RSS would say 400
    assert 0 < joules <= held_w * (time.monotonic() - began)


def test_cpu_estimate_does_not_count_time_used_before_its_start(sleeping_tree: psutil.Process) -> None:
    assert sum(sleeping_tree.cpu_times()[:2]) > 0
    meter = CpuEstimateMeter(
        processes=processes.process_tree(sleeping_tree.pid), model="AMD EPYC 7763", sockets=1
    )
    assert meter.read() == {"cpu:estimate": 0.0}


def test_a_gone_process_is_skipped_and_a_gone_root_keeps_only_itself(sleeping_tree: psutil.Process) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    select = processes.process_tree(child.pid)
    child.kill()
    child.wait()
    (root,) = select()
    with pytest.raises(OSError):
        root.cpu_times()
    before = _pss([sleeping_tree])
    meter = RamEstimateMeter(processes=lambda: [root, processes.ProcfsProcess(sleeping_tree.pid)])
    held, after = meter.memory_bytes(), _pss([sleeping_tree])
    assert min(before, after) - (1 << 20) <= held <= max(before, after) + (1 << 20)


def test_tdp_table_reads_the_bundled_csv_as_the_csv_module_does() -> None:
    expected: dict[str, float] = {}
    for row in csv.DictReader(read_text("cpu_tdp_watts.csv").splitlines()):
        try:
            expected[row["model"].strip()] = float(row["tdp_w"])
        except ValueError:
            continue
    table = tdp_table()
    assert list(table.items()) == list(expected.items())
    assert any("," in model for model in table)  # the quoted models are read whole
    assert lookup_tdp("AMD EPYC 7763 64-Core Processor") == (expected["AMD EPYC 7763"], True)


def test_registry_names_every_meter_once() -> None:
    assert METER_NAMES == ("rapl", "pyrapl", "cpu-estimate", "ram-estimate", "nvml", "amd")
    for name in METERS:
        cls = meter_class(name)
        assert isinstance(cls, type) and issubclass(cls, Meter) and cls.name == name
    with pytest.raises(ValueError, match="unknown meter 'bogus'"):
        meter_class("bogus")


def _child(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


NO_DRIVER_CHILD = """
    import ctypes, sys
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        sys.exit(75)  # a real NVIDIA driver library is installed here
    except OSError:
        pass
    from carbon_core import Tracker
    from carbon_core.meters.base import MeterUnavailable
    final = Tracker(interval_s=1.0, intensity=100, log_dir="off").start().stop()
    print("LOADED:", [m for m in ("psutil", "pynvml") if m in sys.modules])
    print("WARNING:", final.warnings[0])
    from carbon_core.meters.nvml import NvmlMeter
    try:
        NvmlMeter(gpus="all")
    except MeterUnavailable as exc:
        print("DIRECT:", exc)
"""


def test_start_without_nvidia_driver_imports_neither_pynvml_nor_psutil() -> None:
    result = _child(NO_DRIVER_CHILD, {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"})
    if result.returncode == 75:
        pytest.skip("a real NVIDIA driver library is installed on this machine")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["LOADED"] == "[]"
    # word for word what the NVML meter itself says
    assert lines["WARNING"] == f"GPU energy is not measured (nvml: {NVML_NOT_FOUND})"
    assert lines["DIRECT"] == NVML_NOT_FOUND


def test_a_driver_on_the_loader_path_is_used(fake_nvml_lib: Path, tmp_path: Path) -> None:
    scenario = fake_nvml.write_scenario(tmp_path / "gpus.txt", [fake_nvml.FakeGpu("GPU-0000", watts=100.0)])
    code = """
        from carbon_core.faults import FaultLog
        from carbon_core.meters.registry import build_meters
        meters = build_meters("auto", faults=FaultLog(), gpus="all")
        print([m.name for m in meters])
        for m in meters:
            m.close()
    """
    result = _child(code, fake_nvml.subprocess_env(fake_nvml_lib, scenario))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0].startswith("['nvml', ")
