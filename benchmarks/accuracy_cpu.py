"""The CPU estimate on each path against published measurements (a part of ``accuracy.py``).

carbon-core's figures come from the installed package: a fake ``/proc/cpuinfo`` and cgroup
tree are written to a temporary directory and read by the real meter
(``CpuEstimateMeter(cpuinfo=..., cgroup_root=...)``), exactly as on a user's machine. The
published figures are written below beside their sources; nothing is fetched.

Sources:

* SPECpower: SPECpower_ssj2008 results as shipped by Cloud Carbon Footprint,
  github.com/cloud-carbon-footprint/ccf-coefficients ``data/SPECpower-2026-03-09.csv``
  (commit b0032d9): whole-server wall power at 100 % load / total hardware threads, mean
  over the results of one CPU model.
* CCF: Cloud Carbon Footprint's methodology (github.com/cloud-carbon-footprint/
  cloud-carbon-footprint, ``microsite/docs/HowItWorks/Methodology.md``): "Average Max
  Watts: 3.5" per vCPU where the microarchitecture is unknown.
* RAPL: CodeCarbon's measured RAPL package power with ``n`` threads at full load
  (``stress-ng --cpu n``), github.com/mlco2/codecarbon
  ``codecarbon/data/hardware/cpu_load_profiling/*/compare_cpu_load_and_RAPL-some_cores-*.csv``
  (commit e3e1410, 2025-01-14; column ``rapl_power``).
* TDP: the rated power over the hardware threads (AMD's and Intel's product pages).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from carbon_core.meters.cpu_estimate import CpuEstimateMeter

SPEC = "SPECpower (CCF ccf-coefficients data/SPECpower-2026-03-09.csv)"
RAPL = "CodeCarbon RAPL profile (cpu_load_profiling, 2025-01-14)"

# (label, model name, vendor_id, family, model, stepping, logical CPUs, VM, extra flags)
Machine = tuple[str, str, str, int, int, int, int, bool, str]

#: CodeCarbon's "some_cores" RAPL profiles: (busy threads, package W); the idle row (0 threads)
#: reads 0.2-1.4 W on every machine, implausibly low (the Threadripper's wall plug read
#: 115-161 W then), so it is left out and the run's idle share taken as that reading.
PROFILES: dict[str, tuple[Machine, float, tuple[tuple[int, float], ...]]] = {
    "AMD_Threadripper (1950X)": (
        ("", "AMD Ryzen Threadripper 1950X 16-Core Processor", "AuthenticAMD", 23, 1, 1, 32, False, ""),
        1.43,
        (
            (3, 45.38),
            (6, 76.24),
            (9, 93.33),
            (12, 123.02),
            (16, 147.40),
            (19, 174.78),
            (22, 173.31),
            (25, 169.43),
            (28, 167.42),
            (32, 166.03),
        ),
    ),
    "AMD_EPYC_8024P_8C": (
        ("", "AMD EPYC 8024P 8-Core Processor", "AuthenticAMD", 25, 0xA0, 1, 16, False, ""),
        0.57,
        (
            (1, 18.32),
            (3, 37.68),
            (4, 41.65),
            (6, 43.58),
            (8, 47.22),
            (9, 49.35),
            (11, 49.93),
            (12, 51.11),
            (14, 45.60),
            (16, 46.51),
        ),
    ),
    "E3-1240 (Xeon E3-1240 V2)": (
        ("", "Intel(R) Xeon(R) CPU E3-1240 V2 @ 3.40GHz", "GenuineIntel", 6, 0x3A, 9, 8, False, ""),
        0.18,
        ((1, 6.17), (2, 21.33), (3, 29.60), (4, 36.83), (5, 42.82), (6, 44.59), (7, 46.81), (8, 47.73)),
    ),
    "E5-1240 (same E3-1240 V2, second run)": (
        ("", "Intel(R) Xeon(R) CPU E3-1240 V2 @ 3.40GHz", "GenuineIntel", 6, 0x3A, 9, 8, False, ""),
        0.24,
        ((1, 8.55), (2, 39.05), (3, 55.74), (4, 69.92), (5, 81.68), (6, 85.51), (7, 88.59), (8, 93.67)),
    ),
    "E5-2620 (2 x Xeon E5-2620 v3)": (
        ("", "Intel(R) Xeon(R) CPU E5-2620 v3 @ 2.40GHz", "GenuineIntel", 6, 0x3F, 2, 24, False, ""),
        0.51,
        (
            (2, 16.31),
            (4, 34.77),
            (7, 39.83),
            (9, 49.54),
            (12, 50.49),
            (14, 67.13),
            (16, 71.55),
            (19, 72.03),
            (21, 75.75),
            (24, 79.61),
        ),
    ),
}


def _cpuinfo(path: Path, m: Machine, sockets: int = 1) -> Path:
    _, name, vendor, family, model, stepping, cpus, vm, extra = m
    flags = (
        "fpu tsc msr pae ht syscall nx lm avx avx2"
        + (" hypervisor" if vm else "")
        + (f" {extra}" if extra else "")
    )
    per = max(1, cpus // sockets)
    path.write_text(
        "\n".join(
            f"processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
            f"model name\t: {name}\nstepping\t: {stepping}\nphysical id\t: {i // per}\nflags\t\t: {flags}\n"
            for i in range(cpus)
        )
    )
    return path


def _meter(m: Machine, quota: float | None = None, sockets: int = 1) -> CpuEstimateMeter:
    tmp = Path(tempfile.mkdtemp(prefix="carbon-accuracy-"))
    cgroup = tmp / "cgroup"
    cgroup.mkdir()
    if quota is not None:
        (cgroup / "cpu.max").write_text(f"{int(quota * 100000)} 100000\n")
    return CpuEstimateMeter(
        processes=lambda: [], cpuinfo=str(_cpuinfo(tmp / "cpuinfo", m, sockets)), cgroup_root=str(cgroup)
    )


def _pct(ours: float, ref: float) -> str:
    return f"{(ours - ref) / ref * 100:+.0f} %"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _vm_rows() -> list[list[object]]:
    cases = [  # machine, busy vCPUs, SPECpower W/thread (results), TDP W, threads per socket
        (
            (
                "2 vCPUs, EPYC 7763 named",
                "AMD EPYC 7763 64-Core Processor",
                "AuthenticAMD",
                25,
                1,
                1,
                2,
                True,
                "",
            ),
            2,
            (1.954, 20),
            280,
            128,
        ),
        (
            (
                '2 vCPUs, generic "AMD EPYC" (family 25 model 1)',
                "AMD EPYC",
                "AuthenticAMD",
                25,
                1,
                1,
                2,
                True,
                "",
            ),
            2,
            (1.954, 20),
            280,
            128,
        ),
        (
            (
                "8 vCPUs, EPYC 9654 (Genoa)",
                "AMD EPYC 9654 96-Core Processor",
                "AuthenticAMD",
                25,
                17,
                1,
                8,
                True,
                "",
            ),
            8,
            (1.859, 15),
            360,
            192,
        ),
        (
            (
                "4 vCPUs, EPYC 7742 (Rome)",
                "AMD EPYC 7742 64-Core Processor",
                "AuthenticAMD",
                23,
                49,
                0,
                4,
                True,
                "",
            ),
            4,
            (1.696, 24),
            225,
            128,
        ),
        (
            (
                '4 vCPUs, "Intel Xeon Processor (Icelake)", Xeon 8380 host',
                "Intel Xeon Processor (Icelake)",
                "GenuineIntel",
                6,
                106,
                6,
                4,
                True,
                "",
            ),
            4,
            (3.758, 16),
            270,
            80,
        ),
        (
            (
                '4 vCPUs, "Intel Xeon Processor (Cascadelake)", Xeon 8280 host',
                "Intel Xeon Processor (Cascadelake)",
                "GenuineIntel",
                6,
                85,
                6,
                4,
                True,
                "avx512_vnni",
            ),
            4,
            (4.102, 48),
            205,
            56,
        ),
        (
            (
                "4 vCPUs, Xeon 8480+ (Sapphire Rapids)",
                "Intel(R) Xeon(R) Platinum 8480+",
                "GenuineIntel",
                6,
                143,
                8,
                4,
                True,
                "",
            ),
            4,
            (3.477, 13),
            350,
            112,
        ),
    ]
    rows = []
    for m, busy, (spec_w, results), tdp, threads in cases:
        meter = _meter(m)
        ours = meter.power.watts(busy)
        spec, rated = busy * spec_w, busy * tdp / threads
        old = tdp * busy / m[6]  # TDP x share of the visible vCPUs (the old model; 65 W median if unnamed)
        if m[1] == "AMD EPYC":
            old = 65.0 * busy / m[6]
        rows.append(
            [
                m[0],
                f"{meter.info['microarchitecture']}",
                f"{ours:.2f} W",
                f"{spec:.2f} W ({results} results)",
                _pct(ours, spec),
                f"{rated:.2f} W",
                _pct(ours, rated),
                f"{old:.1f} W",
                _pct(old, spec),
            ]
        )
    return rows


def _container_rows() -> list[list[object]]:
    epyc = ("", "AMD EPYC 7763 64-Core Processor", "AuthenticAMD", 25, 1, 1, 128, False, "")
    vm8 = ("", "AMD EPYC 7763 64-Core Processor", "AuthenticAMD", 25, 1, 1, 8, True, "")
    rows = []
    for label, m, quota, busy in [
        ("bare-metal EPYC 7763 host, quota 4 CPUs, 4 busy", epyc, 4.0, 4),
        ("bare-metal EPYC 7763 host, quota 4 CPUs, 8 threads asking", epyc, 4.0, 8),
        ("8-vCPU EPYC 7763 VM, quota 2 CPUs, 8 threads asking", vm8, 2.0, 8),
    ]:
        meter = _meter(m, quota)
        ours = meter.power.watts(busy)
        charged = min(busy, quota)  # the kernel runs at most the quota
        spec, rated = charged * 1.954, charged * 280 / 128
        old = min(280.0 * busy / m[6], 280.0)
        rows.append(
            [
                label,
                f"{ours:.2f} W",
                f"{spec:.2f} W",
                _pct(ours, spec),
                f"{rated:.2f} W",
                _pct(ours, rated),
                f"{old:.1f} W",
                _pct(old, spec),
            ]
        )
    return rows


def _profile_rows() -> tuple[list[list[object]], list[list[object]]]:
    summary, detail = [], []
    for label, (m, idle, points) in PROFILES.items():
        sockets = 2 if "2 x" in label else 1
        meter = _meter(m, sockets=sockets)
        threads, tdp = meter.power.threads, meter.info["tdp_w"]
        full_measured = points[-1][1]
        errs_new, errs_old, shape_new, shape_old = [], [], [], []
        for n, measured in points:
            ref = measured - idle * (1 - n / threads)  # the run's share: idle of unused threads removed
            ours, old = meter.power.watts(n), tdp * n / threads
            errs_new.append((ours - ref) / ref)
            errs_old.append((old - ref) / ref)
            # the shape alone: both scaled to the measured full-load figure
            shape_new.append((ours / meter.power.watts(threads) * full_measured - ref) / ref)
            shape_old.append((n / threads * full_measured - ref) / ref)
            detail.append(
                [
                    label,
                    n,
                    f"{measured:.1f} W",
                    f"{ours:.1f} W",
                    _pct(ours, ref),
                    f"{old:.1f} W",
                    _pct(old, ref),
                ]
            )
        mean = lambda xs: sum(abs(x) for x in xs) / len(xs) * 100  # noqa: E731
        n1, m1 = points[0]
        summary.append(
            [
                label,
                f"{threads}, TDP {tdp:g} W",
                f"{n1}: {m1:.1f} W vs {meter.power.watts(n1):.1f} W "
                f"({_pct(meter.power.watts(n1), m1 - idle * (1 - n1 / threads))}; "
                f"linear {_pct(tdp * n1 / threads, m1)})",
                f"{mean(errs_new):.0f} %",
                f"{mean(errs_old):.0f} %",
                f"{mean(shape_new):.0f} %",
                f"{mean(shape_old):.0f} %",
                f"{full_measured:.1f} W vs {meter.power.watts(threads):.1f} "
                f"W ({_pct(meter.power.watts(threads), full_measured)})",
            ]
        )
    return summary, detail


def _unknown_rows() -> list[list[object]]:
    cases = [  # machine, SPECpower W/thread (results) or CCF's published fallback
        (
            (
                '"Common KVM processor" VM, 4 vCPUs (host unknown)',
                "Common KVM processor",
                "GenuineIntel",
                15,
                6,
                1,
                4,
                True,
                "",
            ),
            3.5,
            "CCF average max watts per vCPU (methodology)",
        ),
        (
            (
                "Xeon Gold 6548Y, bare metal (Emerald Rapids, not in the TDP table)",
                "Intel(R) Xeon(R) Gold 6548Y",
                "GenuineIntel",
                6,
                0xCF,
                2,
                128,
                False,
                "",
            ),
            4.703,
            f"{SPEC}, 1 result",
        ),
        (
            (
                "Xeon E-2488, bare metal (Raptor Lake, no SPECpower row for it)",
                "Intel(R) Xeon(R) E E-2488",
                "GenuineIntel",
                6,
                0xB7,
                1,
                16,
                False,
                "",
            ),
            6.095,
            f"{SPEC}, 4 results",
        ),
    ]
    rows = []
    for m, ref, source in cases:
        meter = _meter(m)
        ours = meter.power.per_thread_w
        rows.append(
            [
                m[0],
                meter.info["microarchitecture"] or "unknown",
                f"{ours:.2f} W",
                f"{ref:.2f} W",
                source,
                _pct(ours, ref),
            ]
        )
    return rows


def section() -> str:
    import logging

    logging.getLogger("carbon_core").setLevel(logging.ERROR)  # the unknown-model warnings are the point here
    summary, detail = _profile_rows()
    parts = [
        "## CPU estimate (no RAPL)",
        "",
        "One rule on every path: a busy thread is charged "
        "the power it adds plus its share of the idle power; "
        "idle threads are not charged. Each row below is computed by `CpuEstimateMeter` from a fake "
        "`/proc/cpuinfo` and cgroup tree. Band of the `estimated` method: -50 % / +100 %.",
        "",
        "### Virtual machine: watts for the busy vCPUs",
        "",
        "Published: the SPECpower full-load server power per "
        "hardware thread of that CPU model, and the rated "
        "power (TDP) per thread. Old model: TDP x busy / "
        "visible vCPUs (a named model), or the 65 W median TDP "
        'for an unnamed "AMD EPYC".',
        "",
        _table(
            [
                "machine",
                "resolved",
                "carbon-core",
                "SPECpower",
                "error",
                "TDP/threads",
                "error",
                "old model",
                "old error",
            ],
            _vm_rows(),
        ),
        "",
        "SPECpower is whole-server wall power (memory, fans, "
        "power-supply losses in it), the rated power is the "
        "package alone: the estimate sits between the two on AMD, near SPECpower on Intel.",
        "",
        "### Container with a CPU quota (cgroup `cpu.max`)",
        "",
        "Published: the quota's CPUs (what the kernel lets "
        "run) x the per-thread SPECpower figure (EPYC 7763, "
        "1.954 W, 20 results) and x the rated power per thread (280 W / 128). Old model: TDP x busy / all "
        "visible CPUs, capped at the whole package's TDP.",
        "",
        _table(
            ["case", "carbon-core", "SPECpower", "error", "TDP/threads", "error", "old model", "old error"],
            _container_rows(),
        ),
        "",
        "### Bare metal, known model: against measured RAPL package power",
        "",
        f"Published: {RAPL}, `n` threads busy. The run's share "
        "is the measured power less the idle share of the "
        "threads left idle (the idle rows read 0.2-1.4 W). Mean absolute error over each profile's points; "
        '"shape" scales both models to the measured full-load figure, so it judges the load curve alone, '
        "not the TDP rating.",
        "",
        _table(
            [
                "profile",
                "threads",
                "first point: measured vs carbon-core",
                "error (curve)",
                "error (linear TDP)",
                "shape error (curve)",
                "shape error (linear)",
                "full load: measured vs carbon-core",
            ],
            summary,
        ),
        "",
        "The E5-2620 v3 machine has two sockets (24 threads), "
        "but its full-load reading (79.6 W) is 94 % of one "
        "socket's 85 W TDP: CodeCarbon may have read package "
        "0 only, which would halve the reference. The second "
        "E3-1240 V2 run reads 93.7 W at full load, above the part's 69 W TDP.",
        "",
        "<details><summary>every point</summary>",
        "",
        _table(
            ["profile", "busy threads", "measured", "carbon-core", "error", "linear TDP", "error"], detail
        ),
        "",
        "</details>",
        "",
        "### Unknown model or microarchitecture: full-load watts per thread",
        "",
        _table(["machine", "resolved", "carbon-core", "published", "source", "error"], _unknown_rows()),
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(section())
