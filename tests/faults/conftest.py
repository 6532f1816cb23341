"""Shared fixtures of the fault and abuse suite (``pytest -m fault``).

tests/ has no ``__init__.py``: its helper modules (``powercap``, ``fake_nvml``,
``fake_grid_server``) are imported as top-level names. tests/conftest.py puts tests/ on
``sys.path`` through pytest's rootdir insertion; this file makes sure of it for a run
started from tests/faults alone.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent.parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

ROOT = Path(TESTS).parent

from fake_grid_server import FakeGridServer  # noqa: E402
from fault_net import FAKE_HOST, NetGuard, _current  # noqa: E402


@pytest.fixture(autouse=True)
def net(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetGuard]:
    """No fault test may reach anything but 127.0.0.1."""
    guard = NetGuard()
    monkeypatch.setattr(socket, "getaddrinfo", guard.getaddrinfo)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost," + FAKE_HOST)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    _current[:] = [guard]
    yield guard
    guard.recording = False
    _current.clear()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CARBON_* setting of the host leaks in; no host RAPL tree or NVML is read unless
    a test builds its own fake one."""
    for name in list(os.environ):
        if name.startswith("CARBON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARBON_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.chdir(tmp_path)  # a default ./carbon_runs lands in the test's folder


@pytest.fixture
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timeouts, back-off and refresh period, so a failing provider round takes < 1 s."""
    from carbon_core.intensity.providers import http as provider_http

    monkeypatch.setattr(provider_http, "BACKOFF_S", (0.02, 0.05))
    monkeypatch.setenv("CARBON_REFRESH_S", "0.1")
    monkeypatch.setenv("CARBON_TIMEOUT_S", "0.25")


@pytest.fixture
def server() -> Iterator[FakeGridServer]:
    """A local grid-intensity server speaking the providers' formats (modules may override)."""
    with FakeGridServer() as s:
        yield s
