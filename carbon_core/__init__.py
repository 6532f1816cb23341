"""carbon-core: the energy and kgCO2eq of ML training, measured live.

``from carbon_core import Tracker, Snapshot``. Heavy parts (meters, providers, requests,
psutil) load only when a tracker starts, so importing the package costs under a millisecond.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Snapshot", "StopDecision", "Tracker", "__version__"]

if TYPE_CHECKING:
    from carbon_core.budget import StopDecision
    from carbon_core.snapshot import Snapshot
    from carbon_core.tracker import Tracker


def __getattr__(name: str) -> Any:
    if name == "Tracker":
        from carbon_core.tracker import Tracker

        return Tracker
    if name == "Snapshot":
        from carbon_core.snapshot import Snapshot

        return Snapshot
    if name == "StopDecision":
        from carbon_core.budget import StopDecision

        return StopDecision
    raise AttributeError(f"module 'carbon_core' has no attribute {name!r}")
