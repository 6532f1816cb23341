"""What CPU this is: ``/proc/cpuinfo`` read once, resolved to a microarchitecture.

The file is ``CARBON_CPUINFO`` where that is set (a container that mounts the host's file
elsewhere, a test), else ``/proc/cpuinfo``. Besides the model name it gives ``cpu family``,
``model`` and ``stepping``, the flags (``hypervisor``: a virtual machine), the logical CPUs
listed and the sockets (``physical id``).

A cloud VM often shows a generic name ("AMD EPYC", "Intel Xeon Processor (Cascadelake)",
"Common KVM processor"); the family and model still name the microarchitecture:

* Intel family 6 models, from the Linux kernel's ``arch/x86/include/asm/intel-family.h``
  (model 0x55 is Skylake-SP before stepping 5, Cascade Lake from it; a VM that hides the
  stepping still shows Cascade Lake's ``avx512_vnni`` flag);
* AMD Zen generations by family and model range, from the Linux kernel's
  ``arch/x86/kernel/cpu/amd.c`` (``bsp_init_amd``: families 0x17, 0x19, 0x1a);
* failing both, the microarchitecture QEMU writes in its model names ("(Cascadelake)",
  "EPYC-Milan").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CPUINFO = "/proc/cpuinfo"

#: Intel family 6 model -> microarchitecture (intel-family.h; server and client parts alike)
_INTEL_MODELS: dict[int, str] = {
    **dict.fromkeys((0x2A, 0x2D), "Sandy Bridge"),
    **dict.fromkeys((0x3A, 0x3E), "Ivy Bridge"),
    **dict.fromkeys((0x3C, 0x3F, 0x45, 0x46), "Haswell"),
    **dict.fromkeys((0x3D, 0x47, 0x4F, 0x56), "Broadwell"),
    **dict.fromkeys((0x4E, 0x5E, 0x55), "Skylake"),
    **dict.fromkeys((0x8E, 0x9E, 0xA5, 0xA6), "Coffee Lake"),  # Kaby/Coffee/Whiskey/Comet Lake: Skylake cores
    **dict.fromkeys((0x6A, 0x6C, 0x7D, 0x7E, 0x9D), "Ice Lake"),
    0xA7: "Rocket Lake",
    **dict.fromkeys((0x8C, 0x8D), "Tiger Lake"),
    0x8F: "Sapphire Rapids",
    0xCF: "Emerald Rapids",
    **dict.fromkeys((0xAD, 0xAE), "Granite Rapids"),
    **dict.fromkeys((0x97, 0x9A, 0xBE), "Alder Lake"),
    **dict.fromkeys((0xB7, 0xBA, 0xBF), "Raptor Lake"),
    **dict.fromkeys((0xAA, 0xAC), "Meteor Lake"),
    **dict.fromkeys((0xC5, 0xC6, 0xB5), "Arrow Lake"),
    0xBD: "Lunar Lake",
    0xAF: "Sierra Forest",
}

#: AMD (family, first model, last model) -> Zen generation (amd.c, bsp_init_amd)
_AMD_RANGES: tuple[tuple[int, int, int, str], ...] = (
    (0x17, 0x00, 0x2F, "Zen"),
    (0x17, 0x50, 0x5F, "Zen"),
    (0x17, 0x30, 0x4F, "Zen 2"),
    (0x17, 0x60, 0x7F, "Zen 2"),
    (0x17, 0x90, 0x91, "Zen 2"),
    (0x17, 0xA0, 0xAF, "Zen 2"),
    (0x19, 0x00, 0x0F, "Zen 3"),
    (0x19, 0x20, 0x5F, "Zen 3"),
    (0x19, 0x10, 0x1F, "Zen 4"),
    (0x19, 0x60, 0xAF, "Zen 4"),
    (0x1A, 0x00, 0x2F, "Zen 5"),
    (0x1A, 0x40, 0x4F, "Zen 5"),
    (0x1A, 0x60, 0x7F, "Zen 5"),
)

#: microarchitecture names QEMU (and some clouds) write into the model name
_NAMED = (
    (re.compile(r"sapphire\s*rapids", re.I), "Sapphire Rapids"),
    (re.compile(r"emerald\s*rapids", re.I), "Emerald Rapids"),
    (re.compile(r"granite\s*rapids", re.I), "Granite Rapids"),
    (re.compile(r"cascade\s*lake|cooper\s*lake", re.I), "Cascade Lake"),
    (re.compile(r"ice\s*lake", re.I), "Ice Lake"),
    (re.compile(r"skylake", re.I), "Skylake"),
    (re.compile(r"broadwell", re.I), "Broadwell"),
    (re.compile(r"haswell", re.I), "Haswell"),
    (re.compile(r"ivy\s*bridge", re.I), "Ivy Bridge"),
    (re.compile(r"sandy\s*bridge", re.I), "Sandy Bridge"),
    (re.compile(r"EPYC-Turin", re.I), "Zen 5"),
    (re.compile(r"EPYC-Genoa", re.I), "Zen 4"),
    (re.compile(r"EPYC-Milan", re.I), "Zen 3"),
    (re.compile(r"EPYC-Rome", re.I), "Zen 2"),
)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as ``/proc/cpuinfo`` describes it (first processor's fields, all processors counted)."""

    model_name: str
    vendor: str  # "AMD", "Intel" or ""
    family: int | None
    model: int | None
    stepping: int | None
    flags: frozenset[str]
    logical_cpus: int  # processors listed (0 when the file could not be read)
    sockets: int
    source: str  # the file read

    @property
    def virtual(self) -> bool:
        """A virtual machine: the CPU reports the ``hypervisor`` flag."""
        return "hypervisor" in self.flags

    @property
    def microarchitecture(self) -> str | None:
        return microarchitecture(self)


def cpuinfo_path(path: str | os.PathLike[str] | None = None) -> str:
    return os.fspath(path or os.environ.get("CARBON_CPUINFO") or DEFAULT_CPUINFO)


def _int(value: str) -> int | None:
    try:
        return int(value.strip(), 0) if value.strip().lower().startswith("0x") else int(value.strip())
    except ValueError:
        return None


def read_cpuinfo(path: str | os.PathLike[str] | None = None) -> CpuInfo:
    """Parse the cpuinfo file (``CARBON_CPUINFO``, else ``/proc/cpuinfo``); never raises."""
    where = cpuinfo_path(path)
    first: dict[str, str] = {}
    processors, sockets = 0, set()
    try:
        text = Path(where).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        elif key == "physical id":
            sockets.add(value)
        if key not in first:
            first[key] = value
    name = first.get("model name", "")
    if not name:
        import platform

        name = platform.processor() or "unknown CPU"
    vendor_id = first.get("vendor_id", "")
    vendor = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor_id, "")
    if not vendor:
        upper = name.upper()
        vendor = "AMD" if "AMD" in upper else "Intel" if "INTEL" in upper else ""
    return CpuInfo(
        model_name=name,
        vendor=vendor,
        family=_int(first.get("cpu family", "")),
        model=_int(first.get("model", "")),
        stepping=_int(first.get("stepping", "")),
        flags=frozenset(first.get("flags", "").split()),
        logical_cpus=processors,
        sockets=max(1, len(sockets)),
        source=where,
    )


def microarchitecture(info: CpuInfo) -> str | None:
    """The microarchitecture from family/model (kernel tables), else from the model name."""
    if info.vendor == "Intel" and info.family == 6 and info.model is not None:
        arch = _INTEL_MODELS.get(info.model)
        named = re.search(r"cascade\s*lake|cooper\s*lake", info.model_name, re.I)
        if info.model == 0x55 and ((info.stepping or 0) >= 5 or "avx512_vnni" in info.flags or named):
            arch = "Cascade Lake"  # Cascade Lake (stepping 5-7) and Cooper Lake (10-11) share Skylake's model
        if arch:
            return arch
    if info.vendor == "AMD" and info.family is not None and info.model is not None:
        for family, low, high, arch in _AMD_RANGES:
            if info.family == family and low <= info.model <= high:
                return arch
    for pattern, arch in _NAMED:
        if pattern.search(info.model_name):
            return arch
    return None
