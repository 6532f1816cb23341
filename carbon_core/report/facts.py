"""What every published form of a footprint states, worked out once from the run log(s):
the hardware measured, where the grid zone came from, how each component was measured, the
grid intensity's source, the uncertainty band, and the tool's version.

Only what the logs hold: the headers' ``hardware``, ``location_source`` and ``versions``,
the totals' ``methods``, ``devices``, ``zone`` and ``intensity_source``. Nothing is looked up.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Optional

from carbon_core._version import __version__
from carbon_core.bands import component_band, component_methods, uncertainty
from carbon_core.meters.base import COMPONENTS
from carbon_core.runlog.merge import LoadedRun
from carbon_core.snapshot import Snapshot
from carbon_core.summary import fmt_band, fmt_energy, fmt_mass, intensity_kind

#: the Hugging Face Hub's values for ``co2_eq_emissions.training_type``
TRAINING_TYPES = ("pre-training", "fine-tuning")
TOOL = "carbon-core"
#: a GPU in ``Snapshot.devices``: "gpu:0 NVIDIA H100 80GB HBM3 (GPU-...)", maybe "[node] "-prefixed
_GPU_DEVICE = re.compile(r"^(?:\[[^\]]*\] )?gpu:\d+ (?P<name>.+?)(?: \([^()]*\))?$")


def check_training_type(value: Optional[str]) -> Optional[str]:
    """``value`` when it is None or one of :data:`TRAINING_TYPES`; ``ValueError`` otherwise."""
    if value is not None and value not in TRAINING_TYPES:
        raise ValueError(f"training_type must be one of {', '.join(TRAINING_TYPES)} or None, not {value!r}")
    return value


def _headers(run: LoadedRun) -> list[Mapping[str, Any]]:
    return [n.header for n in run.nodes]


def versions(run: LoadedRun) -> str:
    """The carbon-core version(s) that wrote the logs (this one's when there is no log)."""
    found = {str(v) for h in _headers(run) if (v := (h.get("versions") or {}).get("carbon_core"))}
    return ", ".join(sorted(found)) or __version__


def _counted(counts: Counter[str]) -> list[str]:
    return [name if k == 1 else f"{k} x {name}" for name, k in counts.items()]


def _from_header(hardware: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for meter, info in hardware.items():
        if not isinstance(info, Mapping):
            continue
        gpus = info.get("gpus")
        if isinstance(gpus, list):
            out.extend(f"{g.get('name') or 'GPU'} (GPU)" for g in gpus if isinstance(g, Mapping))
        elif meter == "cpu-estimate" and info.get("model"):
            out.append(f"{info['model']} (CPU)")
        elif meter in ("rapl", "pyrapl"):
            zones = info.get("zones")
            packages = [z for z in zones if "package" in str(z)] if isinstance(zones, Mapping) else []
            out.extend(["CPU package (RAPL)"] * len(packages))
    return out


def hardware(run: LoadedRun) -> list[str]:
    """The measured devices, counted: ``["2 x NVIDIA A100-SXM4-80GB (GPU)", "AMD EPYC 7763 (CPU)"]``
    (from each log's header; from the totals' GPUs without a log). The nodes of one job add
    up; jobs that ran one after the other (a resumed run, unrelated runs) count the most any
    of them used, not their sum."""
    most: Counter[str] = Counter()
    jobs = [job.nodes for group in run.runs for job in group.jobs] or [(n,) for n in run.nodes]
    for nodes in jobs:
        found: Counter[str] = Counter()
        for node in nodes:
            hw = node.header.get("hardware")
            found.update(_from_header(hw) if isinstance(hw, Mapping) else [])
        most |= found  # the larger count of each
    if not run.nodes:
        most.update(f"{m['name']} (GPU)" for d in run.snapshot.devices if (m := _GPU_DEVICE.match(d)))
    return _counted(most)


def _how_located(source: str) -> str:
    if source == "argument":
        return "given as the zone argument"
    if source.startswith("env:"):
        name, _, value = source[4:].partition("=")
        return f"from {name}={value}" if value else f"given in {name}"
    if source.startswith("timezone:"):
        return f"from the system time zone {source[9:].split('->', 1)[0]}"
    if source == "world-average":
        return "neither given nor detected: the world average was used"
    return source or "how it was found is not recorded"


def location(run: LoadedRun) -> str:
    """The grid zone and how it was found: the totals' own words when they have them
    (``Snapshot.location``), else from the logs' headers: ``"zone DE, from CARBON_ZONE=DE"``."""
    said = str(getattr(run.snapshot, "location", "") or "")
    if said:
        return said
    hows = list(dict.fromkeys(_how_located(str(h.get("location_source") or "")) for h in _headers(run)))
    zone = run.snapshot.zone or "unknown"
    return f"zone {zone}, {'; '.join(hows)}" if hows else f"zone {zone}"


def methods(snapshot: Snapshot) -> dict[str, str]:
    """Per component, how it was measured and its band: ``{"gpu": "counter, -5 % / +5 %"}``;
    ``"not measured"`` for a component nothing measured."""
    out: dict[str, str] = {}
    for comp in COMPONENTS:
        band = component_band(snapshot, comp)
        names = ", ".join(component_methods(snapshot, comp))
        measured = snapshot.energy_by_component()[comp] is not None
        out[comp] = f"{names or 'unknown'}, {fmt_band(band)}" if measured and band else "not measured"
    return out


def intensity(snapshot: Snapshot) -> str:
    """The grid intensity applied and its source: ``"344.1 gCO2eq/kWh from table:country:DE:2024
    (bundled yearly average)"``; the energy-weighted mean when it changed during the run."""
    source = snapshot.intensity_source or "unknown"
    value = snapshot.intensity_gco2eq_per_kwh
    if snapshot.energy_kwh > 0 and snapshot.pue > 0:
        value = snapshot.co2eq_kg * 1000.0 / (snapshot.energy_kwh * snapshot.pue)
    return f"{value:.1f} gCO2eq/kWh from {source} ({intensity_kind(source)})"


def co2_band(snapshot: Snapshot) -> str:
    """The emissions with their band: ``"1.23 g (0.62 g .. 2.47 g)"``."""
    lo, hi = uncertainty(snapshot)["co2eq_kg"]
    return f"{fmt_mass(snapshot.co2eq_kg)} ({fmt_mass(lo)} .. {fmt_mass(hi)})"


def energy_band(snapshot: Snapshot) -> str:
    lo, hi = uncertainty(snapshot)["energy_kwh"]
    return f"{fmt_energy(snapshot.energy_kwh)} ({fmt_energy(lo)} .. {fmt_energy(hi)})"


def duration(seconds: float) -> str:
    """``"2 h 03 min"``, ``"4 min 10 s"``, ``"12.3 s"``."""
    if seconds >= 3600:
        h, rest = divmod(round(seconds), 3600)
        return f"{h} h {rest // 60:02d} min"
    if seconds >= 60:
        m, s = divmod(round(seconds), 60)
        return f"{m} min {s:02d} s"
    return f"{seconds:.1f} s"
