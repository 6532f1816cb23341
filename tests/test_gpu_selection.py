"""The GPU selection rules (carbon_core.meters.gpu_selection) on plain records, no NVML."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence

import pytest

from carbon_core.faults import FaultLog
from carbon_core.meters.amd import AMD
from carbon_core.meters.base import MeterUnavailable
from carbon_core.meters.gpu_selection import GpuInfo, Vendor, select_gpus
from carbon_core.meters.nvml import NVIDIA

PID = 4242
UUID = [f"GPU-{i}{i}{i}{i}{i}{i}{i}{i}-1111-2222-3333-44444444444{i}" for i in range(4)]
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-PCIE-40GB"
SAME = [GpuInfo(i, H100, u) for i, u in enumerate(UUID)]
MIXED = [GpuInfo(0, A100, UUID[0]), GpuInfo(1, H100, UUID[1])]
MIG = "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
UNKNOWN_MIG = "MIG-ffffffff-0000-0000-0000-000000000000"


def _select(
    gpus: str | Sequence[int | str] = "auto",
    env: Mapping[str, str] | None = None,
    *,
    rank: int | None = None,
    mine: Collection[int] = (),
    devices: Sequence[GpuInfo] = SAME,
    vendor: Vendor = NVIDIA,
) -> tuple[list[int], tuple[str, ...]]:
    """Indices selected and warnings given; ``mine``: the devices listing this process."""
    faults = FaultLog()
    chosen = select_gpus(
        vendor,
        devices,
        gpus,
        env or {},
        rank,
        faults,
        pids=lambda g: {PID, 1} if g.index in mine else {1},
        parent={MIG: UUID[1]}.get,
        pid=PID,
    )
    return [g.index for g in chosen], faults.messages


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("2,0", [2, 0]),  # the order of the variable
        (" 1 , 2 ", [1, 2]),
        ("1,1", [1]),
        (f"{UUID[3]},GPU-1111", [3, 1]),  # full UUID, unique prefix
        (UUID[2].upper(), [2]),
        (MIG, [1]),  # the GPU holding the MIG device
        (f"MIG-{UUID[0]}/1/0", [0]),  # legacy MIG form names its parent
        (f"0,{MIG}", [0, 1]),
        (f"{MIG},1", [1]),
    ],
)
def test_visible_devices_name_gpus_like_cuda(visible: str, expected: list[int]) -> None:
    assert _select(env={"CUDA_VISIBLE_DEVICES": visible}) == (expected, ())


@pytest.mark.parametrize(
    ("visible", "expected", "warning"),
    [
        (
            "1,7,2",
            [1],
            "NVML: CUDA_VISIBLE_DEVICES='1,7,2' entry '7' names no GPU; like CUDA, the entries "
            "from there on are ignored",
        ),
        ("0,GPU-,2", [0], "entry 'GPU-' names no GPU"),  # a prefix of every UUID names none
        ("1,GPU-99,2", [1], "entry 'GPU-99' names no GPU"),
        ("1,cuda:0,2", [1], "entry 'cuda:0' names no GPU"),
        (
            f"0,{UNKNOWN_MIG},2",
            [0, 2],  # an unknown MIG device is skipped, the entries after it still count
            f"NVML: cannot find the GPU holding MIG device {UNKNOWN_MIG} from CUDA_VISIBLE_DEVICES; "
            "it is skipped (if nothing else is visible, the GPUs running this process are "
            "measured, else all GPUs)",
        ),
    ],
)
def test_visible_devices_entry_naming_no_gpu_warns(visible: str, expected: list[int], warning: str) -> None:
    indices, warnings = _select(env={"CUDA_VISIBLE_DEVICES": visible})
    assert indices == expected
    assert len(warnings) == 1 and warning in warnings[0]


@pytest.mark.parametrize(("mine", "expected"), [((), [0, 1, 2, 3]), ((2,), [2]), ((0, 3), [0, 3])])
def test_unknown_mig_falls_back_to_the_gpus_running_this_process_else_all(
    mine: tuple[int, ...], expected: list[int]
) -> None:
    indices, warnings = _select(env={"CUDA_VISIBLE_DEVICES": UNKNOWN_MIG}, mine=mine)
    assert indices == expected
    assert len(warnings) == 1 and UNKNOWN_MIG in warnings[0]


@pytest.mark.parametrize(
    ("visible", "warnings"), [("", 0), ("-1", 1), ("7", 1), ("GPU-", 1), ("GPU-deadbeef", 1)]
)
def test_visible_devices_naming_no_gpu_means_no_meter(visible: str, warnings: int) -> None:
    faults = FaultLog()
    with pytest.raises(
        MeterUnavailable,
        match=re.escape(f"CUDA_VISIBLE_DEVICES={visible!r} makes no NVIDIA GPU visible to this process"),
    ):
        select_gpus(NVIDIA, SAME, "auto", {"CUDA_VISIBLE_DEVICES": visible}, None, faults, pids=lambda g: ())
    assert len(faults) == warnings


@pytest.mark.parametrize(
    ("env", "rank", "mine", "expected"),
    [
        ({}, None, (), [0, 1, 2, 3]),  # no variable, no context: every GPU
        ({}, None, (1,), [1]),  # the GPUs this process runs on
        ({}, None, (1, 3), [1, 3]),
        ({"CUDA_VISIBLE_DEVICES": "0,2"}, None, (1,), [0, 2]),  # not on them: what is visible
        ({"CUDA_VISIBLE_DEVICES": "0,2"}, None, (2,), [2]),
        ({}, 1, (), [1]),  # distributed: one GPU per local rank
        ({}, 1, (0, 1), [1]),  # even with a stray context on another GPU
        ({}, 0, (3,), [0]),
        ({"CUDA_VISIBLE_DEVICES": "3,2"}, 1, (), [2]),  # rank counts within the visible GPUs
        ({"CUDA_VISIBLE_DEVICES": "3,2"}, 2, (2,), [2]),  # rank beyond them: pid preference
        ({"CUDA_VISIBLE_DEVICES": "3,2"}, 2, (), [3, 2]),
        ({"CUDA_VISIBLE_DEVICES": "3"}, 0, (), [3]),  # one GPU visible: that one
        ({"CUDA_VISIBLE_DEVICES": "3"}, 1, (), [3]),
    ],
)
def test_auto_prefers_the_local_rank_then_the_gpus_of_this_process(
    env: dict[str, str], rank: int | None, mine: tuple[int, ...], expected: list[int]
) -> None:
    assert _select(env=env, rank=rank, mine=mine) == (expected, ())


def test_pid_defaults_to_this_process() -> None:
    chosen = select_gpus(
        NVIDIA, SAME, "auto", {}, None, FaultLog(), pids=lambda g: {os.getpid()} if g.index == 2 else set()
    )
    assert [g.index for g in chosen] == [2]


ORDER_WARNING = (
    "NVML: CUDA_VISIBLE_DEVICES='1' uses indices on a machine with mixed GPU models, where CUDA's "
    "default FASTEST_FIRST order may differ from NVML's PCI order; measuring NVML indices. Set "
    "CUDA_DEVICE_ORDER=PCI_BUS_ID or use GPU UUIDs to be sure."
)


VISIBLE_1 = {"CUDA_VISIBLE_DEVICES": "1"}


@pytest.mark.parametrize(
    ("devices", "env", "mine", "expected", "warned"),
    [
        (MIXED, VISIBLE_1, (), [1], True),
        (MIXED, {**VISIBLE_1, "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}, (), [1], True),
        (MIXED, {**VISIBLE_1, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, (), [1], False),
        (MIXED, {"CUDA_VISIBLE_DEVICES": "1,0"}, (), [1, 0], False),  # every GPU: order is moot
        (MIXED, {"CUDA_VISIBLE_DEVICES": UUID[1]}, (), [1], False),  # by UUID
        (MIXED, VISIBLE_1, (1,), [1], False),  # found by this process's pid
        (MIXED, {}, (), [0, 1], False),
        (SAME[:2], VISIBLE_1, (), [1], False),  # one model: CUDA order = NVML order
    ],
)
def test_mixed_models_selected_by_index_warn_about_cuda_default_order(
    devices: list[GpuInfo], env: dict[str, str], mine: tuple[int, ...], expected: list[int], warned: bool
) -> None:
    assert _select(env=env, mine=mine, devices=devices) == (expected, (ORDER_WARNING,) if warned else ())


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        ("all", [0, 1, 2, 3]),
        ([2, UUID[0]], [2, 0]),
        ("1", [1]),
        ("3, 0", [3, 0]),
        ([0, "0", UUID[0]], [0]),
        (["GPU-2222"], [2]),
        ([MIG], [1]),
        ([f"MIG-{UUID[3]}/0/0"], [3]),
    ],
)
def test_explicit_gpus_ignore_the_environment_and_the_process(
    gpus: str | list[int | str], expected: list[int]
) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "1"}
    assert _select(gpus, env, rank=1, mine=(1,)) == (expected, ())


def test_explicit_gpus_are_library_indices_not_positions() -> None:
    devices = [GpuInfo(5, H100, UUID[0]), GpuInfo(7, H100, UUID[1])]
    assert _select([7], devices=devices) == ([7], ())
    with pytest.raises(ValueError, match="no NVIDIA GPU 1 on"):
        _select([1], devices=devices)


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        ([0, 5], r"gpus=\[0, 5\]: no NVIDIA GPU 5 on this machine \(NVML sees gpu:0 "),
        ("0,9", r"gpus='0,9': no NVIDIA GPU '9' on this machine"),
        (["GPU-deadbeef"], "no NVIDIA GPU 'GPU-deadbeef'"),
        (["GPU-"], "no NVIDIA GPU 'GPU-'"),  # not unique
        ([UNKNOWN_MIG], "no NVIDIA GPU 'MIG-ffffffff"),
        (["cuda:0"], "no NVIDIA GPU 'cuda:0'"),
    ],
)
def test_explicit_gpu_that_does_not_exist_names_the_parameter(
    gpus: str | list[int | str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _select(gpus)


def test_labels_name_index_model_and_uuid() -> None:
    gpu = SAME[2]
    assert gpu.channel == "gpu:2"
    assert gpu.label == f"gpu:2 {H100} ({UUID[2]})"


# -- another vendor: the same rules under its own names ------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [0, 1, 2, 3]),
        ({"HIP_VISIBLE_DEVICES": "2"}, [2]),
        ({"ROCR_VISIBLE_DEVICES": "1,3"}, [1, 3]),
        # each variable narrows what the ones before it left, its indices counting within them
        ({"ROCR_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1"}, [3]),
        ({"ROCR_VISIBLE_DEVICES": f"{UUID[2]},{UUID[0]}", "HIP_VISIBLE_DEVICES": "1,0"}, [0, 2]),
        ({"ROCR_VISIBLE_DEVICES": "3,2,1", "CUDA_VISIBLE_DEVICES": "GPU-1111"}, [1]),
        # HIP reads HIP_VISIBLE_DEVICES, or CUDA_VISIBLE_DEVICES where that is unset or empty
        ({"HIP_VISIBLE_DEVICES": "0,1", "CUDA_VISIBLE_DEVICES": "1"}, [0, 1]),
        ({"HIP_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": "2"}, [2]),
        ({"HIP_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": ""}, [0, 1, 2, 3]),
    ],
)
def test_layered_visible_devices_variables(env: dict[str, str], expected: list[int]) -> None:
    assert _select(env=env, vendor=AMD) == (expected, ())


def test_another_vendor_speaks_its_own_names_and_has_no_partitions_or_order_warning() -> None:
    indices, warnings = _select(env={"HIP_VISIBLE_DEVICES": f"1,{MIG}"}, vendor=AMD, devices=MIXED)
    assert indices == [1]  # by index on mixed models, yet no order to warn about
    assert warnings == (
        f"AMDSMI: HIP_VISIBLE_DEVICES='1,{MIG}' entry '{MIG}' names no GPU; like HIP, the entries "
        "from there on are ignored",
    )
    with pytest.raises(MeterUnavailable, match=r"^ROCR_VISIBLE_DEVICES='5' makes no AMD GPU visible"):
        _select(env={"ROCR_VISIBLE_DEVICES": "5", "HIP_VISIBLE_DEVICES": "0"}, vendor=AMD)
    with pytest.raises(MeterUnavailable, match=r"^HIP_VISIBLE_DEVICES='2' makes no AMD GPU"):
        _select(env={"ROCR_VISIBLE_DEVICES": "0,1", "HIP_VISIBLE_DEVICES": "2"}, vendor=AMD)
    with pytest.raises(ValueError, match=r"no AMD GPU 9 on this machine \(AMDSMI sees gpu:0 "):
        _select([9], vendor=AMD)
