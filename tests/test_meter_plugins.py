"""Plug-in meters: a separate package (tests/meter_plugin_example) installed with pip into a
folder of its own and found through the ``carbon_core.meters`` entry-point group."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbon_core import Tracker
from carbon_core.faults import FaultLog
from carbon_core.meters import registry
from carbon_core.meters.registry import build_meters, check_measured_once, meter_class

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "meter_plugin_example"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package, installed by pip (no index, no build isolation) into a folder."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, work / "src")  # the build leaves its files next to the source
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)],
        check=True, timeout=240,
    )  # fmt: skip
    return site


@pytest.fixture
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    sys.modules.pop("carbon_example_meter", None)


def test_without_the_package_no_plugin_is_found() -> None:
    assert "example-gpu" not in registry.plugins()
    with pytest.raises(ValueError, match="unknown meter 'example-gpu'"):
        Tracker(meters=["example-gpu"], intensity=100)


def test_the_entry_point_group_names_the_meter(installed: Path) -> None:
    assert {"example-gpu", "example-broken"} <= set(registry.plugins())
    cls = meter_class("example-gpu")
    assert cls.__module__ == "carbon_example_meter" and registry.measures("example-gpu") == "gpu"
    with pytest.raises(ValueError, match="measures='disk'"):
        meter_class("example-broken")
    # the same rule as for built-in meters: one component measured once
    with pytest.raises(ValueError, match="nvml and example-gpu both measure the gpu"):
        check_measured_once(("nvml", "example-gpu"))


def test_auto_picks_the_plugin_up_with_the_options_of_its_component(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    energy = tmp_path / "joules"
    energy.write_text("1000.0")
    monkeypatch.setenv("EXAMPLE_GPU_ENERGY_FILE", str(energy))
    faults = FaultLog()
    meters = build_meters("auto", faults=faults, gpus="all", host=False, local_rank=1)
    example = next(m for m in meters if m.name == "example-gpu")
    assert example.info["options"] == ["gpus", "local_rank"]
    energy.write_text("1012.5")
    assert example.read() == {"gpu:example0": 12.5}
    # the broken plug-in of the same package: one warning, nothing else
    assert [m for m in faults.messages if "example-broken" in m] == [
        "meters: plug-in meter 'example-broken' has measures='disk'; expected one of ('gpu', 'cpu', 'ram'); "
        "it is not used"
    ]
    for m in meters:
        m.close()


def test_absent_plugin_hardware_is_one_warning_when_no_gpu_is_measured(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXAMPLE_GPU_ENERGY_FILE", raising=False)
    faults = FaultLog()
    meters = build_meters(("example-gpu",), faults=faults, host=False)
    assert meters == []
    assert faults.messages == (
        "example-gpu: no example accelerator here (EXAMPLE_GPU_ENERGY_FILE is not set)",
    )


TRACKED = """
    from pathlib import Path
    from carbon_core import Tracker
    energy = Path({path!r})
    tracker = Tracker(meters={meters!r}, interval_s=0.05, intensity=100.0, log_dir="off").start()
    energy.write_text("1036.0")  # the accelerator drew 36 J
    import time; time.sleep(0.2)
    final = tracker.stop()
    print(final.methods.get("gpu:example0"), round(final.energy_gpu_kwh * 3.6e6, 6))
"""


@pytest.mark.parametrize("meters", ["auto", ["example-gpu"]])
def test_a_tracker_measures_through_the_installed_plugin(
    plugin_site: Path, tmp_path: Path, meters: object
) -> None:
    energy = tmp_path / "joules"
    energy.write_text("1000.0")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "ROCM_PATH", "ROCM_HOME")}
    env.update(PYTHONPATH=os.pathsep.join([str(plugin_site), str(ROOT)]), EXAMPLE_GPU_ENERGY_FILE=str(energy))
    code = textwrap.dedent(TRACKED).format(path=str(energy), meters=meters)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["counter", "36.0"]
