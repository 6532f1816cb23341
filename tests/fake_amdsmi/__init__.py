"""A fake ``libamd_smi.so`` for tests: build it, script it, make the real amdsmi load it.

The real ``amdsmi`` package (the wheel on PyPI is pure Python) finds ``libamd_smi.so`` under
``$ROCM_PATH/lib`` and binds every symbol its wrapper names when it is imported. So the
fake is built in two parts: ``fake_amdsmi.c`` (the calls carbon_core's AMD meter makes,
scripted by a scenario file) and ``stubs.c``, generated here from the installed
``amdsmi_wrapper.py``: one function per other symbol the wrapper binds, answering
AMDSMI_STATUS_NOT_SUPPORTED (and counted, see :func:`call_count`).

In-process (what the ``amdsmi_fake`` fixture does)::

    root = fake_amdsmi.build()                  # <root>/lib/libamd_smi.so, cached per source
    fake_amdsmi.activate(root)                  # ROCM_PATH=<root>, then `import amdsmi`
    fake_amdsmi.write_scenario(path, [FakeGpu("GPU-0123456789abcdef", energy=[0, 1000])])
    os.environ["FAKE_AMDSMI_SCENARIO"] = str(path)

In a subprocess (a distributed test, a benchmark)::

    env = fake_amdsmi.subprocess_env(root, path)  # ROCM_PATH, FAKE_AMDSMI_SCENARIO, PYTHONPATH

The scenario format is described at the top of ``fake_amdsmi.c``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Union

from fakelib import compile_shared

SOURCE = Path(__file__).with_name("fake_amdsmi.c")
LIB_NAME = "libamd_smi.so"
SCENARIO_ENV = "FAKE_AMDSMI_SCENARIO"

# AMD SMI status codes a scenario may script (as "!<code>" in a sequence, see fail()).
NOT_SUPPORTED = 2
IO = 12
NO_PERM = 10
NOT_FOUND = 31
DRIVER_NOT_LOADED = 34
UNKNOWN = 4294967295

Step = Union[int, str]
_BOUND = re.compile(r"_libraries\['libamd_smi\.so'\]\.(\w+)")
_DEFINED = re.compile(r"^EXPORT\s+[\w\s\*]+?\b(\w+)\s*\(", re.MULTILINE)


def fail(code: int) -> str:
    """A sequence step that makes that call fail with the AMD SMI status ``code``."""
    return f"!{code}"


@dataclass(frozen=True)
class FakeGpu:
    """One scripted logical GPU; its amdsmi index is its position in the scenario.

    ``energy`` (accumulator ticks), ``power`` (current_socket_power, W) and ``average``
    (average_socket_power, W): values returned by successive calls (the last repeats),
    ``fail(code)`` steps return errors. ``watts``: constant power; the accumulator then
    follows CLOCK_MONOTONIC (time.monotonic()). ``bdf``: logical GPUs sharing
    domain:bus:device are partitions of one physical GPU (list them one after another).
    """

    uuid: str
    name: str = "AMD Instinct MI300X"
    energy: Sequence[Step] | None = None
    resolution: float | None = None
    power: Sequence[Step] | None = None
    average: Sequence[Step] | None = None
    watts: float | None = None
    bdf: str | None = None
    partition: int | None = None
    hip_id: int | str | None = None
    procs: Sequence[int] = ()


def _steps(values: Sequence[Step]) -> str:
    if not values:
        raise ValueError("a scripted sequence needs at least one value")
    return " ".join(str(v) for v in values)


def scenario_text(gpus: Sequence[FakeGpu], *, init_error: int | None = None, driver: str = "6.10.5") -> str:
    lines = [f"driver {driver}"]
    if init_error is not None:
        lines.append(f"init_error {init_error}")
    for gpu in gpus:
        lines.append(f"gpu {gpu.uuid} {gpu.name}")
        for key in ("bdf", "partition", "hip_id", "resolution", "watts"):
            if getattr(gpu, key) is not None:
                lines.append(f"{key} {getattr(gpu, key)}")
        for key in ("energy", "power", "average"):
            if getattr(gpu, key) is not None:
                lines.append(f"{key} {_steps(getattr(gpu, key))}")
        if gpu.procs:
            lines.append("procs " + " ".join(str(p) for p in gpu.procs))
    return "\n".join(lines) + "\n"


def write_scenario(path: str | os.PathLike[str], gpus: Sequence[FakeGpu], **kw: object) -> Path:
    """Write (atomically replace) a scenario file; keyword arguments as scenario_text."""
    target = Path(path)
    text = scenario_text(gpus, **kw)  # type: ignore[arg-type]
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target


def wrapper_source() -> str:
    """The installed amdsmi wrapper, read without importing it (that would load a library)."""
    spec = find_spec("amdsmi")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fake AMD SMI library needs the amdsmi package: pip install amdsmi")
    return (Path(next(iter(spec.submodule_search_locations))) / "amdsmi_wrapper.py").read_text()


def bound_symbols(wrapper: str) -> list[str]:
    """Every library symbol the wrapper binds at import, in its order."""
    return list(dict.fromkeys(_BOUND.findall(wrapper)))


def stubs_source(wrapper: str, implemented: str) -> str:
    """C stubs for the bound symbols ``implemented`` (the fake's source) does not define."""
    have = set(_DEFINED.findall(implemented))
    out = [
        "/* Generated by tests/fake_amdsmi/__init__.py from the installed amdsmi_wrapper.py. */",
        '#define EXPORT __attribute__((visibility("default")))',
        "int fake_amdsmi_stub_called(const char *name);",
    ]
    out += [
        f'EXPORT int {name}(void) {{ return fake_amdsmi_stub_called("{name}"); }}'
        for name in bound_symbols(wrapper)
        if name not in have
    ]
    return "\n".join(out) + "\n"


def build(dest: str | os.PathLike[str] | None = None) -> Path:
    """Compile the fake (once per fake source and wrapper version); return its ROCm root,
    the folder whose ``lib/libamd_smi.so`` it is."""
    implemented = SOURCE.read_text()
    stubs = stubs_source(wrapper_source(), implemented)
    if dest is None:
        digest = hashlib.sha256((implemented + stubs).encode()).hexdigest()[:16]
        dest = Path(tempfile.gettempdir()) / f"carbon-fake-amdsmi-{digest}"
    root = Path(dest)
    if not (root / "lib" / LIB_NAME).exists():
        stub_file = root / "stubs.c"
        root.mkdir(parents=True, exist_ok=True)
        stub_file.write_text(stubs)
        compile_shared(root / "lib" / LIB_NAME, [SOURCE, stub_file], "AMD SMI")
    return root


_active: ctypes.CDLL | None = None


def activate(root: str | os.PathLike[str]) -> ctypes.CDLL:
    """Make this process's amdsmi load the fake: ``import amdsmi`` with ``ROCM_PATH`` set to
    ``root`` (and ``ROCM_HOME`` unset) for the import only; set them yourself (as
    :func:`subprocess_env` does) for code that looks for the library as amdsmi does."""
    global _active
    lib = (Path(root) / "lib" / LIB_NAME).resolve()
    saved = {k: os.environ.get(k) for k in ("ROCM_HOME", "ROCM_PATH")}
    os.environ.pop("ROCM_HOME", None)
    os.environ["ROCM_PATH"] = str(Path(root).resolve())
    try:
        import amdsmi.amdsmi_wrapper as wrapper
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    loaded = wrapper._libraries.get(LIB_NAME)
    handle = ctypes.CDLL(str(lib))
    if loaded is None or loaded._handle != handle._handle:
        raise RuntimeError(f"amdsmi was imported before with another library ({loaded}); cannot switch")
    _active = handle
    return handle


def _control() -> ctypes.CDLL:
    if _active is None:
        raise RuntimeError("fake_amdsmi.activate() was not called in this process")
    return _active


def call_count(name: str) -> int:
    """How many times this process called the library entry point ``name``."""
    return int(_control().fake_amdsmi_call_count(name.encode()))


def reset_counts() -> None:
    _control().fake_amdsmi_reset_counts()


def init_refcount() -> int:
    """amdsmi_init calls not yet matched by amdsmi_shut_down in this process."""
    return int(_control().fake_amdsmi_init_refcount())


def shutdown() -> None:
    _control().amdsmi_shut_down()


def struct_size(name: str) -> int:
    """sizeof of one of the fake's structures (``power_info``, ...), to check against amdsmi's."""
    return int(_control().fake_amdsmi_sizeof(name.encode()))


def subprocess_env(
    root: str | os.PathLike[str],
    scenario: str | os.PathLike[str] | None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a child process whose amdsmi should load the fake."""
    env = dict(os.environ if base is None else base)
    env.pop("ROCM_HOME", None)
    env["ROCM_PATH"] = str(Path(root).resolve())
    tests_dir = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tests_dir, env.get("PYTHONPATH", "")) if p)
    if scenario is None:
        env.pop(SCENARIO_ENV, None)
    else:
        env[SCENARIO_ENV] = str(Path(scenario).resolve())
    return env


__all__ = [
    "DRIVER_NOT_LOADED",
    "IO",
    "LIB_NAME",
    "NOT_FOUND",
    "NOT_SUPPORTED",
    "NO_PERM",
    "SCENARIO_ENV",
    "UNKNOWN",
    "FakeGpu",
    "activate",
    "bound_symbols",
    "build",
    "call_count",
    "fail",
    "init_refcount",
    "reset_counts",
    "scenario_text",
    "shutdown",
    "struct_size",
    "subprocess_env",
    "write_scenario",
]
