"""AmdMeter with the real amdsmi package on a fake libamd_smi.so (tests/fake_amdsmi).

The AMD path is proven against this fake only: no AMD GPU has run these tests.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import fake_amdsmi
import fake_nvml
import pytest
from fake_amdsmi import IO, NOT_FOUND, NOT_SUPPORTED, UNKNOWN, FakeGpu, fail, init_refcount
from fake_amdsmi.plugin import FakeAmdsmi
from fake_nvml.plugin import FakeNvml

from carbon_core.faults import FaultLog
from carbon_core.meters.amd import AMD_NOT_FOUND, VERIFY_FACTOR, VERIFY_S, AmdMeter
from carbon_core.meters.base import Channel, MeterUnavailable
from carbon_core.meters.registry import HardwareAbsent, build_meters, check_measured_once

ROOT = Path(__file__).resolve().parent.parent
UUID = [f"GPU-{i}{i}{i}{i}{i}{i}{i}{i}aaaabbbb{i}{i}{i}{i}" for i in range(8)]
MI300X = "AMD Instinct MI300X"
RES = ctypes.c_float(15.3).value  # the resolution as amdsmi hands it over (a C float)
UJ = 1e-6


def _meter(**kw: object) -> AmdMeter:
    kw.setdefault("faults", FaultLog())
    kw.setdefault("env", {})  # the host's visible-devices variables must not leak into a test
    kw.setdefault("sleep", lambda s: None)  # the start-up check's wait (the clock is scripted)
    kw.setdefault("clock", _clock(0.0, VERIFY_S))
    return AmdMeter(**kw)  # type: ignore[arg-type]


def _clock(*times: float) -> Iterator[float]:
    return iter(times).__next__  # type: ignore[return-value]


def _ticks(watts: float, seconds: float, res: float = RES) -> int:
    """Accumulator ticks a counter advances at this power."""
    return round(watts * seconds / (res * UJ))


def test_the_fake_binds_every_symbol_of_the_installed_wrapper(amdsmi_fake: FakeAmdsmi) -> None:
    import amdsmi.amdsmi_wrapper as wrapper

    lib = wrapper._libraries["libamd_smi.so"]
    symbols = fake_amdsmi.bound_symbols(fake_amdsmi.wrapper_source())
    assert len(symbols) > 150 and all(hasattr(lib, name) for name in symbols)
    sizes = {
        "asic_info": wrapper.amdsmi_asic_info_t,
        "enumeration_info": wrapper.amdsmi_enumeration_info_t,
        "kfd_info": wrapper.amdsmi_kfd_info_t,
        "power_info": wrapper.amdsmi_power_info_t,
        "proc_info": wrapper.amdsmi_proc_info_t,
        "driver_info": wrapper.amdsmi_driver_info_t,
    }
    assert {k: fake_amdsmi.struct_size(k) for k in sizes} == {k: ctypes.sizeof(v) for k, v in sizes.items()}


def test_counter_energy_is_the_accumulator_times_its_resolution(amdsmi_fake: FakeAmdsmi) -> None:
    # reads: probe, check (0.5 s at 300 W / 200 W), then two samples
    a = [1_000_000, 1_000_000 + _ticks(300, 0.5), 20_000_000, 30_000_001]
    b0 = 5 + _ticks(200, 0.5, 2.0)
    b = [5, b0, b0 + 900_000, b0 + 900_000]
    amdsmi_fake.scenario(
        [
            FakeGpu(UUID[0], MI300X, energy=a, power=[300], bdf="0000:0c:00.0"),
            FakeGpu(UUID[1], MI300X, energy=b, resolution=2.0, power=[200], bdf="0000:22:00.0"),
        ]
    )
    meter = _meter(gpus="all")
    assert meter.channels == (Channel("gpu:0", "gpu", "counter"), Channel("gpu:1", "gpu", "counter"))
    first = meter.read()  # exactly: accumulator ticks x the resolution amdsmi gives, in µJ
    assert first == {"gpu:0": (a[2] - a[1]) * RES / 1e6, "gpu:1": (b[2] - b[1]) * 2.0 / 1e6}
    second = meter.read()
    assert second["gpu:0"] == (a[3] - a[1]) * RES / 1e6
    assert second["gpu:1"] == first["gpu:1"]  # the counter stood still
    assert meter.info["devices"] == [f"gpu:0 {MI300X} ({UUID[0]})", f"gpu:1 {MI300X} ({UUID[1]})"]
    assert meter.info["gpus"][0]["counter_vs_power"] == pytest.approx(1.0, rel=1e-6)
    assert meter.info["driver"] == "6.10.5"
    assert any("checked at start" in n for n in meter.info["notes"])
    assert not meter.faults.messages
    meter.close()


@pytest.mark.parametrize(
    ("counted_ticks", "kept"),
    [
        (0, False),  # a counter that never moves (MI100 before a reboot)
        (_ticks(300, 0.5) * 15, False),  # the accumulator without its resolution: 15.3x
        (_ticks(300, 0.5) * 1000, False),  # mJ taken for µJ
        (_ticks(300, 0.5) // 6, False),  # just beyond the factor
        (_ticks(300, 0.5) // 4, True),  # within it: a load change during the window
        (_ticks(300, 0.5) * 4, True),
    ],
)
def test_counter_disagreeing_with_power_at_start_is_replaced_by_power_sampling(
    amdsmi_fake: FakeAmdsmi, counted_ticks: int, kept: bool
) -> None:
    assert VERIFY_FACTOR == 5.0
    amdsmi_fake.scenario(
        [FakeGpu(UUID[0], MI300X, energy=[0, counted_ticks, counted_ticks * 3], power=[300])]
    )
    meter = _meter(clock=_clock(0.0, 0.5, 2.5))
    if kept:
        assert meter.channels == (Channel("gpu:0", "gpu", "counter"),)
        assert not meter.faults.messages
        meter.close()
        return
    assert meter.channels == (Channel("gpu:0", "gpu", "power-sampled"),)
    assert len(meter.faults) == 1
    message = meter.faults.messages[0]
    assert "disagrees with its power readout" in message and "150 J" in message and "beyond 5x" in message
    assert meter.read() == {"gpu:0": 600.0}  # 300 W from t = 0.5 s to 2.5 s, the counter ignored
    assert any("power-sampled" in n for n in meter.info["notes"])
    meter.close()


def test_counter_without_a_power_readout_is_kept_unchecked(amdsmi_fake: FakeAmdsmi) -> None:
    amdsmi_fake.scenario([FakeGpu(UUID[0], MI300X, energy=[0, 1_000])])  # power N/A
    meter = _meter()
    assert meter.channels[0].method == "counter" and "counter_vs_power" not in meter.info["gpus"][0]
    assert meter.read() == {"gpu:0": pytest.approx(1_000 * RES * UJ, rel=1e-12)}
    assert amdsmi_fake.calls("amdsmi_get_energy_count") == 2  # no check: probe and one read
    meter.close()


def test_a_die_reporting_no_power_of_its_own_is_not_measured_never_zero(amdsmi_fake: FakeAmdsmi) -> None:
    # MI250X: the second die of a package reads 0 W and its counter stands still
    name = "AMD Instinct MI250X"
    amdsmi_fake.scenario(
        [
            FakeGpu(UUID[0], name, energy=[0, _ticks(500, 0.5), _ticks(500, 1.5)], power=[500]),
            FakeGpu(UUID[1], name, energy=[0], power=[0]),
            FakeGpu(UUID[2], name, power=[0]),  # no counter and 0 W
        ]
    )
    meter = _meter(gpus="all")
    assert [c.name for c in meter.channels] == ["gpu:0"]
    assert len(meter.faults) == 2
    assert all("not measured" in m for m in meter.faults.messages)
    by_gpu = {m.split()[1]: m for m in meter.faults.messages}
    assert "stood still" in by_gpu["gpu:1"] and "MI250" in by_gpu["gpu:2"]
    meter.close()


def test_gpu_without_counter_is_power_sampled_from_current_else_average_power(
    amdsmi_fake: FakeAmdsmi,
) -> None:
    amdsmi_fake.scenario(
        [
            FakeGpu(UUID[0], "AMD Instinct MI300X", power=[100, 300, 300]),  # current_socket_power
            FakeGpu(UUID[1], "AMD Instinct MI210", average=[200, 200, 400]),  # average only (MI200)
        ]
    )
    meter = _meter(gpus="all", clock=_clock(0.0, 0.0, 1.0, 1.0, 3.0, 3.0))
    assert [c.method for c in meter.channels] == ["power-sampled", "power-sampled"]
    assert meter.read() == {"gpu:0": 200.0, "gpu:1": 200.0}
    assert meter.read() == {"gpu:0": 800.0, "gpu:1": 800.0}
    meter.close()


@pytest.mark.parametrize("code", [NOT_SUPPORTED, NOT_FOUND, IO, UNKNOWN])
def test_gpu_failing_mid_run_keeps_its_total_warns_once_and_is_not_read_again(
    amdsmi_fake: FakeAmdsmi, code: int
) -> None:
    step = _ticks(100, 0.5)
    amdsmi_fake.scenario(
        [
            FakeGpu(UUID[0], MI300X, energy=[0, step, 2 * step, fail(code), 9 * step], power=[100]),
            FakeGpu(UUID[1], MI300X, energy=[0, step, 3 * step, 5 * step, 7 * step], power=[100]),
        ]
    )
    meter = _meter(gpus="all")
    first = meter.read()
    assert first == {"gpu:0": pytest.approx(50.0, rel=1e-5), "gpu:1": pytest.approx(100.0, rel=1e-5)}
    second = meter.read()
    assert second["gpu:0"] == first["gpu:0"] and second["gpu:1"] > first["gpu:1"]
    calls = amdsmi_fake.calls("amdsmi_get_energy_count")
    third = meter.read()
    assert third["gpu:0"] == first["gpu:0"]
    assert amdsmi_fake.calls("amdsmi_get_energy_count") == calls + 1  # only gpu:1 is read
    assert len(meter.faults) == 1
    message = meter.faults.messages[0]
    assert "gpu:0" in message and UUID[0] in message and "no longer measured" in message
    assert f"{first['gpu:0']:.3f} J" in message
    meter.close()


def test_counter_going_backwards_counts_nothing_for_that_interval(amdsmi_fake: FakeAmdsmi) -> None:
    amdsmi_fake.scenario([FakeGpu(UUID[0], MI300X, energy=[5_000, 6_000, 100, 400])])
    meter = _meter()
    totals = [meter.read()["gpu:0"] for _ in range(3)]
    assert totals == pytest.approx([1_000 * RES * UJ, 1_000 * RES * UJ, 1_300 * RES * UJ], rel=1e-12)
    assert len(meter.faults) == 1 and "went back" in meter.faults.messages[0]
    meter.close()


FOUR = [FakeGpu(u, MI300X, energy=[0], bdf=f"0000:{16 * (i + 1):02x}:00.0") for i, u in enumerate(UUID[:4])]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HIP_VISIBLE_DEVICES": "2,0"}, ["gpu:2", "gpu:0"]),
        ({"ROCR_VISIBLE_DEVICES": "3"}, ["gpu:3"]),
        ({"CUDA_VISIBLE_DEVICES": "1"}, ["gpu:1"]),  # HIP honours it where HIP_VISIBLE_DEVICES is unset
        ({"HIP_VISIBLE_DEVICES": UUID[2]}, ["gpu:2"]),
        ({"ROCR_VISIBLE_DEVICES": f"{UUID[3]},{UUID[1]}"}, ["gpu:3", "gpu:1"]),
        ({"CUDA_VISIBLE_DEVICES": UUID[0][:10]}, ["gpu:0"]),  # a unique UUID prefix
        ({"ROCR_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1"}, ["gpu:3"]),  # HIP counts within ROCr's
        ({"HIP_VISIBLE_DEVICES": "0", "CUDA_VISIBLE_DEVICES": "2"}, ["gpu:0"]),  # HIP over CUDA
        ({"HIP_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": "2"}, ["gpu:2"]),  # empty HIP: CUDA's
    ],
)
def test_visible_devices_by_index_and_uuid(
    amdsmi_fake: FakeAmdsmi, env: dict[str, str], expected: list[str]
) -> None:
    amdsmi_fake.scenario(FOUR)
    meter = _meter(env=env)
    assert [c.name for c in meter.channels] == expected
    assert not meter.faults.messages
    meter.close()


def test_indices_count_hip_order_where_amdsmi_knows_it(amdsmi_fake: FakeAmdsmi) -> None:
    # amdsmi lists the GPUs in another order than HIP numbers them (hip_id, ROCm 6.4+)
    gpus = [FakeGpu(g.uuid, g.name, energy=[0], bdf=g.bdf, hip_id=h) for g, h in zip(FOUR, (2, 0, 3, 1))]
    amdsmi_fake.scenario(gpus)
    meter = _meter(env={"HIP_VISIBLE_DEVICES": "0,1"})  # HIP's devices 0 and 1: amdsmi's 1 and 3
    assert [c.name for c in meter.channels] == ["gpu:1", "gpu:3"]
    meter.close()
    rank2 = _meter(local_rank=2)  # local rank 2 uses HIP device 2: amdsmi's 0
    assert [c.name for c in rank2.channels] == ["gpu:0"]
    rank2.close()


@pytest.mark.parametrize("env", [{"ROCR_VISIBLE_DEVICES": ""}, {"HIP_VISIBLE_DEVICES": "7"}])
def test_visible_devices_hiding_every_gpu_means_no_meter(
    amdsmi_fake: FakeAmdsmi, env: dict[str, str]
) -> None:
    amdsmi_fake.scenario(FOUR)
    with pytest.raises(MeterUnavailable, match="makes no AMD GPU visible"):
        _meter(env=env)
    assert init_refcount() == 0  # amdsmi was shut down again


def test_auto_prefers_the_gpu_this_process_runs_on(amdsmi_fake: FakeAmdsmi) -> None:
    gpus = list(FOUR)
    gpus[2] = FakeGpu(UUID[2], MI300X, energy=[0], bdf=FOUR[2].bdf, procs=[1, os.getpid()])
    amdsmi_fake.scenario(gpus)
    meter = _meter()
    assert [c.name for c in meter.channels] == ["gpu:2"]
    meter.close()


def _cpx(n: int = 8, **energy: list[int]) -> list[FakeGpu]:
    """One MI300X in CPX mode: n logical GPUs on one PCI bus:device; the primary has the counter."""
    return [
        FakeGpu(
            f"GPU-{p:x}{p:x}{p:x}{p:x}cccc0000{p:x}{p:x}{p:x}{p:x}",
            MI300X,
            energy=energy.get("primary") if p == 0 else None,
            power=[400] if p == 0 else None,
            bdf=f"0000:0c:00.{p}",
            partition=p,
        )
        for p in range(n)
    ]


def test_partitions_are_shares_of_their_physical_gpu_read_once(amdsmi_fake: FakeAmdsmi) -> None:
    device = [0, _ticks(400, 0.5), _ticks(400, 0.5) + 8_000_000]
    amdsmi_fake.scenario(_cpx(primary=device))
    meter = _meter(env={"HIP_VISIBLE_DEVICES": "2,5"})
    assert [c.name for c in meter.channels] == ["gpu:2", "gpu:5"]
    reads = amdsmi_fake.calls("amdsmi_get_energy_count")
    joules = meter.read()
    assert amdsmi_fake.calls("amdsmi_get_energy_count") == reads + 1  # one physical GPU, one read
    whole = 8_000_000 * RES * UJ
    assert joules == {
        "gpu:2": pytest.approx(whole / 8, rel=1e-12),
        "gpu:5": pytest.approx(whole / 8, rel=1e-12),
    }
    assert meter.info["gpus"][0]["share"] == 1 / 8
    assert meter.info["devices"][0].endswith("partition 2 of 8 of 0000:0c:00, 1/8 of its energy")
    assert any("1/n of its physical GPU" in n for n in meter.info["notes"])
    meter.close()
    # every partition, in one process: the physical GPU once, exactly
    amdsmi_fake.scenario(_cpx(primary=device))
    everything = _meter(gpus="all")
    assert sum(everything.read().values()) == pytest.approx(whole, rel=1e-12)
    everything.close()


def test_a_partition_alone_in_its_container_still_counts_a_share(amdsmi_fake: FakeAmdsmi) -> None:
    # only partition 3 is listed (its render node alone passed in): the ids say 4 partitions at least
    alone = _cpx(primary=[0])[3]
    amdsmi_fake.scenario(
        [
            FakeGpu(
                alone.uuid,
                MI300X,
                energy=[0, _ticks(100, 0.5), 4_000_000],
                power=[100],
                bdf=alone.bdf,
                partition=3,
            )
        ]
    )
    meter = _meter()
    assert meter.read() == {
        "gpu:0": pytest.approx(4_000_000 * RES * UJ / 4 - _ticks(100, 0.5) * RES * UJ / 4, rel=1e-9)
    }
    meter.close()


def test_distributed_rank_measures_its_own_gpu(amdsmi_fake: FakeAmdsmi) -> None:
    gpus = [FakeGpu(g.uuid, g.name, energy=[0], bdf=g.bdf, procs=[os.getpid()]) for g in FOUR]
    amdsmi_fake.scenario(gpus)
    meter = _meter(local_rank=1)  # even with a context on every GPU
    assert [c.name for c in meter.channels] == ["gpu:1"]
    meter.close()


@pytest.mark.parametrize(
    ("code", "reason", "absent"),
    [
        (34, "amdgpu driver is not loaded", True),
        (10, "check the permissions of /dev/kfd", False),
        (18, "could not start", False),
    ],
)
def test_init_failure_is_meter_unavailable_with_a_reason(
    amdsmi_fake: FakeAmdsmi, code: int, reason: str, absent: bool
) -> None:
    amdsmi_fake.scenario(FOUR, init_error=code)
    with pytest.raises(MeterUnavailable, match=reason) as info:
        _meter()
    assert isinstance(info.value, HardwareAbsent) is absent
    assert amdsmi_fake.calls("amdsmi_shut_down") == 0


def test_close_shuts_amdsmi_down_once_and_reads_keep_the_totals(amdsmi_fake: FakeAmdsmi) -> None:
    amdsmi_fake.scenario([FakeGpu(UUID[0], MI300X, energy=[0, 0, 2_000, 9_000])])
    meter = _meter()
    total = meter.read()
    meter.close()
    meter.close()
    assert amdsmi_fake.calls("amdsmi_shut_down") == 1 and init_refcount() == 0
    reads = amdsmi_fake.calls("amdsmi_get_energy_count")
    assert meter.read() == total
    assert amdsmi_fake.calls("amdsmi_get_energy_count") == reads


def test_auto_measures_nvidia_and_amd_gpus_side_by_side(amdsmi_fake: FakeAmdsmi, nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([fake_nvml.FakeGpu("GPU-00000000-1111-2222-3333-444444444444", energy_mj=[0, 3_000])])
    amdsmi_fake.scenario([FakeGpu(UUID[0], MI300X, energy=[0, 1_000])])  # no power readout: no check
    faults = FaultLog()
    meters = build_meters("auto", faults=faults, gpus="all", host=False)
    assert [m.name for m in meters] == ["nvml", "amd"]
    assert [c.name for m in meters for c in m.channels] == ["gpu:0", "gpu:amd0"]  # one name each
    assert meters[1].read() == {"gpu:amd0": pytest.approx(1_000 * RES * UJ, rel=1e-12)}
    assert not faults.messages
    check_measured_once(("nvml", "amd", "rapl"))  # two vendors' GPUs are not counted twice
    with pytest.raises(ValueError, match="amd and amd both measure the gpu"):
        check_measured_once(("amd", "nvml", "amd"))
    for m in meters:
        m.close()


# -- without the library, in a process of its own -------------------------------------------


def _child(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


NO_LIBRARY_CHILD = """
    import sys
    from carbon_core.meters.amd import AmdMeter
    from carbon_core.meters.base import MeterUnavailable
    try:
        AmdMeter(gpus="all")
    except MeterUnavailable as exc:
        print("UNAVAILABLE:", type(exc).__name__, exc)
    print("IMPORTED:", "amdsmi" in sys.modules)
    from carbon_core import Tracker
    final = Tracker(interval_s=1.0, intensity=100, log_dir="off").start().stop()
    print("WARNINGS:", [w for w in final.warnings if "amd:" in w])
"""


def test_no_library_is_one_warning_and_amdsmi_is_never_imported(fake_amdsmi_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ROCM_PATH", "ROCM_HOME", "LD_LIBRARY_PATH")}
    probe = _child("import ctypes; ctypes.CDLL('libamd_smi.so')", env)
    if probe.returncode == 0 or Path("/opt/rocm/lib/libamd_smi.so").exists():
        pytest.skip("a real AMD SMI library is installed on this machine")
    result = _child(NO_LIBRARY_CHILD, env)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["UNAVAILABLE"] == f"HardwareAbsent {AMD_NOT_FOUND}"
    assert lines["IMPORTED"] == "False"  # amdsmi's own import would have printed to stdout
    assert json.loads(lines["WARNINGS"].replace("'", '"')) == [
        f"GPU energy is not measured (amd: {AMD_NOT_FOUND})"
    ]


def test_the_library_is_found_under_rocm_path_as_amdsmi_finds_it(
    fake_amdsmi_root: Path, tmp_path: Path
) -> None:
    scenario = fake_amdsmi.write_scenario(tmp_path / "s.txt", [FakeGpu(UUID[0], MI300X, watts=250.0)])
    code = """
        from carbon_core.faults import FaultLog
        from carbon_core.meters.registry import build_meters
        faults = FaultLog()
        meters = build_meters("auto", faults=faults, gpus="all", host=False)
        print([m.name for m in meters], meters[0].channels[0].method, faults.messages)
        for m in meters:
            m.close()
    """
    env = fake_amdsmi.subprocess_env(fake_amdsmi_root, scenario)
    env.pop("LD_LIBRARY_PATH", None)  # no NVIDIA library either: its absence is no fault next to AMD's GPU
    result = _child(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['amd'] counter ()"


TWO_RANKS = """
    import json, os, sys, time
    import torch.distributed as dist
    import fake_amdsmi
    from carbon_core import Tracker

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    tracker = Tracker(interval_s=0.02, intensity=1000.0, log_dir="off", meters=["amd"]).start()
    dist.barrier()
    if rank == 0:  # after both trackers started, the counters advance by scripted amounts
        after = [fake_amdsmi.FakeGpu(**g) for g in json.loads(os.environ["TEST_AFTER"])]
        fake_amdsmi.write_scenario(os.environ["FAKE_AMDSMI_SCENARIO"], after)
    dist.barrier()
    time.sleep(0.2)
    final = tracker.stop()
    job, _ = tracker.job_snapshot()
    with open(os.path.join(os.environ["TEST_OUT_DIR"], f"rank{rank}.json"), "w") as fh:
        out = {"own": final.energy_gpu_kwh, "job": job.energy_gpu_kwh, "devices": list(final.devices)}
        json.dump(out, fh)
    dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("layout", ["two GPUs", "two partitions of one GPU"])
def test_two_rank_job_counts_each_gpu_once(fake_amdsmi_root: Path, tmp_path: Path, layout: str) -> None:
    pytest.importorskip("torch.distributed")
    from carbon_core.accounting import J_PER_KWH

    partitioned = layout != "two GPUs"
    bdfs = ["0000:0c:00.0", "0000:0c:00.1"] if partitioned else ["0000:0c:00.0", "0000:22:00.0"]

    def gpus(extra: tuple[int, int]) -> list[FakeGpu]:  # no power readout: the counters are not checked
        return [
            FakeGpu(
                UUID[i], MI300X, energy=[1_000_000 + extra[i]], bdf=bdfs[i], partition=i if partitioned else 0
            )
            for i in (0, 1)
        ]

    scenario = fake_amdsmi.write_scenario(tmp_path / "gpus.txt", gpus((0, 0)))
    after = [g.__dict__ for g in gpus((2_000_000, 5_000_000) if not partitioned else (8_000_000, 0))]
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(TWO_RANKS))
    env = fake_amdsmi.subprocess_env(fake_amdsmi_root, scenario)
    env.update(
        TEST_OUT_DIR=str(tmp_path), TEST_AFTER=json.dumps(after), OMP_NUM_THREADS="1", CARBON_LOG_DIR="off"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env["PYTHONPATH"]])
    for key in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(script)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["devices"][0].startswith("gpu:0") and r1["devices"][0].startswith("gpu:1")  # one GPU per rank
    if partitioned:  # the physical GPU's 8e6 ticks, half to each partition's rank, counted once in the job
        own = (4_000_000 * RES * UJ, 4_000_000 * RES * UJ)
    else:
        own = (2_000_000 * RES * UJ, 5_000_000 * RES * UJ)
    assert r0["own"] == pytest.approx(own[0] / J_PER_KWH, rel=1e-9)
    assert r1["own"] == pytest.approx(own[1] / J_PER_KWH, rel=1e-9)
    for r in (r0, r1):
        assert r["job"] == pytest.approx(sum(own) / J_PER_KWH, rel=1e-9)
