"""pytest fixtures for the fake NVML library (imported by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import fake_nvml


class FakeNvml:
    """Handle given to a test: writes its scenario and reads the fake's call counters."""

    def __init__(self, lib: Path, scenario_path: Path) -> None:
        self.lib = lib
        self.scenario_path = scenario_path

    def scenario(self, gpus: Sequence[fake_nvml.FakeGpu], **kw: object) -> Path:
        return fake_nvml.write_scenario(self.scenario_path, gpus, **kw)

    def calls(self, name: str) -> int:
        return fake_nvml.call_count(name)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess that should see this fake and scenario."""
        return fake_nvml.subprocess_env(self.lib, self.scenario_path, base)


@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the compiled fake libnvidia-ml.so.1 (built once per session)."""
    return fake_nvml.build(tmp_path_factory.mktemp("fake-nvml"))


@pytest.fixture
def nvml_fake(fake_nvml_lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    """The fake loaded in this process, with an (as yet unwritten) scenario of its own.

    Until the test writes a scenario, nvmlInit fails with DRIVER_NOT_LOADED.
    """
    fake_nvml.activate(fake_nvml_lib)
    path = tmp_path / "nvml-scenario.txt"
    monkeypatch.setenv(fake_nvml.SCENARIO_ENV, str(path))
    fake_nvml.reset_counts()
    yield FakeNvml(fake_nvml_lib, path)
    # NVML sessions a test left open must not leak into the next test's counts.
    while fake_nvml.init_refcount() > 0:
        fake_nvml.shutdown()
