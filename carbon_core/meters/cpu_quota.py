"""How many CPUs this process may use: its container's CPU quota and cpuset (cgroups).

The cgroup tree is ``CARBON_CGROUP_ROOT`` where that is set (a test, a container that mounts
the tree elsewhere), else ``/sys/fs/cgroup``. The process's own cgroup is named in
``/proc/self/cgroup``; its limits and those of every ancestor up to the root all apply, so
the smallest wins. A path not found under the root (a test's tree, a container that sees
only its own cgroup at the root) leaves the root's own files.

* cgroup v2: ``cpu.max`` (``"<quota> <period>"`` in µs, ``"max <period>"`` for none) and
  ``cpuset.cpus.effective`` (``"0-3,8"``);
* cgroup v1: ``cpu.cfs_quota_us`` (``-1`` for none) over ``cpu.cfs_period_us``, under the
  ``cpu`` (or ``cpu,cpuacct``) hierarchy, and ``cpuset.effective_cpus``/``cpuset.cpus``
  under ``cpuset``.

A quota of 2 CPUs lets the container's processes run 2 CPU-seconds per second, spread over
any of the cpuset's CPUs: the most the estimate charges for at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "/sys/fs/cgroup"
SELF_CGROUP = "/proc/self/cgroup"
_V1_CPU = ("cpu", "cpu,cpuacct", "cpuacct,cpu")
_V1_CPUSET = ("cpuset",)


@dataclass(frozen=True)
class CpuAllowance:
    """The CPU limits found (None where there is none) and the files that set them."""

    quota_cpus: float | None
    cpuset_cpus: int | None
    quota_file: str = ""
    cpuset_file: str = ""

    def limit(self) -> float | None:
        """The most CPUs the process may keep busy at once, or None when unlimited."""
        found = [x for x in (self.quota_cpus, self.cpuset_cpus) if x is not None]
        return min(found) if found else None


def cgroup_root(root: str | os.PathLike[str] | None = None) -> Path:
    return Path(root or os.environ.get("CARBON_CGROUP_ROOT") or DEFAULT_ROOT)


def _own_paths() -> dict[str, str]:
    """controller ("" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    try:
        lines = Path(SELF_CGROUP).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                out[controller] = parts[2]
    return out


def _dirs(base: Path, own: str | None) -> list[Path]:
    """``base/own`` and its ancestors up to ``base`` (``base`` alone when ``own`` is not there)."""
    out: list[Path] = []
    if own:
        d = base / own.strip("/")
        while d != base and base in d.parents:
            if d.is_dir():
                out.append(d)
            d = d.parent
    out.append(base)
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota(d: Path) -> float | None:
    text = _read(d / "cpu.max")
    if text:
        quota, _, period = text.partition(" ")
        if quota != "max":
            return _ratio(quota, period or "100000")
    text = _read(d / "cpu.cfs_quota_us")
    if text and not text.startswith("-"):
        return _ratio(text, _read(d / "cpu.cfs_period_us") or "100000")
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def count_cpulist(text: str) -> int | None:
    """The CPUs in a kernel CPU list (``"0-3,8,10-11"`` -> 7); None when empty or malformed."""
    total = 0
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            total += int(high or low) - int(low) + 1
        except ValueError:
            return None
    return total or None


def _cpuset(d: Path) -> tuple[int | None, str]:
    for name in ("cpuset.cpus.effective", "cpuset.effective_cpus", "cpuset.cpus"):
        text = _read(d / name)
        if text:
            return count_cpulist(text), str(d / name)
    return None, ""


def cpu_allowance(root: str | os.PathLike[str] | None = None) -> CpuAllowance:
    """The quota and cpuset that bind this process; never raises (no cgroup: no limits)."""
    base = cgroup_root(root)
    own = _own_paths()
    quota: tuple[float, str] | None = None
    cpuset: tuple[int, str] | None = None
    trees = [(base, own.get(""))]
    trees += [(base / name, own.get("cpu")) for name in _V1_CPU]
    trees += [(base / name, own.get("cpuset")) for name in _V1_CPUSET]
    for tree, path in trees:
        if not tree.is_dir():
            continue
        for d in _dirs(tree, path):
            q = _quota(d)
            if q is not None and (quota is None or q < quota[0]):
                quota = (q, str(d))
            n, where = _cpuset(d)
            if n is not None and (cpuset is None or n < cpuset[0]):
                cpuset = (n, where)
    return CpuAllowance(
        quota_cpus=quota[0] if quota else None,
        cpuset_cpus=cpuset[0] if cpuset else None,
        quota_file=quota[1] if quota else "",
        cpuset_file=cpuset[1] if cpuset else "",
    )
