"""The HTML report opened in a real headless Chromium, with the network off for the page:
the screenshot shows the embedded figure (its green cumulative-CO2eq line), and the same
page with the image data cut off shows none, so the check can fail.

Chromium: the Debian package ``chromium`` (``.ci/run`` installs it); skipped where absent,
except under ``CI=true``, where its absence fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from carbon_core import Tracker
from carbon_core.report import render
from carbon_core.runlog import load

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="chromium is not installed (apt-get install chromium)",
)
#: matplotlib's "tab:green", the cumulative CO2eq line of the figure
GREEN = (44, 160, 44)


def screenshot(page: Path, out: Path, profile: Path, height: int = 2200) -> Path:
    """A PNG of ``page`` as headless Chromium draws it (a fresh profile, nothing fetched)."""
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--window-size=1120,{height}", f"--screenshot={out}",
        "--proxy-server=127.0.0.1:9", page.resolve().as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0 and out.is_file(), res.stderr[-2000:]
    return out


def green_pixels(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as img:
        pixels = img.convert("RGB").getdata()
        return sum(1 for r, g, b in pixels if abs(r - GREEN[0]) + abs(g - GREEN[1]) + abs(b - GREEN[2]) < 40)


def real_run_page(tmp_path: Path) -> str:
    """The HTML report of a real one-second run (CPU work, sampled every 50 ms)."""
    pytest.importorskip("matplotlib")
    tracker = Tracker(interval_s=0.05, intensity=300.0, zone="FR", log_dir=tmp_path / "logs")
    with tracker:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline or tracker.intervals < 10:
            sum(i * i for i in range(20_000))
    assert tracker.log_path is not None
    return render(load(tracker.log_path), "html", training_type="pre-training")


def test_the_page_shows_its_figure_in_a_real_browser(tmp_path: Path) -> None:
    page = real_run_page(tmp_path)
    shown = tmp_path / "report.html"
    shown.write_text(page, encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,AAAA", page), encoding="utf-8")
    green = green_pixels(screenshot(shown, tmp_path / "report.png", tmp_path / "profile-a"))
    none = green_pixels(screenshot(broken, tmp_path / "broken.png", tmp_path / "profile-b"))
    assert green > 300, green  # the cumulative line: hundreds of pixels
    assert none < 20, none
