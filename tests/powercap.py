"""A fake powercap sysfs tree on disk, laid out like the real one, for the real RAPL code.

The real tree has the zone directories under ``/sys/devices/virtual/powercap/intel-rapl``
and flat symlinks to each of them (sub-zones included) in ``/sys/class/powercap``; the
fake does the same under ``root``, so ``CARBON_POWERCAP_ROOT=<tree.root>`` points the
meter at it. Counters are set by the test (microjoules), as the kernel would.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_RANGE_UJ = 262_143_328_850


def write_attribute(path: Path, text: str) -> None:
    """Replace a sysfs attribute's content in one step: a reader sees the old value or the
    new one, as with the kernel's, never the empty file between truncate and write."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class FakePowercap:
    def __init__(
        self,
        base: Path,
        sockets: int = 1,
        dram: bool = True,
        mmio_duplicate: bool = False,
        max_range_uj: int = MAX_RANGE_UJ,
    ) -> None:
        self.base = Path(base)
        self.root = self.base / "class" / "powercap"
        devices = self.base / "devices" / "virtual" / "powercap" / "intel-rapl"
        self.root.mkdir(parents=True)
        devices.mkdir(parents=True)
        (devices / "name").write_text("intel-rapl\n")  # the control type itself has no counter
        os.symlink(devices, self.root / "intel-rapl")
        self.zones: dict[str, Path] = {}
        for s in range(sockets):
            pkg = self._zone(devices / f"intel-rapl:{s}", f"package-{s}", max_range_uj)
            self.zones[f"package-{s}"] = pkg
            subs = [("core", 0), ("uncore", 1)] + ([("dram", 2)] if dram else [])
            for kind, i in subs:
                sub = self._zone(pkg / f"intel-rapl:{s}:{i}", kind, max_range_uj)
                os.symlink(sub, self.root / sub.name)
                self.zones[f"{kind}-{s}"] = sub
            os.symlink(pkg, self.root / pkg.name)
        if mmio_duplicate:  # the same package-0 domain exposed a second time (MMIO interface)
            mmio = self.base / "devices" / "virtual" / "powercap" / "intel-rapl-mmio"
            mmio.mkdir(parents=True)
            dup = self._zone(mmio / "intel-rapl-mmio:0", "package-0", max_range_uj)
            os.symlink(dup, self.root / dup.name)
            self.zones["mmio-package-0"] = dup

    @classmethod
    def attach(cls, base: str | os.PathLike[str]) -> FakePowercap:
        """The tree another process made under ``base`` (for scripting it from a child)."""
        tree = cls.__new__(cls)
        tree.base = Path(base)
        tree.root = tree.base / "class" / "powercap"
        tree.zones = {}
        for link in sorted(tree.root.iterdir()):
            if ":" in link.name:
                kind = (link / "name").read_text().strip()
                socket = link.name.split(":")[1]
                key = kind if kind.startswith("package-") else f"{kind}-{socket}"
                tree.zones[("mmio-" if "mmio" in link.name else "") + key] = link.resolve()
        return tree

    @staticmethod
    def _zone(path: Path, name: str, max_range_uj: int) -> Path:
        path.mkdir()
        (path / "name").write_text(name + "\n")
        (path / "energy_uj").write_text("0\n")
        (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        return path

    def set(self, zone: str, microjoules: int) -> None:
        write_attribute(self.zones[zone] / "energy_uj", f"{microjoules}\n")

    def add(self, zone: str, microjoules: int) -> None:
        path = self.zones[zone] / "energy_uj"
        value = (int(path.read_text()) + microjoules) % int(
            (self.zones[zone] / "max_energy_range_uj").read_text()
        )
        write_attribute(path, f"{value}\n")
