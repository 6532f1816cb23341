"""Shared pytest configuration and fixtures."""

# Fake NVIDIA driver library (tests/fake_nvml): fixtures `fake_nvml_lib`, `nvml_fake`.
from fake_nvml.plugin import fake_nvml_lib, nvml_fake  # noqa: F401
