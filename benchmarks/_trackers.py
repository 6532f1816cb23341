"""One face for the three trackers: ``open_tracker(tool, interval_s)`` -> start / step / stop.

Each is used as its documentation shows, offline:

- carbon-core: ``Tracker(zone="DE", log_dir="off")``; ``step`` does what an adapter does
  every training step: ``snapshot()``, ``should_stop`` and ``progress()``.
- CodeCarbon: ``OfflineEmissionsTracker(country_iso_code="DEU", save_to_file=False)``.
- Carbontracker: ``CarbonTracker(epochs=1, log_dir=None, verbose=0)``, one epoch around
  the work. It has no offline switch: it geolocates by IP on every start (refused here by
  the dead proxy, see _common) and falls back to the world-average intensity.

``interval_s=None`` keeps the tool's default. ``stop()`` returns the energy the tool
reports, in joules per component (``cpu``, ``gpu``, ``ram``), ``None`` where it reports none.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

DEFAULT_INTERVAL_S = {"carbon-core": 1.0, "codecarbon": 15.0, "carbontracker": 1.0}
J_PER_KWH = 3.6e6


class Handle:
    def __init__(self, tool: str, interval_s: Optional[float]) -> None:
        self.tool = tool
        self.interval_s = interval_s

    def start(self) -> None: ...

    def step(self, done: int, total: int) -> None: ...

    def stop(self) -> dict[str, Optional[float]]:
        return {}


class CarbonCore(Handle):
    def start(self) -> None:
        from carbon_core import Tracker

        self.t = Tracker(interval_s=self.interval_s, zone="DE", log_dir="off").start()

    def step(self, done: int, total: int) -> None:
        t = self.t
        t.snapshot()
        if t.should_stop.stop:
            raise RuntimeError("no budget was set: should_stop must stay False")
        t.progress(done, total)

    def stop(self) -> dict[str, Optional[float]]:
        s = self.t.stop()
        kwh = {"cpu": s.energy_cpu_kwh, "gpu": s.energy_gpu_kwh, "ram": s.energy_ram_kwh}
        return {k: None if v is None else v * J_PER_KWH for k, v in kwh.items()}


class CodeCarbon(Handle):
    def start(self) -> None:
        from codecarbon import OfflineEmissionsTracker

        kw: dict[str, Any] = {} if self.interval_s is None else {"measure_power_secs": self.interval_s}
        self.t = OfflineEmissionsTracker(country_iso_code="DEU", save_to_file=False, log_level="error", **kw)
        self.t.start()

    def stop(self) -> dict[str, Optional[float]]:
        self.t.stop()
        data = getattr(self.t, "final_emissions_data", None)
        if data is None:
            raise RuntimeError("CodeCarbon did not start: see its log above")
        return {c: getattr(data, f"{c}_energy") * J_PER_KWH for c in ("cpu", "gpu", "ram")}


class Carbontracker(Handle):
    def start(self) -> None:
        from carbontracker.tracker import CarbonTracker

        kw: dict[str, Any] = {} if self.interval_s is None else {"update_interval": self.interval_s}
        # epochs=2 so that ending the one epoch measured does not yet delete the tracker
        # (its energy is read before stop()); the default epochs_before_pred=1 still prints
        # (to the muted logger) the prediction a user would see.
        self.t = CarbonTracker(epochs=2, log_dir=None, verbose=0, **kw)
        self.t.epoch_start()

    def stop(self) -> dict[str, Optional[float]]:
        self.t.epoch_end()
        thread = self.t.tracker
        out: dict[str, Optional[float]] = {"cpu": None, "gpu": None, "ram": None}
        for comp in thread.components:
            out[comp.name] = float(sum(comp.energy_usage(thread.epoch_times))) * J_PER_KWH
        self.t.stop()
        return out


class NoTracker(Handle):
    pass


def open_tracker(tool: str, interval_s: Optional[float] = None) -> Handle:
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    kinds = {"none": NoTracker, "carbon-core": CarbonCore, "codecarbon": CodeCarbon,
             "carbontracker": Carbontracker}  # fmt: skip
    return kinds[tool](tool, interval_s)


def label(tool: str, interval_s: Optional[float]) -> str:
    """``codecarbon @15 s (default)``."""
    if tool == "none":
        return "no tracker"
    default = DEFAULT_INTERVAL_S[tool]
    seconds = default if interval_s is None else interval_s
    return f"{tool} @{seconds:g} s" + (" (default)" if seconds == default else "")
