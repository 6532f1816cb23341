"""The value adapters, the run log and the CLI read: running totals at one moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Optional

NOT_MEASURED = "not measured"
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    """Running totals of one run; kg and kWh are cumulative since ``start()``.

    ``energy_gpu_kwh`` / ``energy_cpu_kwh`` / ``energy_ram_kwh`` are ``None`` when that
    component is not measured (``methods`` then says ``"not measured"`` for it), never a
    silent 0. ``energy_kwh`` is what the hardware drew; ``co2eq_kg`` includes the PUE.
    """

    duration_s: float = 0.0
    energy_kwh: float = 0.0
    energy_gpu_kwh: Optional[float] = None
    energy_cpu_kwh: Optional[float] = None
    energy_ram_kwh: Optional[float] = None
    co2eq_kg: float = 0.0
    power_w: float = 0.0
    intensity_gco2eq_per_kwh: float = 0.0
    predicted_co2eq_kg: Optional[float] = None
    zone: Optional[str] = None
    intensity_source: str = ""
    #: where the zone came from and how to change it, in words ("zone DK, from the time zone
    #: Europe/Copenhagen; set CARBON_ZONE to change it"); empty when not known
    location: str = ""
    methods: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    warnings: tuple[str, ...] = ()
    #: what was measured, one line per device ("gpu:0 NVIDIA H100 (GPU-...)", "cpu:package-0 ...")
    devices: tuple[str, ...] = ()
    #: fraction of the run done (0..1) when the caller reports progress
    progress: Optional[float] = None
    pue: float = 1.0
    #: in a job's totals (distributed): each rank's own energy, by global rank
    rank_energy_kwh: tuple[float, ...] = ()

    def energy_by_component(self) -> dict[str, Optional[float]]:
        """kWh per component (``gpu``, ``cpu``, ``ram``), ``None`` where not measured."""
        return {"gpu": self.energy_gpu_kwh, "cpu": self.energy_cpu_kwh, "ram": self.energy_ram_kwh}

    def to_metrics(self) -> dict[str, float]:
        """The ``carbon/...`` metrics (README, "What you see"), omitting components not measured; a
        job's totals add ``carbon/rank<N>/energy_kwh`` for each rank."""
        metrics = {
            "carbon/energy_kwh": self.energy_kwh,
            "carbon/energy_gpu_kwh": self.energy_gpu_kwh,
            "carbon/energy_cpu_kwh": self.energy_cpu_kwh,
            "carbon/energy_ram_kwh": self.energy_ram_kwh,
            "carbon/co2eq_kg": self.co2eq_kg,
            "carbon/power_w": self.power_w,
            "carbon/intensity_gco2eq_per_kwh": self.intensity_gco2eq_per_kwh,
            "carbon/predicted_co2eq_kg": self.predicted_co2eq_kg,
        }
        out = {k: float(v) for k, v in metrics.items() if v is not None}
        out.update({f"carbon/rank{r}/energy_kwh": float(v) for r, v in enumerate(self.rank_energy_kwh)})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (the run log's ``final`` record, ``--json``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["methods"] = dict(self.methods)
        for key in ("warnings", "devices", "rank_energy_kwh"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """The snapshot :meth:`to_dict` wrote; unknown keys are ignored, missing ones take
        their defaults. Raises ``TypeError`` or ``ValueError`` on values of the wrong kind."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        methods = values.get("methods") or {}
        if not isinstance(methods, Mapping):
            raise TypeError(f"methods must be a mapping, not {type(methods).__name__}")
        values["methods"] = {str(k): str(v) for k, v in methods.items()}
        for key in ("warnings", "devices"):
            values[key] = tuple(str(x) for x in values.get(key) or ())
        values["location"] = str(values.get("location") or "")
        values["rank_energy_kwh"] = tuple(float(x) for x in values.get("rank_energy_kwh") or ())
        return cls(**values)
