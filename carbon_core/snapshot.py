"""The value adapters, the run log and the CLI read: running totals at one moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Optional

NOT_MEASURED = "not measured"
J_PER_KWH = 3.6e6
_EMPTY: Mapping[str, str] = MappingProxyType({})
#: the phases every framework marks (README, "Efficiency: per unit and per phase"); a name given
#: to ``Tracker.phase`` adds its own
PHASES = ("train", "validation", "checkpoint", "other")
#: where the energy goes when no phase is open
OTHER = "other"


@dataclass(frozen=True)
class Phase:
    """One phase's share of a run: energy (kWh), emissions (kg, PUE included) and the seconds it
    was the innermost open phase. Each sampler interval's energy is split among the phases by
    the time each was active in it, so the phases add up to the run's totals."""

    energy_kwh: float = 0.0
    co2eq_kg: float = 0.0
    duration_s: float = 0.0

    def plus(self, other: Phase, sign: float = 1.0) -> Phase:
        """This phase with ``other`` added (``sign=-1``: taken away, never below 0)."""
        return Phase(
            max(0.0, self.energy_kwh + sign * other.energy_kwh),
            max(0.0, self.co2eq_kg + sign * other.co2eq_kg),
            max(0.0, self.duration_s + sign * other.duration_s),
        )


def add_phases(a: Mapping[str, Phase], b: Mapping[str, Phase], sign: float = 1.0) -> dict[str, Phase]:
    """Phases by name, ``b``'s added to ``a``'s (``sign=-1``: taken away; phases left at 0 dropped)."""
    out = dict(a)
    for name, phase in b.items():
        out[name] = out.get(name, Phase()).plus(phase, sign)
    return {k: v for k, v in out.items() if sign > 0 or v.energy_kwh > 0 or v.duration_s > 0}


def marked(phases: Mapping[str, Phase]) -> dict[str, Phase]:
    """``phases`` when some phase was marked; none when all the time was ``other`` (a run nobody
    marked has no split: its phase would only repeat the total)."""
    return {} if set(phases) <= {OTHER} else dict(phases)


def split_of(snapshot: Snapshot) -> Mapping[str, Phase]:
    """The snapshot's phases; one without a split is all ``other`` (for adding splits up)."""
    if snapshot.phases or (snapshot.energy_kwh <= 0 and snapshot.co2eq_kg <= 0):
        return snapshot.phases
    return {OTHER: Phase(snapshot.energy_kwh, snapshot.co2eq_kg, snapshot.duration_s)}


def per_unit(total: float, units: Optional[float]) -> Optional[float]:
    """``total / units``; None when there are no units (None or not above 0)."""
    return total / units if units is not None and units > 0 else None


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
    #: what each estimate assumed, one line per estimated component ("CPU: 2 vCPUs of an AMD
    #: EPYC (virtual machine, Zen 3): 1.96 W per busy vCPU ...")
    assumed: tuple[str, ...] = ()
    #: fraction of the run done (0..1) when the caller reports progress
    progress: Optional[float] = None
    pue: float = 1.0
    #: in a job's totals (distributed): each rank's own energy, by global rank
    rank_energy_kwh: tuple[float, ...] = ()
    #: the work done so far, counted from the framework or given to ``Tracker.count``/``progress``
    #: (None: never counted); the job's in a job's totals
    samples: Optional[float] = None
    tokens: Optional[float] = None
    #: the run's energy and emissions split by phase (``train``, ``validation``, ...); they add
    #: up to ``energy_kwh`` and ``co2eq_kg``
    phases: Mapping[str, Phase] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def energy_j_per_sample(self) -> Optional[float]:
        """The run's energy (J) over the samples seen so far (None without samples)."""
        return per_unit(self.energy_kwh * J_PER_KWH, self.samples)

    @property
    def co2eq_g_per_sample(self) -> Optional[float]:
        return per_unit(self.co2eq_kg * 1000.0, self.samples)

    @property
    def energy_j_per_token(self) -> Optional[float]:
        """The run's energy (J) over the tokens seen so far (None where tokens are not known)."""
        return per_unit(self.energy_kwh * J_PER_KWH, self.tokens)

    @property
    def co2eq_g_per_token(self) -> Optional[float]:
        return per_unit(self.co2eq_kg * 1000.0, self.tokens)

    def per_unit(self) -> dict[str, float]:
        """The per-unit figures that exist: ``energy_j_per_sample``, ``co2eq_g_per_sample``,
        ``energy_j_per_token``, ``co2eq_g_per_token``."""
        names = ("energy_j_per_sample", "co2eq_g_per_sample", "energy_j_per_token", "co2eq_g_per_token")
        return {n: v for n in names if (v := getattr(self, n)) is not None}

    def energy_by_component(self) -> dict[str, Optional[float]]:
        """kWh per component (``gpu``, ``cpu``, ``ram``), ``None`` where not measured."""
        return {"gpu": self.energy_gpu_kwh, "cpu": self.energy_cpu_kwh, "ram": self.energy_ram_kwh}

    def to_metrics(self) -> dict[str, float]:
        """The ``carbon/...`` metrics (README, "What you see"), omitting components not measured; a
        job's totals add ``carbon/rank<N>/energy_kwh`` for each rank. The per-unit figures
        (``carbon/energy_j_per_sample``, ...) once units are counted, and each phase's energy
        (``carbon/phase/<name>_kwh``)."""
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
        out.update({f"carbon/{k}": float(v) for k, v in self.per_unit().items()})
        out.update({f"carbon/phase/{name}_kwh": float(p.energy_kwh) for name, p in self.phases.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (the run log's ``final`` record, ``--json``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["methods"] = dict(self.methods)
        for key in ("warnings", "devices", "assumed", "rank_energy_kwh"):
            out[key] = list(out[key])
        out["phases"] = {name: asdict(p) for name, p in self.phases.items()}
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
        for key in ("warnings", "devices", "assumed"):
            values[key] = tuple(str(x) for x in values.get(key) or ())
        values["location"] = str(values.get("location") or "")
        values["rank_energy_kwh"] = tuple(float(x) for x in values.get("rank_energy_kwh") or ())
        phases = values.get("phases") or {}
        if not isinstance(phases, Mapping) or not all(isinstance(p, Mapping) for p in phases.values()):
            raise TypeError("phases must be a mapping of name -> {energy_kwh, co2eq_kg, duration_s}")
        values["phases"] = {
            str(name): Phase(**{f: float(p.get(f) or 0.0) for f in ("energy_kwh", "co2eq_kg", "duration_s")})
            for name, p in phases.items()
        }
        return cls(**values)
