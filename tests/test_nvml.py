"""NvmlMeter with the real pynvml binding on a fake libnvidia-ml.so.1 (tests/fake_nvml)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_nvml import GPU_IS_LOST, NOT_SUPPORTED, FakeGpu, fail, init_refcount
from fake_nvml.plugin import FakeNvml

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, MeterUnavailable
from carbon_core.meters.nvml import NvmlMeter

ROOT = Path(__file__).resolve().parent.parent
UUID = [f"GPU-{i}{i}{i}{i}{i}{i}{i}{i}-1111-2222-3333-44444444444{i}" for i in range(4)]
H100 = "NVIDIA H100 80GB HBM3"


def _meter(**kw: object) -> NvmlMeter:
    kw.setdefault("faults", FaultLog())
    kw.setdefault("env", {})  # the host's CUDA_VISIBLE_DEVICES must not leak into a test
    return NvmlMeter(**kw)  # type: ignore[arg-type]


def _clock(*times: float) -> Iterator[float]:
    return iter(times)


def test_two_gpus_with_counters_report_exact_scripted_deltas(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, energy_mj=[1_000, 1_500, 4_000]),
            FakeGpu(UUID[1], H100, energy_mj=[50_000, 50_000, 52_345]),
        ]
    )
    meter = _meter(gpus="all")
    assert meter.channels == (
        Channel("gpu:0", "gpu", "counter"),
        Channel("gpu:1", "gpu", "counter"),
    )
    assert meter.read() == {"gpu:0": 0.5, "gpu:1": 0.0}
    assert meter.read() == {"gpu:0": 3.0, "gpu:1": 2.345}
    assert meter.read() == {"gpu:0": 3.0, "gpu:1": 2.345}  # the counters stand still
    assert meter.info["devices"] == [f"gpu:0 {H100} ({UUID[0]})", f"gpu:1 {H100} ({UUID[1]})"]
    assert meter.info["gpus"][1] == {"index": 1, "name": H100, "uuid": UUID[1], "method": "counter"}
    assert meter.info["driver"] == "550.54.15"
    assert not meter.faults.messages
    meter.close()


def test_gpu_without_counter_is_power_sampled_within_stated_error(nvml_fake: FakeNvml) -> None:
    # Samples at t = 0, 1, 3 s read 100 W, 300 W, 300 W. The true power (not visible to
    # the meter) stepped from 100 W to 300 W at t = 0.25 s: 25 + 225 + 600 = 850 J.
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], "Tesla P100-PCIE-16GB", power_mw=[100_000, 300_000, 300_000]),
            FakeGpu(UUID[1], H100, energy_mj=[0, 7_000, 9_000]),
        ]
    )
    meter = _meter(gpus="all", clock=_clock(0.0, 1.0, 3.0).__next__)
    assert meter.channels[0] == Channel("gpu:0", "gpu", "power-sampled")
    assert meter.channels[1] == Channel("gpu:1", "gpu", "counter")
    assert any("1-second average" in note for note in meter.info["notes"])

    first = meter.read()
    assert first == {"gpu:0": 200.0, "gpu:1": 7.0}  # trapezoid: (100 + 300) / 2 * 1 s
    second = meter.read()
    assert second == {"gpu:0": 800.0, "gpu:1": 9.0}
    # Stated bound: sum over intervals of h * (power swing within it) = 1 * 200 + 2 * 0.
    true_joules = 850.0
    assert abs(second["gpu:0"] - true_joules) <= 1.0 * 200.0 + 2.0 * 0.0
    meter.close()


def test_gpu_without_any_power_readout_does_not_zero_the_others(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], "NVIDIA vGPU"),  # neither counter nor power: NOT_SUPPORTED
            FakeGpu(UUID[1], H100, energy_mj=[10_000, 12_500]),
        ]
    )
    meter = _meter(gpus="all")
    assert [c.name for c in meter.channels] == ["gpu:1"]
    assert meter.read() == {"gpu:1": 2.5}
    assert len(meter.faults) == 1
    assert "gpu:0" in meter.faults.messages[0] and "not measured" in meter.faults.messages[0]
    meter.close()


@pytest.mark.parametrize("code", [GPU_IS_LOST, NOT_SUPPORTED, 999])
def test_device_failing_mid_run_keeps_its_total_and_warns_once(nvml_fake: FakeNvml, code: int) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, energy_mj=[0, 1_000, fail(code), 50_000]),
            FakeGpu(UUID[1], H100, energy_mj=[0, 2_000, 5_000, 9_000]),
        ]
    )
    meter = _meter(gpus="all")
    assert meter.read() == {"gpu:0": 1.0, "gpu:1": 2.0}
    assert meter.read() == {"gpu:0": 1.0, "gpu:1": 5.0}
    assert meter.read() == {"gpu:0": 1.0, "gpu:1": 9.0}  # gpu:0 is not read again
    assert len(meter.faults) == 1
    message = meter.faults.messages[0]
    assert "gpu:0" in message and UUID[0] in message and "1.000 J" in message
    if code == GPU_IS_LOST:
        assert "GPU is lost" in message
    meter.close()


def test_counter_going_backwards_is_a_reset_never_a_decrease(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[5_000, 6_000, 100, 400])])
    meter = _meter(gpus="all")
    totals = [meter.read()["gpu:0"] for _ in range(3)]
    assert totals == [1.0, 1.0, 1.3]
    assert len(meter.faults) == 1 and "went back" in meter.faults.messages[0]
    meter.close()


def test_cuda_visible_devices_by_index(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(u, H100, energy_mj=[0, 1_000 * (i + 1)]) for i, u in enumerate(UUID)])
    meter = _meter(env={"CUDA_VISIBLE_DEVICES": "2,0"})
    assert [c.name for c in meter.channels] == ["gpu:2", "gpu:0"]
    assert meter.read() == {"gpu:2": 3.0, "gpu:0": 1.0}
    assert not meter.faults.messages  # same model everywhere: CUDA order = NVML order
    meter.close()


def test_cuda_visible_devices_by_uuid_and_prefix(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(u, H100, energy_mj=[0, 1_000]) for u in UUID])
    meter = _meter(env={"CUDA_VISIBLE_DEVICES": f"{UUID[3]},GPU-1111"})
    assert [g["uuid"] for g in meter.info["gpus"]] == [UUID[3], UUID[1]]
    meter.close()


def test_cuda_visible_devices_stops_at_an_entry_naming_no_gpu(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(u, H100, energy_mj=[0]) for u in UUID[:3]])
    meter = _meter(env={"CUDA_VISIBLE_DEVICES": "1,7,2"})
    assert [c.name for c in meter.channels] == ["gpu:1"]
    assert len(meter.faults) == 1 and "'7'" in meter.faults.messages[0]
    meter.close()


@pytest.mark.parametrize("visible", ["", "-1"])
def test_cuda_visible_devices_hiding_every_gpu_means_no_meter(nvml_fake: FakeNvml, visible: str) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0])])
    with pytest.raises(MeterUnavailable, match="CUDA_VISIBLE_DEVICES"):
        _meter(env={"CUDA_VISIBLE_DEVICES": visible})
    assert init_refcount() == 0  # NVML was shut down again


@pytest.mark.parametrize(("order", "warned"), [(None, True), ("PCI_BUS_ID", False)])
def test_mixed_models_by_index_warn_about_cuda_default_order(
    nvml_fake: FakeNvml, order: str | None, warned: bool
) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], "NVIDIA A100-PCIE-40GB", energy_mj=[0]),
            FakeGpu(UUID[1], H100, energy_mj=[0]),
        ]
    )
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    if order:
        env["CUDA_DEVICE_ORDER"] = order
    meter = _meter(env=env)
    assert [c.name for c in meter.channels] == ["gpu:1"]
    assert (len(meter.faults) == 1) is warned
    meter.close()


def test_mig_uuid_maps_to_its_parent_gpu(nvml_fake: FakeNvml) -> None:
    mig = "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, energy_mj=[0, 1_000]),
            FakeGpu(UUID[1], H100, energy_mj=[0, 4_000]),
        ],
        migs={mig: 1},
    )
    meter = _meter(env={"CUDA_VISIBLE_DEVICES": mig})
    assert meter.read() == {"gpu:1": 4.0}
    assert any("whole physical GPU" in note for note in meter.info["notes"])
    meter.close()
    legacy = _meter(env={"CUDA_VISIBLE_DEVICES": f"MIG-{UUID[0]}/1/0"})
    assert [c.name for c in legacy.channels] == ["gpu:0"]
    legacy.close()


def test_unknown_mig_uuid_warns_and_falls_back_to_the_gpu_running_this_process(
    nvml_fake: FakeNvml,
) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, energy_mj=[0]),
            FakeGpu(UUID[1], H100, energy_mj=[0], procs=[os.getpid()]),
        ]
    )
    meter = _meter(env={"CUDA_VISIBLE_DEVICES": "MIG-ffffffff-0000-0000-0000-000000000000"})
    assert [c.name for c in meter.channels] == ["gpu:1"]
    assert len(meter.faults) == 1 and "MIG-ffffffff" in meter.faults.messages[0]
    meter.close()


def test_auto_prefers_the_gpus_this_process_runs_on(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, energy_mj=[0], procs=[os.getpid() + 100_000]),
            FakeGpu(UUID[1], H100, energy_mj=[0, 3_000], procs=[1, os.getpid()]),
            FakeGpu(UUID[2], H100, energy_mj=[0]),
        ]
    )
    meter = _meter()
    assert meter.read() == {"gpu:1": 3.0}
    meter.close()
    visible = _meter(env={"CUDA_VISIBLE_DEVICES": "0,2"})  # not on them: take what is visible
    assert [c.name for c in visible.channels] == ["gpu:0", "gpu:2"]
    visible.close()


def test_distributed_rank_measures_its_own_gpu_even_with_a_stray_context(nvml_fake: FakeNvml) -> None:
    # local rank 1 also holds a context on GPU 0 (NCCL set up before set_device): NVML lists
    # it on both, yet it must measure GPU 1 only, or GPU 0 would be counted by every rank
    nvml_fake.scenario(
        [
            FakeGpu(UUID[0], H100, energy_mj=[0, 9_000], procs=[os.getpid()]),
            FakeGpu(UUID[1], H100, energy_mj=[0, 4_000], procs=[os.getpid()]),
        ]
    )
    meter = NvmlMeter(FaultLog(), env={}, local_rank=1)
    assert meter.read() == {"gpu:1": 4.0}
    meter.close()


def test_auto_without_visible_devices_or_context_measures_every_gpu(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(u, H100, energy_mj=[0]) for u in UUID[:3]])
    meter = _meter()
    assert [c.name for c in meter.channels] == ["gpu:0", "gpu:1", "gpu:2"]
    meter.close()


def test_explicit_gpus_by_index_and_uuid(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(u, H100, energy_mj=[0]) for u in UUID[:3]])
    meter = _meter(gpus=[2, UUID[0]], env={"CUDA_VISIBLE_DEVICES": "1"})
    assert [c.name for c in meter.channels] == ["gpu:2", "gpu:0"]
    meter.close()
    by_string = _meter(gpus="1")
    assert [c.name for c in by_string.channels] == ["gpu:1"]
    by_string.close()


def test_explicit_gpu_that_does_not_exist_names_the_parameter(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0])])
    with pytest.raises(ValueError, match=r"gpus=\[0, 5\].*5"):
        _meter(gpus=[0, 5])
    with pytest.raises(ValueError, match="GPU-deadbeef"):
        _meter(gpus=["GPU-deadbeef"])
    assert init_refcount() == 0


def test_grace_hopper_counter_covers_the_cpu(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], "NVIDIA GH200 480GB", energy_mj=[0])])
    meter = _meter()
    assert meter.covers_cpu is True and meter.info["covers_cpu"] is True
    meter.close()
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0])])
    other = _meter()
    assert other.covers_cpu is False
    other.close()


def test_power_readout_is_read_in_watts_until_closed(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, power_mw=[312_500])])
    meter = _meter(clock=_clock(0.0, 2.0).__next__)
    assert meter.read() == {"gpu:0": 625.0}  # 312.5 W for 2 s
    assert nvml_fake.calls("nvmlDeviceGetPowerUsage") == 2
    meter.close()
    assert meter.read() == {"gpu:0": 625.0}
    assert nvml_fake.calls("nvmlDeviceGetPowerUsage") == 2  # closed: NVML is not asked again


def test_close_shuts_nvml_down_once_and_reads_keep_the_totals(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0, 2_000, 9_000])])
    meter = _meter()
    assert nvml_fake.calls("nvmlInitWithFlags") + nvml_fake.calls("nvmlInit_v2") == 1
    assert meter.read() == {"gpu:0": 2.0}
    meter.close()
    meter.close()
    assert nvml_fake.calls("nvmlShutdown") == 1
    assert init_refcount() == 0
    reads_before = nvml_fake.calls("nvmlDeviceGetTotalEnergyConsumption")
    assert meter.read() == {"gpu:0": 2.0}
    assert nvml_fake.calls("nvmlDeviceGetTotalEnergyConsumption") == reads_before


@pytest.mark.parametrize(
    ("init_error", "reason"),
    [(9, "driver is not loaded"), (4, "refused access"), (999, "could not start")],
)
def test_init_failure_is_meter_unavailable_with_a_reason(
    nvml_fake: FakeNvml, init_error: int, reason: str
) -> None:
    nvml_fake.scenario([FakeGpu(UUID[0], H100, energy_mj=[0])], init_error=init_error)
    with pytest.raises(MeterUnavailable, match=reason):
        _meter()
    assert nvml_fake.calls("nvmlShutdown") == 0


def test_no_scenario_behaves_like_a_machine_without_driver(nvml_fake: FakeNvml) -> None:
    with pytest.raises(MeterUnavailable, match="driver is not loaded"):
        _meter()


def test_driver_without_gpus_is_meter_unavailable(nvml_fake: FakeNvml) -> None:
    nvml_fake.scenario([])
    with pytest.raises(MeterUnavailable, match="no NVIDIA GPU"):
        _meter()
    assert nvml_fake.calls("nvmlShutdown") == 1


def _child(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


UNAVAILABLE_CHILD = """
    from carbon_core.meters.base import MeterUnavailable
    from carbon_core.meters.nvml import NvmlMeter
    try:
        NvmlMeter(gpus="all")
    except MeterUnavailable as exc:
        print("UNAVAILABLE:", exc)
"""


def test_no_nvml_library_at_all_is_meter_unavailable() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    probe = _child("import ctypes; ctypes.CDLL('libnvidia-ml.so.1')", env)
    if probe.returncode == 0:
        pytest.skip("a real NVIDIA driver library is installed on this machine")
    result = _child(UNAVAILABLE_CHILD, env)
    assert result.returncode == 0, result.stderr
    assert "UNAVAILABLE: NVML library libnvidia-ml.so.1 not found" in result.stdout


def test_missing_pynvml_is_meter_unavailable() -> None:
    result = _child(
        "import sys; sys.modules['pynvml'] = None\n" + textwrap.dedent(UNAVAILABLE_CHILD),
        dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    assert "UNAVAILABLE:" in result.stdout and "nvidia-ml-py" in result.stdout


def test_subprocess_sees_the_fake_through_its_environment(nvml_fake: FakeNvml) -> None:
    # watts mode: the counter follows CLOCK_MONOTONIC, the clock of time.monotonic().
    nvml_fake.scenario([FakeGpu(UUID[0], H100, watts=250.0), FakeGpu(UUID[1], H100, watts=100.0)])
    code = """
        import time
        from carbon_core.meters.nvml import NvmlMeter
        t0 = time.monotonic()
        meter = NvmlMeter(gpus="all", env={})
        time.sleep(0.3)
        joules = meter.read()
        t1 = time.monotonic()
        meter.close()
        print(joules["gpu:0"], joules["gpu:1"], t1 - t0, meter.info["devices"][0])
    """
    result = _child(code, nvml_fake.env())
    assert result.returncode == 0, result.stderr
    gpu0, gpu1, elapsed, device = result.stdout.split(maxsplit=3)
    assert 250.0 * 0.3 <= float(gpu0) <= 250.0 * float(elapsed) + 0.002
    assert 100.0 * 0.3 <= float(gpu1) <= 100.0 * float(elapsed) + 0.002
    assert UUID[0] in device
