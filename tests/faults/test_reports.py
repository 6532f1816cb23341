"""Reports of real runs: a month-long log, a multi-node plot, damaged and hostile logs, and
the same run given twice.

``carbon-core report`` runs as a real subprocess, under an address-space limit (so a reader
that loads the whole log, or reads ``/dev/zero`` to its end, fails here instead of taking
the machine's memory) and a wall-clock timeout (so one that blocks on a FIFO fails too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from carbon_core.runlog import load

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
#: the report child's address space: a few times what carbon-core needs to report, far less than
#: holding the long log written here (benchmarks/report_scale.py measures the real figures)
ADDRESS_SPACE = 320 << 20
CHILD = (
    "import resource, runpy, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))\n"  # -1: none
    "sys.argv = ['carbon-core', *sys.argv[2:]]\n"
    "runpy.run_module('carbon_core.cli', run_name='__main__')\n"
)
CHANNELS = {"gpu:0": {"component": "gpu", "method": "counter"}, "cpu:package-0": {"component": "cpu"}}


def report(*args: str, timeout: float = 60, limit: int = ADDRESS_SPACE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(limit), "report", *args],
        env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def header(**fields: Any) -> dict[str, Any]:
    return {
        "type": "header", "schema": "carbon-core/run-log/1", "run_id": "run1",
        "started_at": "2025-01-01T00:00:00Z", "host": "h1", "node_rank": None, "rank": None,
        "world_size": None, "zone": "DE",
        "intensity_source": "table:country:DE:2024", "channels": CHANNELS, "devices": ["gpu:0 G"],
        "config": {"pue": 1.0}, **fields,
    }  # fmt: skip


def interval(i: int, gpu_w: float = 300.0, shift: float = 0.0) -> dict[str, Any]:
    t1 = float(i + 1) + shift
    return {
        "type": "interval", "t0": t1 - 1.0, "t1": t1,
        "joules": {"gpu:0": gpu_w * t1, "cpu:package-0": 50.0 * t1}, "energy_j": gpu_w + 50.0,
        "co2eq_g": 0.1, "intensity": 360.0,
        "intensity_source": "table:country:DE:2024", "power_w": gpu_w + 50.0,
    }  # fmt: skip


def write(path: Path, n: int, final: bool = False, shift: float = 0.0, **fields: Any) -> Path:
    """A log of ``n`` one-second intervals (300 W GPU, 50 W CPU, 0.1 g each), ending ``shift``
    seconds past each whole second."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with path.open("w") as fh:
        fh.write(dumps(header(**fields)) + "\n")
        fh.writelines(dumps(interval(i, shift=shift)) + "\n" for i in range(n))
        if final:
            kwh = {"gpu": 300.0 * n / 3.6e6, "cpu": 50.0 * n / 3.6e6}
            snap = {
                "duration_s": float(n), "energy_kwh": kwh["gpu"] + kwh["cpu"], "energy_gpu_kwh": kwh["gpu"],
                "energy_cpu_kwh": kwh["cpu"], "co2eq_kg": 0.1 * n / 1000, "intensity_gco2eq_per_kwh": 360.0,
                "zone": "DE", "methods": {"gpu:0": "counter", "cpu:package-0": "counter"}, "pue": 1.0,
            }  # fmt: skip
            fh.write(dumps({"type": "final", "ended_at": "2025-01-02T00:00:00Z", "snapshot": snap}) + "\n")
    return path


def one_line_error(res: subprocess.CompletedProcess[str], *paths: Path) -> None:
    assert res.returncode == 1, (res.stdout[-500:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr and res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == len(paths), res.stderr[-2000:]
    for line, path in zip(lines, paths):
        assert line.startswith(f"carbon-core: {path}: ") and len(line) < 300, line


# -- a long run and a multi-node plot --------------------------------------------------------
def test_a_log_larger_than_the_memory_limit_is_reported(tmp_path: Path) -> None:
    """250,000 intervals (70 MB, 3 days at 1 s): a reader that holds the log needs several
    times the limit; a streaming one stays far below it."""
    log = write(tmp_path / "long.jsonl", 250_000)
    res = report("--json", str(log))
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(res.stdout)
    assert data["duration_s"] == 250_000.0 and data["complete"] is False
    assert data["energy_gpu_kwh"] == pytest.approx(300.0 * 250_000 / 3.6e6)
    assert data["co2eq_kg"] == pytest.approx(0.1 * 250_000 / 1000)


def test_the_plot_of_a_long_multi_node_job_is_a_few_thousand_points(tmp_path: Path) -> None:
    """Two nodes of 20,000 intervals: the series is merged in one pass and downsampled, its
    energy and emissions kept (a quadratic merge takes minutes here)."""
    a = write(tmp_path / "a.jsonl", 20_000, run_id="a", host="a")
    b = write(tmp_path / "b.jsonl", 20_000, run_id="b", host="b", started_at="2025-01-01T00:00:30Z")
    run = load(a, b)
    points = run.series()
    assert 1000 <= len(points) <= 5000
    assert points[0].t == 0.0 and points[-1].t == 20_030.0
    assert points[-1].co2eq_kg == pytest.approx(run.snapshot.co2eq_kg)
    gpu_j = sum(p.power_w.get("gpu", 0.0) * (p.t - q.t) for q, p in zip(points, points[1:]))
    assert gpu_j == pytest.approx(2 * 300.0 * 20_000)
    assert max(p.power_w.get("gpu", 0.0) for p in points) == pytest.approx(600.0)


def test_report_plot_of_a_long_multi_node_job(tmp_path: Path) -> None:
    """Nodes whose intervals end at different times: 120,000 points to merge (a quadratic
    merge takes many minutes)."""
    pytest.importorskip("matplotlib")
    logs = [
        str(write(tmp_path / f"n{k}.jsonl", 60_000, shift=k / 2, run_id=f"n{k}", node_rank=k)) for k in (0, 1)
    ]
    out = tmp_path / "job.png"
    res = report(*logs, "--plot", str(out), timeout=100, limit=-1)  # numpy's own needs vary: no limit
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- damaged and hostile logs ---------------------------------------------------------------
def _with(record: dict[str, Any]) -> str:
    return json.dumps(header()) + "\n" + json.dumps(interval(0)) + "\n" + json.dumps(record) + "\n"


HEAD = json.dumps(header()) + "\n"
HOSTILE = {
    "huge float": HEAD + json.dumps(interval(0)).replace("300.0", "1e999") + "\n",
    "huge integer": HEAD + json.dumps(interval(0)).replace("0.1", "1" + "0" * 400) + "\n",
    "integer past the parser": HEAD + '{"type":"interval","t1":' + "9" * 5000 + "}\n",
    "Infinity": HEAD + json.dumps({**interval(0), "co2eq_g": float("inf")}) + "\n",
    "NaN": HEAD + json.dumps({**interval(0), "power_w": float("nan")}) + "\n",
    "negative energy": _with({**interval(1), "joules": {"gpu:0": -5.0}}),
    "deep nesting": HEAD + '{"type":"interval","joules":' + "[" * 100_000 + "]" * 100_000 + "}\n",
    "deep nesting alone": "[" * 100_000 + "]" * 100_000 + "\n",
    "header huge pue": json.dumps(header(config={"pue": 1e999})) + "\n",
    "final huge energy": _with({"type": "final", "snapshot": {"energy_kwh": 10**400}}),
    "binary": "\x00\x01\x02\xff\xfe garbage \x89PNG\n" * 10,
    "empty": "",
}
WRONG = {  # for each kind of field, values of every other kind
    "number": [[1], {"a": 1}, "text", True],
    "text": [[1], {"a": 1}, 7, True],
    "object": [[1], "text", 7, True],
    "strings": [{"a": 1}, "text", 7, [1]],
    "numbers": [{"a": 1}, "text", 7, ["x"]],
    "rank": [[1], "0", 1.5, True],
}
FIELDS = {
    **{("header", k): "text" for k in ("schema", "run_id", "started_at", "host", "zone", "intensity_source")},
    **{("header", k): "rank" for k in ("node_rank", "rank", "world_size")},
    **{("header", k): "object" for k in ("channels", "config", "versions")},
    ("header", "devices"): "strings",
    **{("interval", k): "number" for k in ("t0", "t1", "energy_j", "co2eq_g", "intensity", "power_w")},
    ("interval", "joules"): "object",
    ("interval", "intensity_source"): "text",
    ("warning", "message"): "text",
    ("warning", "t"): "number",
    ("final", "snapshot"): "object",
    **{("snapshot", k): "number" for k in ("duration_s", "energy_kwh", "energy_gpu_kwh", "co2eq_kg", "pue")},
    **{("snapshot", k): "strings" for k in ("warnings", "devices")},
    ("snapshot", "methods"): "object",
    ("snapshot", "zone"): "text",
    ("snapshot", "rank_energy_kwh"): "numbers",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_log_is_a_one_line_error(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(HOSTILE[case].encode("utf-8", "surrogateescape"))
    one_line_error(report(str(path)), path)


@pytest.mark.parametrize(("record", "key"), sorted(FIELDS))
def test_a_field_of_the_wrong_type_is_a_one_line_error(tmp_path: Path, record: str, key: str) -> None:
    for n, value in enumerate(WRONG[FIELDS[record, key]]):
        head: dict[str, Any] = header()
        last: Any = {
            "interval": interval(1),
            "warning": {"type": "warning", "t": 1.0, "message": "m"},
            "final": {"type": "final", "snapshot": {}},
            "snapshot": {"type": "final", "snapshot": {"duration_s": 1.0}},
        }.get(record)
        (head if record == "header" else last["snapshot"] if record == "snapshot" else last)[key] = value
        path = tmp_path / f"log{n}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in (head, interval(0), *([last] if last else []))))
        one_line_error(report(str(path)), path)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "dir-named-jsonl", "unreadable"])
def test_a_file_that_is_not_a_log_file_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.jsonl"
    if kind == "fifo":
        os.mkfifo(path)  # nobody ever writes: a reader that opens it blocks for good
    elif kind == "dev-zero":
        path = Path("/dev/zero")  # endless, no newline
    elif kind == "directory":
        path = tmp_path / "empty-dir"
        path.mkdir()
    elif kind == "dir-named-jsonl":
        (tmp_path / "logs" / "run.jsonl").mkdir(parents=True)
        path = tmp_path / "logs"
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        write(path, 2).chmod(0)
    one_line_error(report(str(path), timeout=30), path)


def test_every_bad_log_gets_its_own_line(tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", 3)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text(HOSTILE["huge float"])
    second.write_bytes(b"\x00\xff" * 100)
    one_line_error(report(str(first), str(good), str(second)), first, second)


# -- the same run twice ---------------------------------------------------------------------
def _energy(*paths: Path) -> tuple[float, str]:
    res = report("--json", *map(str, paths))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["energy_kwh"], res.stderr


def test_the_same_log_given_twice_is_counted_once_with_a_warning(tmp_path: Path) -> None:
    log = write(tmp_path / "run.jsonl", 100, final=True)
    once, quiet = _energy(log)
    twice, warned = _energy(log, log)
    assert twice == pytest.approx(once) and quiet == ""
    (line,) = warned.splitlines()
    assert line.startswith("carbon-core: warning: ") and str(log) in line


def test_a_copy_of_a_log_is_counted_once_with_a_warning(tmp_path: Path) -> None:
    log = write(tmp_path / "run.jsonl", 100, final=True)
    copy = tmp_path / "backup" / "run-copy.jsonl"
    copy.parent.mkdir()
    copy.write_text("".join(log.read_text().splitlines(keepends=True)[:-20]))  # a partial copy
    once, _ = _energy(log)
    both, warned = _energy(copy, log)
    assert both == pytest.approx(once)  # the fuller one counts
    (line,) = warned.splitlines()
    assert str(log) in line and str(copy) in line


def _rank0(path: Path, run_id: str, started_at: str = "2025-01-01T00:00:00Z", rank: int = 0) -> Path:
    """A complete log of 100 s of rank ``rank`` in a two-rank job on host h1."""
    return write(path, 100, final=True, run_id=run_id, rank=rank, world_size=2, started_at=started_at)


def test_two_overlapping_logs_of_one_host_and_rank_are_a_warning(tmp_path: Path) -> None:
    a = _rank0(tmp_path / "a.jsonl", "a")
    b = _rank0(tmp_path / "b.jsonl", "b", "2025-01-01T00:00:50Z")
    one, _ = _energy(a)
    both, warned = _energy(a, b)
    assert both == pytest.approx(2 * one)
    (line,) = warned.splitlines()
    assert str(a) in line and str(b) in line and "overlap" in line
    text = report(str(a), str(b))
    assert "overlap" in text.stdout  # in the summary's warnings as well


def test_logs_of_one_rank_one_after_the_other_and_of_two_ranks_are_quiet(tmp_path: Path) -> None:
    a = _rank0(tmp_path / "a.jsonl", "a")
    later = _rank0(tmp_path / "c.jsonl", "c", "2025-01-01T00:01:40Z")  # when a ends
    other = _rank0(tmp_path / "b.jsonl", "b", rank=1)
    assert _energy(a, later)[1] == "" and _energy(a, other)[1] == ""


# -- published reports of hostile logs, and checkpoints that match no log --------------------------
HOSTILE_TEXT = "<script>alert(1)</script> \"q\" 'a': b\n- c # d {e} &amp;"


def test_hostile_text_in_a_log_stays_text_in_every_format(tmp_path: Path) -> None:
    """A host name, a zone and a warning that are HTML, YAML and CSV syntax: the page escapes
    them, the card and the CSV read back the same strings."""
    pytest.importorskip("yaml")
    import csv
    import io

    import yaml

    log = write(tmp_path / "run.jsonl", 5, final=True, host=HOSTILE_TEXT, location_source=HOSTILE_TEXT)
    with log.open("a") as fh:  # a warning after the final record is still read
        fh.write(json.dumps({"type": "warning", "t": 1.0, "message": HOSTILE_TEXT}) + "\n")
    page = report("--format", "html", str(log), limit=-1)
    assert page.returncode == 0, page.stderr[-2000:]
    assert "<script" not in page.stdout and "&lt;script&gt;" in page.stdout
    card = report("--format", "model-card", str(log))
    assert card.returncode == 0, card.stderr[-2000:]
    block = yaml.safe_load(card.stdout.strip().strip("-"))["co2_eq_emissions"]
    assert HOSTILE_TEXT in block["geographical_location"]
    rows = list(csv.DictReader(io.StringIO(report("--format", "csv", str(log)).stdout)))
    assert rows[0]["host"] == HOSTILE_TEXT and rows[-1]["row"] == "total"


def _resumed(path: Path, carried_s: float, carried_g: float, **fields: Any) -> Path:
    """A complete log of 5 one-second intervals whose final totals hold a checkpoint's on top."""
    write(path, 5, **fields)
    snap = {
        "duration_s": 5.0 + carried_s, "energy_kwh": 350.0 * 5 / 3.6e6, "energy_gpu_kwh": 300.0 * 5 / 3.6e6,
        "energy_cpu_kwh": 50.0 * 5 / 3.6e6, "co2eq_kg": (0.1 * 5 + carried_g) / 1000,
        "intensity_gco2eq_per_kwh": 360.0, "zone": "DE", "pue": 1.0,
        "methods": {"gpu:0": "counter", "cpu:package-0": "counter"},
    }  # fmt: skip
    with path.open("a") as fh:
        fh.write(json.dumps({"type": "final", "ended_at": "2025-01-02T00:00:00Z", "snapshot": snap}) + "\n")
    return path


def test_a_checkpoint_that_matches_no_given_log_keeps_its_totals(tmp_path: Path) -> None:
    """An earlier log that ended before the resumed one started, but whose running totals never
    equal what the checkpoint carried (another run): both are counted whole, as unrelated runs."""
    earlier = write(tmp_path / "other.jsonl", 10, final=True, run_id="other", world_size=1)
    later = _resumed(
        tmp_path / "later.jsonl", 3.0, 0.25, run_id="later", world_size=1, started_at="2025-01-01T01:00:00Z"
    )
    res = report("--format", "json", str(earlier), str(later))
    data = json.loads(res.stdout)
    assert data["co2eq_kg"] == pytest.approx((0.1 * 10 + 0.1 * 5 + 0.25) / 1000)
    rules = data["merge"]["rules"]
    assert rules[0].startswith("resumed run, first part not given") and rules[-1].startswith("unrelated runs")
    assert res.stderr == ""
