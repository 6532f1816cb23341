"""Distributed jobs: every GPU measured once, every host once, totals for the whole job.

Roles come from the environment the launchers set: ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``/``NODE_RANK`` (torchrun, Lightning,
Accelerate), else ``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``,
``SLURM_NTASKS_PER_NODE``, ``SLURM_NODEID`` (srun). Each process measures the GPUs it
uses; host-wide meters (CPU, RAM) run in local rank 0 of each node only, and there the
CPU/RAM estimates cover every training process of the node (see :func:`node_processes`).

Job totals use the engine's own collective: one ``torch.distributed.all_reduce`` of a
small tensor on the default process group that already exists (never a new group, never a
side channel), called by the adapters at logging time on every rank at the same step.
Without ``torch.distributed`` initialised nothing changes, and this module never imports
torch unless the program already did.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from carbon_core.budget import MIN_INTERVALS, forecast
from carbon_core.meters.processes import ProcessSelector
from carbon_core.snapshot import OTHER, PHASES, Phase, Snapshot

_SUMMED: tuple[str, ...] = ("energy_kwh", "energy_gpu_kwh", "energy_cpu_kwh", "energy_ram_kwh", "co2eq_kg")
_SUMMED += ("power_w", "samples", "tokens")
#: slots for phases named in user code: a phase is summed in the slot its name's CRC-32 picks
PHASE_SLOTS = 16
_FIXED = 4  # per standard phase: kWh, kg, seconds, ranks that have it
_HASHED = 5  # per slot: the same, and the sum of the names' CRC-32 (to check one name filled it)


def _crc(name: str) -> int:
    return zlib.crc32(name.encode())


def phase_vector(phases: Mapping[str, Phase]) -> list[float]:
    """This rank's phases as a fixed-length vector for the all-reduce: the standard phases at
    their places, the others in :data:`PHASE_SLOTS` slots by the CRC-32 of their names."""
    out: list[float] = []
    for name in PHASES:
        p = phases.get(name)
        out += [p.energy_kwh, p.co2eq_kg, p.duration_s, 1.0] if p is not None else [0.0] * _FIXED
    slots = [0.0] * (_HASHED * PHASE_SLOTS)
    for name, p in phases.items():
        if name not in PHASES:
            code = _crc(name)
            i = _HASHED * (code % PHASE_SLOTS)
            for k, v in enumerate((p.energy_kwh, p.co2eq_kg, p.duration_s, 1.0, float(code))):
                slots[i + k] += v
    return out + slots


def phases_of(vector: list[float], names: Iterable[str]) -> dict[str, Phase]:
    """The job's phases from the summed :func:`phase_vector`: a phase's energy and emissions
    summed over the ranks, its seconds their mean over the ranks that have it. A slot is named
    by the one of ``names`` (this rank's) whose CRC-32 filled it on every rank that has it; a
    slot this rank cannot name (a phase only other ranks have, two names in one slot) counts
    in ``other``, so the job's phases still add up to its total."""
    out: dict[str, Phase] = {}
    for k, name in enumerate(PHASES):
        kwh, kg, seconds, ranks = vector[_FIXED * k : _FIXED * (k + 1)]
        if ranks > 0:
            out[name] = Phase(kwh, kg, seconds / ranks)
    mine = {_crc(n) % PHASE_SLOTS: n for n in names if n not in PHASES}
    base = _FIXED * len(PHASES)
    for slot in range(PHASE_SLOTS):
        kwh, kg, seconds, ranks, codes = vector[base + _HASHED * slot : base + _HASHED * (slot + 1)]
        if ranks <= 0:
            continue
        named = mine.get(slot)
        if named is not None and codes == ranks * _crc(named):
            out[named] = Phase(kwh, kg, seconds / ranks)
        else:
            out[OTHER] = out.get(OTHER, Phase()).plus(Phase(kwh, kg, 0.0))
    return out


@dataclass(frozen=True)
class Role:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0

    @property
    def host_meters(self) -> bool:
        """Whether this process measures the host-wide components (CPU, RAM) of its node."""
        return self.local_rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name, "").split("(")[0].split(",")[0].strip()  # SLURM: "4(x2)"
        if value.isdigit():
            return int(value)
    return None


def role_from_env(env: Mapping[str, str] | None = None) -> Role:
    """This process's role; an initialised ``torch.distributed`` group is authoritative for
    rank and world size (Lightning's launcher sets no ``RANK``)."""
    env = os.environ if env is None else env
    rank = _int(env, "RANK", "SLURM_PROCID") or 0
    world = _int(env, "WORLD_SIZE", "SLURM_NTASKS") or 1
    dist = _dist() if env is os.environ else None
    if dist is not None:
        rank, world = int(dist.get_rank()), int(dist.get_world_size())
    local_rank = _int(env, "LOCAL_RANK", "SLURM_LOCALID")
    local_world = _int(env, "LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE")
    node = _int(env, "GROUP_RANK", "NODE_RANK", "SLURM_NODEID") or 0
    if local_rank is None:
        local_rank = rank if world > 1 and local_world in (None, world) else 0
    return Role(rank, local_rank, world, local_world or (world if node == 0 else 1), node)


def job_id(env: Mapping[str, str] | None = None) -> str | None:
    """An id every process of one job shares (for merging the nodes' run logs), if any."""
    env = os.environ if env is None else env
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID"):
        if env.get(name) and env[name] != "none":
            return f"{name.lower()}:{env[name]}"
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        return f"master:{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    return None


def node_processes(role: Role) -> ProcessSelector | None:
    """The processes the host estimates of this node cover, or None for the default tree.

    A launcher (torchrun's agent, slurmstepd) starts the ranks of a node as siblings: then
    the parent's tree holds them all. Lightning's own launcher starts the other ranks as
    children of rank 0, which the default tree (this process and its descendants) covers.
    """
    if role.local_world_size <= 1 or not role.host_meters:
        return None
    import psutil

    me = psutil.Process()
    try:
        parent = me.parent()
        siblings = [p for p in (parent.children() if parent else []) if p.pid != me.pid]
        if not any("LOCAL_RANK" in _environ(p) or "SLURM_LOCALID" in _environ(p) for p in siblings):
            return None
    except psutil.Error:
        return None
    from carbon_core.meters.processes import process_tree

    return process_tree(parent.pid if parent else None)


def _environ(proc: Any) -> dict[str, str]:
    try:
        return dict(proc.environ())
    except Exception:
        return {}


def _dist() -> Any:
    """torch.distributed when the program imported it and initialised a group, else None."""
    if "torch.distributed" not in sys.modules:
        return None
    dist = sys.modules["torch.distributed"]
    try:
        return dist if dist.is_available() and dist.is_initialized() else None
    except Exception:
        return None


def job_totals(snapshot: Snapshot) -> Snapshot:
    """The job's totals: every rank's energy, power, emissions, samples, tokens and phases
    summed by one all-reduce (which also carries each rank's own energy, for
    ``carbon/rank<N>/energy_kwh``); the per-unit figures follow from the summed totals.

    A collective: every rank must call it at the same point (the adapters do so at logging
    time). Without an initialised process group it returns ``snapshot`` itself. The
    forecast is recomputed from the summed emissions and the ranks' mean progress, and only
    once every rank has one, so every rank gets the same figure and the same decision.
    """
    dist = _dist()
    if dist is None:
        return snapshot
    torch = sys.modules["torch"]  # already imported by the program (the core never imports it)

    values = [getattr(snapshot, k) for k in _SUMMED]
    data = [0.0 if v is None else float(v) for v in values] + [0.0 if v is None else 1.0 for v in values]
    # the forecast's inputs travel too, so every rank computes the same figure (and decision)
    forecasting = snapshot.predicted_co2eq_kg is not None and snapshot.progress is not None
    data += [float(snapshot.progress or 0.0), 1.0 if forecasting else 0.0]
    rank, world = int(dist.get_rank()), int(dist.get_world_size())
    per_rank = [0.0] * world  # each rank's own energy at its index: after the sum, all of them
    per_rank[rank] = float(snapshot.energy_kwh)
    data += per_rank
    data += phase_vector(snapshot.phases)
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    tensor = torch.tensor(data, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    out = tensor.tolist()
    n = len(_SUMMED)
    summed: dict[str, Any] = {k: (out[i] if out[n + i] > 0 else None) for i, k in enumerate(_SUMMED)}
    summed["energy_kwh"] = summed["energy_kwh"] or 0.0
    progress_sum, forecasters = out[2 * n], out[2 * n + 1]
    summed["rank_energy_kwh"] = tuple(out[2 * n + 2 : 2 * n + 2 + world])
    summed["phases"] = phases_of(out[2 * n + 2 + world :], snapshot.phases)
    # a forecast only once every rank has one, from the ranks' mean progress
    summed["predicted_co2eq_kg"] = (
        forecast(summed["co2eq_kg"], progress_sum / world, MIN_INTERVALS) if forecasters >= world else None
    )
    return dataclasses.replace(snapshot, **summed)
