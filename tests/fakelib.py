"""Compiling the fake driver libraries the tests load through the real Python bindings
(``fake_nvml``, ``fake_amdsmi``): one compiler call, written atomically, reused when present."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


def compile_shared(lib: Path, sources: Sequence[Path], what: str) -> Path:
    """Compile ``sources`` into the shared library ``lib`` (its file name is its SONAME) unless
    it exists; ``what`` names the fake in the error when there is no C compiler."""
    if lib.exists():
        return lib
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    if compiler is None:
        raise RuntimeError(f"the fake {what} library needs a C compiler (gcc, or $CC)")
    lib.parent.mkdir(parents=True, exist_ok=True)
    tmp = lib.with_name(f".{lib.name}.{os.getpid()}.tmp")  # two processes may build at once
    subprocess.run(
        [compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden",
         f"-Wl,-soname,{lib.name}", "-o", str(tmp), *map(str, sources), "-lpthread"],
        check=True,
    )  # fmt: skip
    os.replace(tmp, lib)
    return lib
