"""carbon-core: the energy and kgCO2eq of ML training, measured live.

``from carbon_core import Tracker, Snapshot``. Heavy parts (meters, providers, requests,
psutil) load only when a tracker starts, so importing the package costs under a millisecond.
"""

from carbon_core._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Any

    from carbon_core.budget import StopDecision
    from carbon_core.snapshot import Snapshot
    from carbon_core.tracker import Tracker

__all__ = ["Snapshot", "StopDecision", "Tracker", "__version__"]

#: public name -> the module that defines it, imported on first use
_LAZY = {
    "Tracker": "carbon_core.tracker",
    "Snapshot": "carbon_core.snapshot",
    "StopDecision": "carbon_core.budget",
}


def __getattr__(name: str) -> "Any":
    if name not in _LAZY:
        raise AttributeError(f"module 'carbon_core' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(_LAZY[name]), name)
