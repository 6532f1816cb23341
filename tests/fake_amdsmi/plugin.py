"""pytest fixtures for the fake AMD SMI library (import them into a test module)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path

import pytest

import fake_amdsmi


class FakeAmdsmi:
    """Handle given to a test: writes its scenario and reads the fake's call counters."""

    def __init__(self, root: Path, scenario_path: Path) -> None:
        self.root = root
        self.scenario_path = scenario_path

    def scenario(self, gpus: Sequence[fake_amdsmi.FakeGpu], **kw: object) -> Path:
        return fake_amdsmi.write_scenario(self.scenario_path, gpus, **kw)

    def calls(self, name: str) -> int:
        return fake_amdsmi.call_count(name)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess that should see this fake and scenario."""
        return fake_amdsmi.subprocess_env(self.root, self.scenario_path, base)


@pytest.fixture(scope="session")
def fake_amdsmi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ROCm root of the compiled fake (``<root>/lib/libamd_smi.so``), built once."""
    if find_spec("amdsmi") is None:  # not imported here: it binds its library when imported
        pytest.skip("the AMD tests need the amdsmi package (carbon-core[amd])")
    return fake_amdsmi.build(tmp_path_factory.mktemp("fake-amdsmi"))


@pytest.fixture
def amdsmi_fake(
    fake_amdsmi_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeAmdsmi]:
    """The fake loaded by this process's amdsmi and found where amdsmi looks (ROCM_PATH, for
    this test only), with an (as yet unwritten) scenario of its own: until the test writes
    one, amdsmi_init fails with DRIVER_NOT_LOADED."""
    fake_amdsmi.activate(fake_amdsmi_root)
    monkeypatch.delenv("ROCM_HOME", raising=False)
    monkeypatch.setenv("ROCM_PATH", str(fake_amdsmi_root))
    path = tmp_path / "amdsmi-scenario.txt"
    monkeypatch.setenv(fake_amdsmi.SCENARIO_ENV, str(path))
    fake_amdsmi.reset_counts()
    yield FakeAmdsmi(fake_amdsmi_root, path)
    while fake_amdsmi.init_refcount() > 0:  # sessions a test left open must not leak
        fake_amdsmi.shutdown()
