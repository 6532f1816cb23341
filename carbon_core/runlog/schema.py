"""The run-log format, ``carbon-core/run-log/1`` (documented in the README, "The run log").

One JSON Lines file per run (and per node); every line is one JSON object with a ``type``:

* ``header``: ``schema``, ``run_id``, ``job_id``, ``started_at`` (ISO 8601 UTC), ``host``,
  ``node_rank``, ``rank``, ``world_size``, ``versions``, ``zone``, ``intensity_source``,
  ``location_source``, ``channels`` (channel -> component and method), ``devices``,
  ``hardware`` (per meter), ``config`` (secrets removed);
* ``interval``: ``t0``, ``t1`` (s since start), ``joules`` (cumulative J per channel at
  ``t1``), ``energy_j``, ``co2eq_g`` (this interval, PUE included), ``intensity``
  (gCO2eq/kWh in force), ``intensity_source``, ``power_w``;
* ``warning``: ``t``, ``message``;
* ``final``: ``ended_at`` and ``snapshot`` (the final :class:`~carbon_core.snapshot.Snapshot`,
  as :meth:`~carbon_core.snapshot.Snapshot.to_dict` writes it).

A reader accepts every ``carbon-core/run-log/<major>[.<minor>]`` of the major it knows.
"""

from __future__ import annotations

SCHEMA_PREFIX = "carbon-core/run-log/"
SUPPORTED_MAJOR = 1
SCHEMA = f"{SCHEMA_PREFIX}{SUPPORTED_MAJOR}"
#: ``started_at`` and ``ended_at``
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
