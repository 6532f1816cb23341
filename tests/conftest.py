"""Shared pytest configuration and fixtures."""

from __future__ import annotations

import os

import pytest

# Fake AMD SMI library (tests/fake_amdsmi): fixtures `fake_amdsmi_root`, `amdsmi_fake`.
from fake_amdsmi.plugin import amdsmi_fake, fake_amdsmi_root  # noqa: F401

# Fake NVIDIA driver library (tests/fake_nvml): fixtures `fake_nvml_lib`, `nvml_fake`.
from fake_nvml.plugin import fake_nvml_lib, nvml_fake  # noqa: F401


@pytest.fixture(autouse=True)
def _no_host_carbon_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own ``CARBON_*`` settings (a zone, a token) never leak into a test; the
    run log is off unless a test turns it on, as under ``nox -s tests``."""
    for name in list(os.environ):
        if name.startswith("CARBON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARBON_LOG_DIR", "off")
