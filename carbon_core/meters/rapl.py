"""CPU package and DRAM energy from Linux RAPL through the powercap sysfs tree.

The tree (``/sys/class/powercap`` by default, or ``CARBON_POWERCAP_ROOT`` where a
container mounts the host's elsewhere) holds one zone per RAPL domain::

    intel-rapl:0/            name=package-0, energy_uj, max_energy_range_uj
    intel-rapl:0/intel-rapl:0:0   name=core     (inside package-0: never added again)
    intel-rapl:0/intel-rapl:0:1   name=uncore   (inside package-0: never added again)
    intel-rapl:0/intel-rapl:0:2   name=dram     (memory of socket 0: goes to ``ram``)

Zones appear both flat (``/sys/class/powercap/intel-rapl:0:2``, symlinks) and nested;
every physical domain is counted once, keyed by (kind, socket). Where the same domain is
exposed twice (``intel-rapl`` and ``intel-rapl-mmio``, as on some AMD and recent Intel
machines) the first in sorted order (``intel-rapl``) is kept. ``psys`` (the whole
platform) overlaps the packages and is not used.

Counters are read as deltas; a counter that wraps is unwrapped with
``max_energy_range_uj``. A decrease that cannot be a wrap (the implied delta exceeds half
the counter range, far above any interval's energy at the accepted sampling intervals)
is a reset: the interval counts nothing and the counter is re-based, with one warning.
A file that cannot be read, or holds anything but an integer within
``0..max_energy_range_uj``, is skipped for that interval (one warning) and retried.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from carbon_core.faults import FaultLog
from carbon_core.meters.base import Channel, Meter, MeterUnavailable

DEFAULT_ROOT = "/sys/class/powercap"
PERMISSION_HINT = (
    "Since Linux 5.10 energy_uj is readable by root only. To measure the CPU exactly, grant "
    "read access, e.g. `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj` (or a udev rule to keep it across reboots)."
)


@dataclass
class _Zone:
    channel: Channel
    path: Path
    max_range_uj: int
    last_uj: int
    joules: float = 0.0


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _zone_dirs(root: Path) -> list[Path]:
    """Every zone directory under root, flat entries and nested ones, in sorted order."""
    found: list[Path] = []
    stack = _children(root)
    while stack:
        d = stack.pop()
        if d.is_dir():
            found.append(d)
            stack.extend(_children(d))
    return found


def _children(d: Path) -> list[Path]:
    """Zone entries of d, the preferred first when popped (``intel-rapl`` before ``-mmio``)."""
    zones = [p for p in d.iterdir() if ":" in p.name]
    return sorted(zones, key=lambda p: ("mmio" in p.name, p.name), reverse=True)


class RaplMeter(Meter):
    """Cumulative joules of every CPU package (``cpu``) and DRAM domain (``ram``)."""

    name = "rapl"

    def __init__(self, faults: FaultLog | None = None, root: str | os.PathLike[str] | None = None) -> None:
        super().__init__(faults)
        self.root = Path(root or os.environ.get("CARBON_POWERCAP_ROOT") or DEFAULT_ROOT)
        if not self.root.is_dir():
            raise MeterUnavailable(f"no RAPL powercap tree at {self.root}")
        self._zones: list[_Zone] = []
        denied: list[str] = []
        seen: set[str] = set()
        for d in _zone_dirs(self.root):
            try:
                kind = (d / "name").read_text().strip()
            except OSError:
                continue
            channel = self._channel_for(d, kind)
            if channel is None or channel.name in seen:
                continue
            try:
                start = _read_int(d / "energy_uj")
                max_range = _read_int(d / "max_energy_range_uj")
            except PermissionError:
                denied.append(str(d / "energy_uj"))
                continue
            except (OSError, ValueError) as exc:
                self.faults.warn(f"rapl:init:{d}", f"RAPL zone {d} is not readable ({exc}); skipped")
                continue
            seen.add(channel.name)
            self._zones.append(_Zone(channel, d / "energy_uj", max_range, start))
        if denied:
            self.faults.warn(
                "rapl:permission",
                f"RAPL energy counters are not readable ({len(denied)} zone(s), "
                f"e.g. {denied[0]}). {PERMISSION_HINT}",
            )
        if not self._zones:
            reason = (
                "RAPL counters exist but none is readable"
                if denied
                else (f"no RAPL package zone under {self.root}")
            )
            raise MeterUnavailable(reason)
        self.channels = tuple(z.channel for z in self._zones)
        self.info = {
            "root": str(self.root),
            "zones": {z.channel.name: str(z.path.parent) for z in self._zones},
        }

    @staticmethod
    def _channel_for(d: Path, kind: str) -> Channel | None:
        if kind.startswith("package-"):
            return Channel(f"cpu:{kind}", "cpu", "counter")
        if kind == "dram":
            parent = d.parent if ":" in d.parent.name else d.with_name(d.name.rsplit(":", 1)[0])
            try:
                package = (parent / "name").read_text().strip()
            except OSError:
                return None
            socket = package.rsplit("-", 1)[-1] if package.startswith("package-") else "0"
            return Channel(f"cpu:dram-{socket}", "ram", "counter")
        return None  # core, uncore: inside their package; psys: overlaps the packages

    def read(self) -> Mapping[str, float]:
        for z in self._zones:
            self._advance(z)
        return {z.channel.name: z.joules for z in self._zones}

    def _advance(self, z: _Zone) -> None:
        try:
            now = _read_int(z.path)
            if not 0 <= now <= z.max_range_uj:  # no counter holds this: garbage, not energy
                raise ValueError(f"{now} uJ is outside the counter's range 0..{z.max_range_uj}")
        except (OSError, ValueError) as exc:
            # Skipped this interval and retried the next: if the counter comes back, the delta
            # from the last good reading is the energy drawn meanwhile (the hardware kept counting).
            self.faults.warn(
                f"rapl:read:{z.channel.name}",
                f"RAPL counter {z.path} is unreadable ({type(exc).__name__}: {exc}); "
                f"{z.channel.name} keeps its {z.joules:.1f} J measured so far and is retried each interval",
            )
            return
        delta = now - z.last_uj
        if delta < 0:
            delta += z.max_range_uj
            if delta > z.max_range_uj // 2:
                self.faults.warn(
                    f"rapl:reset:{z.channel.name}",
                    f"RAPL counter {z.path} went backwards ({z.last_uj} -> {now} uJ): treated "
                    "as a counter reset; that interval counts nothing",
                )
                delta = 0
        z.last_uj = now
        z.joules += delta / 1e6
