"""One distribution, four import packages, the bundled data and the command, in the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from carbon_core import __version__

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_holds_the_four_packages_the_data_and_the_command(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("carbon_core-*.whl")
    assert wheel.name.startswith(f"carbon_core-{__version__}-")  # one version: the package's own
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("carbon_core", "carbon_lightning", "carbon_keras", "carbon_transformers"):
        assert f"{package}/__init__.py" in names
    assert not any(n.startswith(("integrations/", "tests/")) for n in names)
    for table in ("grid_intensity_countries.csv", "cpu_tdp_watts.csv", "SOURCES.md"):
        assert f"carbon_core/data/{table}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "carbon-core = carbon_core.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
