"""A fake ``libnvidia-ml.so.1`` for tests: build it, script it, make the real pynvml load it.

In-process (what the ``nvml_fake`` fixture does)::

    lib = fake_nvml.build()                       # gcc, cached per source hash
    fake_nvml.activate(lib)                       # before or after `import pynvml`
    path = fake_nvml.write_scenario(tmp / "s.txt", [FakeGpu("GPU-0000", energy_mj=[0, 500])])
    os.environ["FAKE_NVML_SCENARIO"] = str(path)  # read again on nvmlInit and on change

In a subprocess (a distributed test, a benchmark), no code is needed in the child::

    env = fake_nvml.subprocess_env(lib, path)     # LD_LIBRARY_PATH + FAKE_NVML_SCENARIO
    subprocess.run([sys.executable, "child.py"], env=env)

The dynamic loader then resolves ``CDLL("libnvidia-ml.so.1")`` to the fake (provided no
real driver library is preloaded with higher priority; LD_LIBRARY_PATH comes before the
system paths). ``subprocess_env`` also puts this folder's parent (``tests/``) on
PYTHONPATH, so the child may ``import fake_nvml`` and call ``activate`` itself instead.

The scenario format is described at the top of ``fake_nvml.c``. Rewriting the file (with
:func:`write_scenario`, which replaces it atomically) restarts every scripted sequence;
use ``watts=`` for counters that advance with wall-clock time in every process alike.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from fakelib import compile_shared

SOURCE = Path(__file__).with_name("fake_nvml.c")
LIB_NAME = "libnvidia-ml.so.1"
SCENARIO_ENV = "FAKE_NVML_SCENARIO"

# NVML return codes a scenario may script (as "!<code>" in a sequence, see fail()).
NOT_SUPPORTED = 3
NO_PERMISSION = 4
DRIVER_NOT_LOADED = 9
GPU_IS_LOST = 15
UNKNOWN = 999

Step = Union[int, str]


def fail(code: int) -> str:
    """A sequence step that makes that call return the NVML error ``code``."""
    return f"!{code}"


@dataclass(frozen=True)
class FakeGpu:
    """One scripted device; its NVML index is its position in the scenario.

    ``energy_mj`` / ``power_mw``: values returned by successive calls (the last repeats),
    ``fail(code)`` steps return errors; None = not scripted (NOT_SUPPORTED unless ``watts``).
    ``watts``: constant power; the counter then follows CLOCK_MONOTONIC (time.monotonic()).
    ``procs``: pids listed by nvmlDeviceGetComputeRunningProcesses.
    """

    uuid: str
    name: str = "NVIDIA A100-SXM4-80GB"
    energy_mj: Sequence[Step] | None = None
    power_mw: Sequence[Step] | None = None
    watts: float | None = None
    procs: Sequence[int] = ()


def _steps(values: Sequence[Step]) -> str:
    if not values:
        raise ValueError("a scripted sequence needs at least one value")
    return " ".join(str(v) for v in values)


def scenario_text(
    gpus: Sequence[FakeGpu],
    *,
    init_error: int | None = None,
    migs: Mapping[str, int] | None = None,
    driver: str = "550.54.15",
) -> str:
    lines = [f"driver {driver}"]
    if init_error is not None:
        lines.append(f"init_error {init_error}")
    for gpu in gpus:
        lines.append(f"gpu {gpu.uuid} {gpu.name}")
        if gpu.energy_mj is not None:
            lines.append(f"energy {_steps(gpu.energy_mj)}")
        if gpu.power_mw is not None:
            lines.append(f"power {_steps(gpu.power_mw)}")
        if gpu.watts is not None:
            lines.append(f"watts {gpu.watts}")
        if gpu.procs:
            lines.append("procs " + " ".join(str(p) for p in gpu.procs))
    for uuid, parent in (migs or {}).items():
        lines.append(f"mig {uuid} {parent}")
    return "\n".join(lines) + "\n"


def write_scenario(path: str | os.PathLike[str], gpus: Sequence[FakeGpu], **kw: object) -> Path:
    """Write (atomically replace) a scenario file; keyword arguments as scenario_text."""
    target = Path(path)
    text = scenario_text(gpus, **kw)  # type: ignore[arg-type]
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target


def build(dest: str | os.PathLike[str] | None = None) -> Path:
    """Compile the fake library (once per source version) and return its path."""
    source = SOURCE.read_bytes()
    if dest is None:
        digest = hashlib.sha256(source).hexdigest()[:16]
        dest = Path(tempfile.gettempdir()) / f"carbon-fake-nvml-{digest}"
    return compile_shared(Path(dest) / LIB_NAME, [SOURCE], "NVML")


_active: ctypes.CDLL | None = None


def activate(lib: str | os.PathLike[str]) -> ctypes.CDLL:
    """Load the fake into this process so that the real pynvml binds to it."""
    global _active
    handle = ctypes.CDLL(str(Path(lib).resolve()), mode=ctypes.RTLD_GLOBAL)
    import pynvml

    # Usually pynvml's own CDLL("libnvidia-ml.so.1") now finds the fake by its SONAME.
    # Where a real driver library was loaded first, point the binding at the fake.
    by_soname = ctypes.CDLL(LIB_NAME)
    if by_soname._handle != handle._handle or (
        pynvml.nvmlLib is not None and pynvml.nvmlLib._handle != handle._handle
    ):
        pynvml.nvmlLib = handle
        pynvml._nvmlGetFunctionPointer_cache.clear()
    _active = handle
    return handle


def _control() -> ctypes.CDLL:
    if _active is None:
        raise RuntimeError("fake_nvml.activate() was not called in this process")
    return _active


def call_count(name: str) -> int:
    """How many times this process called the NVML entry point ``name`` (e.g. nvmlShutdown)."""
    return int(_control().fake_nvml_call_count(name.encode()))


def reset_counts() -> None:
    _control().fake_nvml_reset_counts()


def init_refcount() -> int:
    """nvmlInit calls not yet matched by nvmlShutdown in this process."""
    return int(_control().fake_nvml_init_refcount())


def shutdown() -> None:
    """Call the fake's nvmlShutdown directly (counted like any call)."""
    _control().nvmlShutdown()


def subprocess_env(
    lib: str | os.PathLike[str],
    scenario: str | os.PathLike[str] | None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a child process that should see the fake driver."""
    env = dict(os.environ if base is None else base)
    folder = str(Path(lib).resolve().parent)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (folder, env.get("LD_LIBRARY_PATH", "")) if p)
    tests_dir = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tests_dir, env.get("PYTHONPATH", "")) if p)
    if scenario is None:
        env.pop(SCENARIO_ENV, None)
    else:
        env[SCENARIO_ENV] = str(Path(scenario).resolve())
    return env


__all__ = [
    "DRIVER_NOT_LOADED",
    "GPU_IS_LOST",
    "LIB_NAME",
    "NOT_SUPPORTED",
    "NO_PERMISSION",
    "SCENARIO_ENV",
    "UNKNOWN",
    "FakeGpu",
    "activate",
    "build",
    "call_count",
    "fail",
    "init_refcount",
    "reset_counts",
    "scenario_text",
    "shutdown",
    "subprocess_env",
    "write_scenario",
]
