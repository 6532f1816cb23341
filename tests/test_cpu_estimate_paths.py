"""The CPU estimate on each kind of machine, from fake /proc/cpuinfo and cgroup files on disk.

Each test points ``CARBON_CPUINFO`` and ``CARBON_CGROUP_ROOT`` at files written as Linux
writes them, runs the real meter (or a whole Tracker), burns CPU in this process, and checks
the watts per busy thread a user would check against the published figure:

* Cloud Carbon Footprint's per-vCPU coefficients (SPECpower results per hardware thread):
  Zen 3 "EPYC 3rd Gen" 1.957 W at full load; the average over microarchitectures 3.5 W
  (CCF methodology, "Average Max Watts");
* the rated power per thread: EPYC 7763 280 W / 128 threads = 2.19 W;
* CodeCarbon's measured RAPL profile of a Threadripper 1950X: 45.4 W with 3 threads busy.

While fewer than a tenth of the threads are busy every model here is linear in CPU time,
so joules / CPU seconds is the watts per busy thread whatever the machine's load.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from carbon_core import Tracker
from carbon_core.meters import cpu_quota
from carbon_core.meters.cpu_estimate import CpuEstimateMeter, lookup_tdp
from carbon_core.meters.cpu_model import read_cpuinfo
from carbon_core.meters.cpu_quota import count_cpulist, cpu_allowance
from carbon_core.summary import render

EPYC_7763 = "AMD EPYC 7763 64-Core Processor"
BAND = (0.5, 2.0)  # the "estimated" band: -50 % .. +100 %


def write_cpuinfo(
    path: Path,
    name: str,
    vendor: str,
    family: int,
    model: int,
    cpus: int,
    *,
    vm: bool,
    stepping: int = 1,
    sockets: int = 1,
    extra_flags: str = "",
) -> Path:
    """A /proc/cpuinfo as Linux prints it: one block per logical CPU."""
    flags = "fpu vme de pse tsc msr pae mce cx8 apic sep ht syscall nx lm avx avx2" + (
        " hypervisor" if vm else ""
    )
    per = cpus // sockets
    blocks = [
        f"processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        f"model name\t: {name}\nstepping\t: {stepping}\nphysical id\t: {i // per}\nsiblings\t: {per}\n"
        f"core id\t\t: {i % per}\ncpu cores\t: {per}\nflags\t\t: {flags} {extra_flags}\n"
        for i in range(cpus)
    ]
    path.write_text("\n".join(blocks) + "\n")
    return path


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Point the estimate at a fake cpuinfo and an empty cgroup tree (no RAPL)."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    monkeypatch.setenv("CARBON_CGROUP_ROOT", str(cgroup))
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setattr(cpu_quota, "SELF_CGROUP", str(tmp_path / "no-self-cgroup"))

    def make(*args: object, **kw: object) -> Path:
        path = write_cpuinfo(tmp_path / "cpuinfo", *args, **kw)  # type: ignore[arg-type]
        monkeypatch.setenv("CARBON_CPUINFO", str(path))
        return cgroup

    return make


def burn(seconds: float) -> float:
    """Keep this thread busy for ``seconds`` of CPU time; the process's CPU seconds used."""
    began = time.process_time()
    while time.process_time() - began < seconds:
        pass
    return time.process_time() - began


def watts_per_busy_thread(meter: CpuEstimateMeter, seconds: float = 0.3) -> float:
    """Joules over the CPU seconds the meter counted (which are this process's, to a clock tick)."""
    used = burn(seconds)
    joules = meter.read()["cpu:estimate"]
    assert used - 0.02 <= meter.cpu_seconds <= used + 0.05
    return joules / meter.cpu_seconds


def test_vm_with_a_known_model_is_charged_per_busy_vcpu(machine) -> None:  # type: ignore[no-untyped-def]
    machine(EPYC_7763, "AuthenticAMD", 25, 1, 2, vm=True)
    meter = CpuEstimateMeter()
    w = watts_per_busy_thread(meter)
    assert w == pytest.approx(1.957, rel=0.02)  # CCF, EPYC 3rd Gen max watts per vCPU
    assert BAND[0] <= w / (280 / 128) <= BAND[1]  # the rated power per thread, 2.19 W
    assert meter.info["path"] == "virtual machine" and meter.info["microarchitecture"] == "Zen 3"
    method = meter.info["method"]
    assert method.startswith("2 vCPUs of an AMD EPYC 7763 (virtual machine, Zen 3): 1.96 W per busy vCPU")
    assert "Cloud Carbon Footprint" in method and "idle vCPUs are charged nothing" in method


def test_vm_with_the_generic_amd_epyc_name_is_resolved_from_family_and_model(machine) -> None:  # type: ignore[no-untyped-def]
    machine("AMD EPYC", "AuthenticAMD", 25, 1, 2, vm=True)  # what this project's CI machine printed
    began = time.process_time()
    with Tracker(meters=["cpu-estimate"], gpus="none", intensity=100, log_dir="off", interval_s=60) as t:
        used = burn(0.4)
    everything = time.process_time() - began  # the tracker's own start and stop besides
    final = t.snapshot()
    joules = final.energy_cpu_kwh * 3.6e6
    # CCF's Zen 3 per-vCPU figure, 1.957 W, not 65 W / 2 CPUs = 32.5 W
    assert 1.957 * (used - 0.02) <= joules <= 1.957 * (everything + 0.02)
    # what the estimate assumed, in the summary a user reads
    assumed = [line for line in render(final).splitlines() if line.startswith("  estimated CPU: ")]
    assert len(assumed) == 1
    assert assumed[0].startswith(
        "  estimated CPU: 2 vCPUs of an AMD EPYC (virtual machine, Zen 3): 1.96 W per busy vCPU"
    )


def test_a_container_quota_caps_the_threads_charged(machine) -> None:  # type: ignore[no-untyped-def]
    cgroup = machine(EPYC_7763, "AuthenticAMD", 25, 1, 128, vm=False)
    (cgroup / "cpu.max").write_text("400000 100000\n")  # docker run --cpus=4
    meter = CpuEstimateMeter()
    w = watts_per_busy_thread(meter)
    assert w == pytest.approx(1.02 * 280 / 128, rel=0.02)  # a slice: the average thread at full load
    assert BAND[0] <= w / (280 / 128) <= BAND[1]
    assert meter.info["cpu_limit"] == 4 and meter.info["quota_cpus"] == 4
    assert meter.info["method"].startswith(
        "4 of 128 threads of an AMD EPYC 7763 (bare metal, TDP 280 W): 2.23 W"
    )
    assert "at most 4 busy at once (cgroup quota)" in meter.info["method"]

    (cgroup / "cpu.max").write_text("50000 100000\n")  # half a CPU: one busy thread is throttled to it
    meter = CpuEstimateMeter()
    began = time.monotonic()
    burn(0.4)
    joules = meter.read()["cpu:estimate"]
    assert joules <= 0.5 * meter.power.per_thread_w * (time.monotonic() - began) * 1.01


def test_cgroup_v1_quota_and_cpuset(machine) -> None:  # type: ignore[no-untyped-def]
    cgroup = machine(EPYC_7763, "AuthenticAMD", 25, 1, 128, vm=False)
    (cgroup / "cpu").mkdir()
    (cgroup / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (cgroup / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (cgroup / "cpuset").mkdir()
    (cgroup / "cpuset" / "cpuset.cpus").write_text("0-1,8\n")
    found = cpu_allowance()
    assert (found.quota_cpus, found.cpuset_cpus, found.limit()) == (3.0, 3, 3)
    (cgroup / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (cgroup / "cpuset" / "cpuset.cpus").write_text("0-15\n")
    assert cpu_allowance().limit() == 16
    assert count_cpulist("0-3,8,10-11") == 7 and count_cpulist("") is None


def test_bare_metal_single_thread_is_charged_what_the_package_adds(machine) -> None:  # type: ignore[no-untyped-def]
    machine("AMD Ryzen Threadripper 1950X 16-Core Processor", "AuthenticAMD", 23, 1, 32, vm=False)
    meter = CpuEstimateMeter()
    w = watts_per_busy_thread(meter)
    assert lookup_tdp("AMD Ryzen Threadripper 1950X") == (180.0, True)
    # the load curve's first segment: 12 % of TDP idle, 32 % at 10 % load -> 2.12 x TDP / 32 per thread
    assert w == pytest.approx(180 * (0.12 + 2.0) / 32, rel=0.02)
    measured = 45.4 / 3  # CodeCarbon's RAPL profile of this CPU: 45.4 W with 3 threads busy
    assert BAND[0] <= w / measured <= BAND[1]  # 180 W / 32 threads = 5.6 W would be below the band
    assert meter.info["path"] == "bare metal" and meter.info["first_thread_w"] == pytest.approx(w, rel=0.02)
    assert meter.info["method"].startswith(
        "32 threads of an AMD Ryzen Threadripper 1950X (bare metal, TDP 180 W)"
    )
    assert "11.9 W for the first, 5.74 W each when all are busy" in meter.info["method"]


def test_an_unknown_model_on_a_vm_uses_the_median_over_microarchitectures(machine) -> None:  # type: ignore[no-untyped-def]
    machine("Common KVM processor", "GenuineIntel", 15, 6, 4, vm=True)
    meter = CpuEstimateMeter()
    w = watts_per_busy_thread(meter)
    assert BAND[0] <= w / 3.5 <= BAND[1]  # CCF's average max watts per vCPU
    assert meter.info["microarchitecture"] is None
    assert "microarchitecture unknown" in meter.info["method"]
    assert any("'Common KVM processor' (family 15, model 6) is not known" in m for m in meter.faults.messages)


def test_an_unknown_model_on_bare_metal_uses_its_microarchitecture(machine) -> None:  # type: ignore[no-untyped-def]
    machine("Intel Xeon Platinum 9999Z", "GenuineIntel", 6, 0x8F, 16, vm=False)  # Sapphire Rapids
    meter = CpuEstimateMeter()
    assert meter.info["tdp_known"] is False and meter.info["microarchitecture"] == "Sapphire Rapids"
    assert meter.info["watts_per_busy_thread"] == pytest.approx(4.16, rel=0.01)
    assert any("not in the bundled TDP table" in m and "Sapphire Rapids" in m for m in meter.faults.messages)


@pytest.mark.parametrize(
    ("name", "vendor", "family", "model", "stepping", "flags", "arch"),
    [
        ("AMD EPYC", "AuthenticAMD", 25, 1, 1, "", "Zen 3"),  # Milan
        ("AMD EPYC", "AuthenticAMD", 23, 49, 0, "", "Zen 2"),  # Rome
        ("AMD EPYC", "AuthenticAMD", 25, 17, 1, "", "Zen 4"),  # Genoa
        ("AMD EPYC", "AuthenticAMD", 26, 2, 1, "", "Zen 5"),  # Turin
        ("Intel Xeon Processor (Cascadelake)", "GenuineIntel", 6, 85, 1, "", "Cascade Lake"),
        ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "GenuineIntel", 6, 85, 7, "", "Cascade Lake"),
        ("Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz", "GenuineIntel", 6, 85, 4, "", "Skylake"),
        ("Intel Xeon", "GenuineIntel", 6, 85, 0, "avx512_vnni", "Cascade Lake"),  # stepping hidden
        ("Intel Xeon Processor (Icelake)", "GenuineIntel", 6, 106, 6, "", "Ice Lake"),
        ("Intel Xeon", "GenuineIntel", 6, 143, 8, "", "Sapphire Rapids"),
        (
            "Intel Xeon Processor (Icelake)",
            "GenuineIntel",
            15,
            107,
            1,
            "",
            "Ice Lake",
        ),  # model masked: the name
        ("Common KVM processor", "GenuineIntel", 15, 6, 1, "", None),
    ],
)
def test_microarchitecture_from_family_model_flags_and_name(
    tmp_path: Path,
    name: str,
    vendor: str,
    family: int,
    model: int,
    stepping: int,
    flags: str,
    arch: str | None,
) -> None:
    path = write_cpuinfo(
        tmp_path / "c", name, vendor, family, model, 2, vm=True, stepping=stepping, extra_flags=flags
    )
    info = read_cpuinfo(path)
    assert info.microarchitecture == arch and info.virtual and info.logical_cpus == 2


def test_tdp_table_holds_base_power_of_12th_to_14th_generation_parts() -> None:
    for name, watts in [
        ("12th Gen Intel(R) Core(TM) i7-12700K", 125),  # was 190 W, the maximum turbo power
        ("13th Gen Intel(R) Core(TM) i5-1335U", 15),  # was 55 W
        ("12th Gen Intel(R) Core(TM) i7-1270P", 28),  # was 64 W
        ("12th Gen Intel(R) Core(TM) i9-12900KF", 125),
        ("12th Gen Intel(R) Core(TM) i5-12400", 65),
        ("13th Gen Intel(R) Core(TM) i7-13700K", 125),
        ("13th Gen Intel(R) Core(TM) i5-13600K", 125),
        ("Intel(R) Core(TM) i9-14900K", 125),
        ("Intel(R) Core(TM) i7-14700K", 125),
        ("Intel(R) Core(TM) i5-14600K", 125),
    ]:
        assert lookup_tdp(name) == (watts, True), name


def test_sockets_must_be_a_whole_number(machine) -> None:  # type: ignore[no-untyped-def]
    machine(EPYC_7763, "AuthenticAMD", 25, 1, 2, vm=False)
    with pytest.raises(ValueError, match=r"sockets must be .* got 0"):
        CpuEstimateMeter(sockets=0)
