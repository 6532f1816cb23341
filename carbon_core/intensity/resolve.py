"""From the configuration to an :class:`IntensitySource`: zone, table, world average, provider.

:func:`resolve_source` is cheap (no network, no thread, no ``requests`` import). It parses
nothing: :mod:`carbon_core.config` has checked every value and kept where it came from, so
an error here names the parameter or the ``CARBON_*`` variable that set it.

Which live provider serves which zone (only with ``live`` or an Electricity Maps token):

- a UK regional zone (``GB-1`` .. ``GB-17``, ``GB-ENG``/``GB-SCT``/``GB-WLS``): the UK
  Carbon Intensity API (Electricity Maps has no such zones);
- with an Electricity Maps token: Electricity Maps, any zone (a cloud region is sent as the
  Electricity Maps zone that supplies it: ``aws:us-east-1`` as ``US-MIDA-PJM``,
  ``northamerica-northeast1`` as ``CA-QC``). A token turns live look-ups on by itself. A US
  state (``US-VA``, an eGRID key) is not an Electricity Maps zone: name the grid region;
- without a token: the UK Carbon Intensity API for ``GB``, Energi Data Service for
  ``DK-DK1`` / ``DK-DK2``, RTE's éCO2mix for ``FR``, Energy-Charts for the other European
  countries it publishes (``DE``, ``AT``, ``PL``, ... :data:`~.providers.energycharts.COUNTRIES`);
  any other zone gets one warning and the table figure.

Unknown zones: a zone given (argument or ``CARBON_ZONE``) that neither a table nor a parent
knows is a ``ValueError``, unless a token is given (Electricity Maps knows zones the tables
do not: the world average stands in until it answers, with a warning) or a fixed intensity
is given (the zone is then only a label). A zone found by detection is never an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional, Protocol, cast

from carbon_core.faults import FaultLog
from carbon_core.intensity import tables
from carbon_core.intensity.choice import LookupConfig, provider_for
from carbon_core.intensity.location import describe, detect_zone
from carbon_core.intensity.source import IntensitySource
from carbon_core.intensity.values import WORLD_AVERAGE_GCO2_PER_KWH, Intensity

if TYPE_CHECKING:
    from carbon_core.intensity.providers.base import Provider

logger = logging.getLogger("carbon_core.intensity")


class SourceConfig(LookupConfig, Protocol):
    """What :func:`resolve_source` reads; :class:`carbon_core.config.Config` has it all."""

    @property
    def zone(self) -> Optional[str]: ...
    @property
    def intensity(self) -> Optional[float]: ...
    @property
    def live(self) -> bool: ...
    @property
    def refresh_s(self) -> float: ...
    def named(self, name: str) -> str:
        """``name``, or the ``CARBON_*`` variable its value came from."""
        ...


def resolve_source(
    config: SourceConfig, faults: FaultLog, env: Mapping[str, str] | None = None
) -> IntensitySource:
    """The intensity source ``config`` asks for. ``env`` (default ``os.environ``) is read
    only to detect the zone when none is configured (cloud region, time zone)."""
    fixed_value = config.intensity
    if config.zone is not None:
        zone: str | None = tables.canonical(config.zone)
        param: str | None = config.named("zone")
        how = "argument" if param == "zone" else f"env:{param}"
    else:
        zone, how = detect_zone(os.environ if env is None else env)
        param = None
    table = _table(zone, param, config, faults)
    fixed = Intensity(fixed_value, "fixed", zone) if fixed_value is not None else None
    provider: Provider | None = None
    provider_zone: str | None = None
    if fixed is None:
        provider, provider_zone = _provider(zone, config, table, faults)
    elif config.live or config.electricitymaps_token is not None:
        logger.info("carbon_core: a fixed intensity is set; live look-ups are not used")
    return IntensitySource(
        zone=zone,
        location_source=how,
        table=table,
        faults=faults,
        fixed=fixed,
        provider=provider,
        provider_zone=provider_zone,
        refresh_s=config.refresh_s,
        location=describe(zone, how),
    )


def _table(zone: str | None, param: str | None, config: SourceConfig, faults: FaultLog) -> Intensity:
    """The zone's table figure, else the world average (with a warning unless a fixed
    intensity makes it moot); a configured zone nobody knows is an error (see above)."""
    quiet = config.intensity is not None
    if zone is not None:
        found = tables.lookup(zone)
        if found is not None:
            return found
        if param is not None and config.electricitymaps_token is None and not quiet:
            raise ValueError(
                f"{param}={config.zone!r} is not a zone that any bundled table (or a parent zone) "
                "knows. Use a country code ('DE'), a grid region ('US-MIDA-PJM', 'CA-QC', "
                "'SE-SE3'), a US state ('US-CA'), a cloud region ('europe-west1', 'eu-west-1'); "
                "`carbon-core zones` lists them. Or give a fixed intensity=, or an "
                "Electricity Maps token (CARBON_ELECTRICITYMAPS_TOKEN) for its zones."
            )
        if not quiet:
            faults.warn(
                f"intensity:table:unknown-zone:{zone}",
                f"carbon_core: no bundled figure for zone {zone}; the world average "
                f"({WORLD_AVERAGE_GCO2_PER_KWH:g} gCO2eq/kWh) stands in until a live figure "
                "arrives",
            )
        return Intensity(WORLD_AVERAGE_GCO2_PER_KWH, "world-average", zone)
    if not quiet:
        faults.warn(
            "intensity:location:unknown",
            "carbon_core: could not tell where this machine is (no zone argument, no "
            "CARBON_ZONE, no cloud region in the environment, no system time zone "
            f"with a country); using the world average, {WORLD_AVERAGE_GCO2_PER_KWH:g} "
            "gCO2eq/kWh (Ember, 2023), which can be off several-fold. Set the zone: "
            "Tracker(zone='DE') or CARBON_ZONE=DE (`carbon-core zones` lists them).",
        )
    return Intensity(WORLD_AVERAGE_GCO2_PER_KWH, "world-average", None)


def _provider(
    zone: str | None, config: SourceConfig, table: Intensity, faults: FaultLog
) -> tuple[Provider | None, str | None]:
    """The live provider for ``zone`` and the zone key to ask it for (see above)."""
    token = config.electricitymaps_token
    if not config.live and token is None:
        return None, None
    gz = tables.grid_zone(zone) if zone else None
    if gz is None:
        faults.warn(
            "intensity:live:no-zone",
            "carbon_core: live intensity needs a zone and none was found; "
            "set zone= or CARBON_ZONE. Using the world average.",
        )
        return None, None
    found = provider_for(gz, config, forecast=False)
    if found is not None:  # each provider it picks implements ``fetch``
        return cast("Provider", found[0]), found[1]
    from carbon_core.intensity.providers import energycharts as ec

    faults.warn(
        f"intensity:live:no-provider:{gz}",
        f"carbon_core: live=True, but no provider without a token covers zone {gz} "
        "(the UK Carbon Intensity API covers GB, Energi Data Service DK-DK1 and DK-DK2, RTE "
        f"eCO2mix FR, Energy-Charts {', '.join(sorted(ec.COUNTRIES))}); "
        f"using {table.source} ({table.gco2eq_per_kwh:g} gCO2eq/kWh). "
        "Set CARBON_ELECTRICITYMAPS_TOKEN for live figures in any zone.",
    )
    return None, None
