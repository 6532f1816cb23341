"""What the host says about the run: its process tree (the CPU and RAM estimates) and its
time zone (the location).

Real process trees, forked as training forks them: data-loader workers sharing their
parent's pages, a grandchild orphaned when its parent exits. The meters read them through
the real /proc; where /proc itself must misbehave (a ``smaps_rollup`` that cannot be read,
which root never meets on a real one), a fake /proc on disk stands in, read by the same
code. Time zones come from fake zoneinfo trees on disk, in directories not named
``zoneinfo``, so that only a real path resolution finds them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from carbon_core.config import load
from carbon_core.faults import FaultLog
from carbon_core.intensity import location
from carbon_core.intensity.resolve import resolve_source
from carbon_core.meters import processes
from carbon_core.meters.cpu_estimate import CpuEstimateMeter
from carbon_core.meters.ram_estimate import RamEstimateMeter

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

MiB = 1 << 20


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts ``python -c code args``; kills what it started, and its descendants, at the end."""
    started: list[subprocess.Popen[str]] = []

    def run(code: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            kids = []
        for p in [*kids, proc]:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                p.kill()
        proc.wait()


def tree_of(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


# -- RAM: a page shared by forked processes counts once ---------------------------------

FORK_TREE = """
import os, sys, time
data = bytes(bytearray(b"\\x01") * (int(sys.argv[1]) << 20))  # written: resident in the parent
done_r, done_w = os.pipe()
for _ in range(int(sys.argv[2])):
    if os.fork() == 0:
        sum(data[::4096])  # read one byte a page: shared with the parent, never copied
        os.write(done_w, b"x")
        time.sleep(120)
        os._exit(0)
for _ in range(int(sys.argv[2])):
    os.read(done_r, 1)
print("READY", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("children", [0, 3])
def test_forked_children_reading_the_parents_memory_do_not_multiply_it(
    spawn: Callable[..., subprocess.Popen[str]], children: int
) -> None:
    parent = spawn(FORK_TREE, "200", str(children))
    assert parent.stdout is not None and parent.stdout.readline() == "READY\n"
    tree = tree_of(parent.pid)
    assert len(tree) == children + 1
    assert sum(p.memory_info().rss for p in tree) > (children + 1) * 200 * MiB  # what RSS would say
    meter = RamEstimateMeter(processes=processes.process_tree(parent.pid))
    held = meter.memory_bytes()
    assert 200 * MiB < held < 250 * MiB, f"{held / MiB:.0f} MiB held by {children + 1} processes"
    assert meter.info["memory"] == "pss" and "PSS" in meter.info["method"]


LOADER_TREE = """
import sys, time, torch
from torch.utils.data import DataLoader, Dataset
class Held(Dataset):
    def __init__(self): self.data = torch.ones(50_000_000)  # 200 MB, written
    def __len__(self): return 64
    def __getitem__(self, i): return self.data[i * 1000 : (i + 1) * 1000].sum()
loader = DataLoader(Held(), batch_size=8, num_workers=2, persistent_workers=True)
for _ in loader: pass
print("READY", flush=True)
time.sleep(120)
"""


def test_a_torch_dataloaders_workers_count_their_shared_dataset_once(
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    pytest.importorskip("torch")
    trainer = spawn(LOADER_TREE)
    assert trainer.stdout is not None and trainer.stdout.readline() == "READY\n"
    tree = tree_of(trainer.pid)
    assert len(tree) == 3  # the trainer and its two workers
    pss = [sum(p.memory_full_info().pss for p in tree)]
    held = RamEstimateMeter(processes=processes.process_tree(trainer.pid)).memory_bytes()
    pss.append(sum(p.memory_full_info().pss for p in tree))
    assert min(pss) * 0.95 <= held <= max(pss) * 1.05
    assert sum(p.memory_info().rss for p in tree) > 2 * held  # the x2.95 a sum of RSS gave


def _fake_proc(root: Path, pid: int, ppid: int, rss_mib: int, smaps: str | None) -> None:
    """/proc/<pid>/{stat,statm,smaps_rollup} as Linux writes them; ``smaps`` "dir": unreadable."""
    d = root / str(pid)
    d.mkdir(parents=True)
    fields = ["S", str(ppid), *["0"] * 17, str(1000 + pid), *["0"] * 30]  # starttime is the 20th
    (d / "stat").write_text(f"{pid} (python) {' '.join(fields)}\n")
    (d / "statm").write_text(f"100000 {rss_mib * MiB // os.sysconf('SC_PAGE_SIZE')} 0 0 0 0 0\n")
    if smaps == "dir":
        (d / "smaps_rollup").mkdir()
    elif smaps is not None:
        (d / "smaps_rollup").write_text(smaps)


def _rollup(rss_mib: int, pss_mib: int) -> str:
    head = "00400000-ffffffffff601000 ---p 00000000 00:00 0   [rollup]"
    return f"{head}\nRss: {rss_mib << 10} kB\nPss: {pss_mib << 10} kB\n"


def test_no_pss_anywhere_counts_rss_and_the_method_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = tmp_path / "proc"
    _fake_proc(proc, 500, 1, 300, None)  # a kernel without smaps_rollup
    _fake_proc(proc, 501, 500, 200, None)
    monkeypatch.setattr(processes, "PROC", str(proc))
    faults = FaultLog()
    meter = RamEstimateMeter(faults, processes=processes.process_tree(500))
    assert meter.memory_bytes() == 500 * MiB
    assert meter.info["memory"] == "rss"
    assert "resident set size (RSS)" in meter.info["method"] and "cannot be read" in meter.info["method"]
    assert len(faults) == 0  # the method says it; nothing failed during the run


def test_a_process_whose_pss_cannot_be_read_counts_by_rss_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = tmp_path / "proc"
    _fake_proc(proc, 500, 1, 400, _rollup(400, 100))
    _fake_proc(proc, 501, 500, 200, "dir")  # unreadable
    monkeypatch.setattr(processes, "PROC", str(proc))
    faults = FaultLog()
    meter = RamEstimateMeter(faults, processes=processes.process_tree(500))
    for _ in range(3):
        assert meter.memory_bytes() == 300 * MiB
        meter.read()
    assert meter.info["memory"] == "pss"
    assert len(faults) == 1 and "pid 501" in faults.messages[0] and "resident set size" in faults.messages[0]


# -- CPU: a process that leaves the tree keeps its time; the others' work counts at once -

BURN = """
import os, sys, time
ctl = sys.argv[1]
def wait(name):
    while not os.path.exists(os.path.join(ctl, name)):
        time.sleep(0.01)
def mark(name, text=""):
    with open(os.path.join(ctl, name + ".tmp"), "w") as f:
        f.write(text)
    os.rename(os.path.join(ctl, name + ".tmp"), os.path.join(ctl, name))
def burn(seconds):  # CPU seconds of this process, however loaded the machine is
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
"""

ORPHAN_TREE = (
    BURN
    + """
a = os.fork()
if a == 0:  # the middle process: starts the grandchild, then exits without waiting for it
    if os.fork() == 0:
        if sys.argv[2] == "daemon":
            os.setsid()
        mark("g", str(os.getpid()))
        wait("burn-g"); burn(1.0); mark("g-burnt")
        time.sleep(120); os._exit(0)
    wait("exit-a"); os._exit(0)
wait("g"); mark("ready")
wait("exit-a"); os.waitpid(a, 0); mark("a-reaped")
wait("burn-r"); burn(0.5); mark("r-burnt")
time.sleep(120)
"""
)


def _cpu(pid: int, reaped: bool = False) -> float:
    """CPU seconds of a process, with (``reaped``) those of the children it waited for."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system + (t.children_user + t.children_system if reaped else 0.0))


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _step(ctl: Path, go: str, done: str) -> None:
    (ctl / go).touch()
    assert wait_for((ctl / done).exists), f"the tree never reached {done!r}"


@pytest.mark.parametrize("how", ["daemon", "orphan"])
def test_a_grandchild_leaving_the_tree_keeps_its_time_and_later_work_counts_at_once(
    spawn: Callable[..., subprocess.Popen[str]], tmp_path: Path, how: str, request: pytest.FixtureRequest
) -> None:
    root = spawn(ORPHAN_TREE, str(tmp_path), how)
    assert wait_for((tmp_path / "ready").exists)
    grandchild = int((tmp_path / "g").read_text())
    request.addfinalizer(lambda: _kill(grandchild))  # out of the tree: the spawner cannot find it
    select = processes.process_tree(root.pid, refresh_s=0.5)
    assert grandchild in [p.pid for p in select()]
    meter = CpuEstimateMeter(processes=select, model="AMD EPYC 7763", sockets=1)

    def counted() -> float:  # CPU seconds the meter has charged for
        meter.read()
        return meter.cpu_seconds

    _step(tmp_path, "burn-g", "g-burnt")
    burnt = counted()
    assert burnt >= 0.95  # the grandchild's second of CPU

    _step(tmp_path, "exit-a", "a-reaped")  # re-parented to init (or a subreaper above us)
    assert wait_for(lambda: grandchild not in [p.pid for p in select()])
    assert psutil.Process(grandchild).is_running()
    kept = counted()
    assert kept >= burnt

    before = _cpu(root.pid)
    _step(tmp_path, "burn-r", "r-burnt")
    worked = _cpu(root.pid) - before
    assert worked >= 0.45  # /proc counts in clock ticks
    later = counted() - kept
    assert later == pytest.approx(worked, rel=0.1), "the root's work after the grandchild left"


REAPED_TREE = (
    BURN
    + """
c = os.fork()
if c == 0:
    wait("burn-c"); burn(1.0); mark("c-burnt"); wait("exit-c"); os._exit(0)
mark("ready")
wait("exit-c"); os.waitpid(c, 0); mark("c-reaped")
wait("fork-d")
d = os.fork()
if d == 0:  # born and gone between two refreshes of the list, or seen: counted once either way
    burn(0.5); os._exit(0)
os.waitpid(d, 0); mark("d-reaped")
time.sleep(120)
"""
)


def test_a_child_that_ends_counts_once_through_its_parent(
    spawn: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    root = spawn(REAPED_TREE, str(tmp_path))
    assert wait_for((tmp_path / "ready").exists)
    select = processes.process_tree(root.pid)
    assert len(select()) == 2
    meter = CpuEstimateMeter(processes=select, model="AMD EPYC 7763", sockets=1)

    def counted() -> float:  # CPU seconds the meter has charged for
        meter.read()
        return meter.cpu_seconds

    _step(tmp_path, "burn-c", "c-burnt")
    seen = counted()
    _step(tmp_path, "exit-c", "c-reaped")  # its time moves into the parent's reaped seconds
    after = counted()
    assert seen >= 0.95
    assert after - seen < 0.1  # not counted a second time

    before = _cpu(root.pid, reaped=True)
    _step(tmp_path, "fork-d", "d-reaped")
    used = _cpu(root.pid, reaped=True) - before
    assert used >= 0.45  # /proc counts in clock ticks
    assert counted() - after == pytest.approx(used, rel=0.1)


# -- time zone: every form of TZ that names a zone -------------------------------------

ZONE_TAB = (
    "DK\t+5540+01235\tEurope/Copenhagen\nDE\t+5230+01322\tEurope/Berlin\nFR\t+4852+00220\tEurope/Paris\n"
)


@pytest.fixture
def tzdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tz database in ``tmp/tzdb`` (with its ``posix/`` copy), an empty ``tmp/etc``."""
    db = tmp_path / "tzdb"
    for top in (db, db / "posix"):
        (top / "Europe").mkdir(parents=True)
        for city in ("Copenhagen", "Berlin", "Paris"):
            (top / "Europe" / city).write_bytes(b"TZif2" + city.encode())
    (db / "zone.tab").write_text(ZONE_TAB)
    (tmp_path / "etc").mkdir()
    monkeypatch.setattr(location, "ZONEINFO_DIRS", (db,))
    monkeypatch.setattr(location, "LOCALTIME", tmp_path / "etc" / "localtime")
    monkeypatch.setattr(location, "TIMEZONE_FILE", tmp_path / "etc" / "timezone")
    return db


def located(env: dict[str, str]) -> tuple[str | None, str, tuple[str, ...]]:
    """Zone, how it was found, and warnings: what the tracker records in the run log."""
    faults = FaultLog()
    chain = resolve_source(load({}, env), faults, env)
    return chain.zone, chain.location_source, faults.messages


@pytest.mark.parametrize("tz", [":{localtime}", "{localtime}"])
def test_tz_naming_etc_localtime_is_the_system_zone(tzdb: Path, tz: str) -> None:
    location.LOCALTIME.symlink_to(tzdb / "Europe" / "Berlin")
    assert located({"TZ": tz.format(localtime=location.LOCALTIME)}) == (
        "DE",
        "timezone:Europe/Berlin->DE",
        (),
    )


def test_tz_naming_a_copied_etc_localtime_reads_etc_timezone(tzdb: Path) -> None:
    location.LOCALTIME.write_bytes((tzdb / "Europe" / "Copenhagen").read_bytes())  # as Docker images do
    location.TIMEZONE_FILE.write_text("Europe/Copenhagen\n")
    assert located({"TZ": f":{location.LOCALTIME}"})[:2] == ("DK", "timezone:Europe/Copenhagen->DK")


@pytest.mark.parametrize(
    "tz",
    [
        "{db}/Europe/Paris",
        ":{db}/Europe/Paris",
        ":{db}/posix/Europe/Paris",
        "{db}/../tzdb/Europe/Paris",
        "{link}",  # a symlink of one's own into the database
        ":{link}",
    ],
)
def test_tz_as_a_path_into_the_zoneinfo_tree(tzdb: Path, tmp_path: Path, tz: str) -> None:
    link = tmp_path / "my-zone"
    link.symlink_to(tzdb / "Europe" / "Paris")
    assert located({"TZ": tz.format(db=tzdb, link=link)}) == ("FR", "timezone:Europe/Paris->FR", ())


def test_tz_as_a_path_under_tzdir(tzdb: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    (other / "Europe").mkdir(parents=True)
    (other / "Europe" / "Berlin").write_bytes(b"TZif2")
    env = {"TZDIR": str(other), "TZ": f"{other}/Europe/Berlin"}
    assert located(env) == ("DE", "timezone:Europe/Berlin->DE", ())


def test_tz_naming_a_file_of_no_zone_is_the_world_average_with_the_warning(
    tzdb: Path, tmp_path: Path
) -> None:
    location.LOCALTIME.symlink_to(tzdb / "Europe" / "Berlin")  # not taken: TZ says otherwise
    custom = tmp_path / "custom.tzif"
    custom.write_bytes(b"TZif2")
    zone, how, warnings = located({"TZ": str(custom)})
    assert (zone, how) == (None, "world-average")
    assert len(warnings) == 1 and "CARBON_ZONE" in warnings[0]
