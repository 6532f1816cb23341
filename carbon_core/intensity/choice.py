"""Which provider answers for a grid zone: one ordered rule for live figures and forecasts.

- a UK zone: the UK Carbon Intensity API (for live figures with an Electricity Maps token,
  only the regional zones ``GB-1`` .. ``GB-17``, which Electricity Maps does not have;
  forecasts always come from the UK API, which publishes 48 hours of them for every UK zone);
- with an Electricity Maps token: Electricity Maps, any zone;
- without one: Energi Data Service for ``DK-DK1`` / ``DK-DK2``; RTE's éCO2mix for ``FR``
  (live figures only: it publishes no CO2 forecast); Energy-Charts for the European
  countries it covers.

Providers are imported only when one is chosen (importing this module imports none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    from carbon_core.intensity.providers.base import HttpProvider


class LookupConfig(Protocol):
    """The settings a look-up reads (:class:`carbon_core.config.Config` has them all)."""

    @property
    def electricitymaps_token(self) -> Optional[str]: ...
    @property
    def electricitymaps_url(self) -> Optional[str]: ...
    @property
    def uk_url(self) -> Optional[str]: ...
    @property
    def energidataservice_url(self) -> Optional[str]: ...
    @property
    def energycharts_url(self) -> Optional[str]: ...
    @property
    def eco2mix_url(self) -> Optional[str]: ...
    @property
    def timeout_s(self) -> float: ...


def provider_for(gz: str, config: LookupConfig, *, forecast: bool) -> Optional[tuple[HttpProvider, str]]:
    """The provider for grid zone ``gz`` and the zone key to ask it for, or None when no
    provider serves it (``forecast``: one that publishes forecasts)."""
    from carbon_core.intensity.providers import eco2mix
    from carbon_core.intensity.providers import electricitymaps as em
    from carbon_core.intensity.providers import energidataservice as eds
    from carbon_core.intensity.providers import energycharts as ec
    from carbon_core.intensity.providers import uk_carbon_intensity as uk

    token, timeout_s = config.electricitymaps_token, config.timeout_s
    if uk.covers(gz) and (forecast or token is None or uk.region_id(gz) is not None):
        return uk.UkCarbonIntensity(base_url=config.uk_url, timeout_s=timeout_s), gz.upper()
    if token is not None:
        return em.ElectricityMaps(token, base_url=config.electricitymaps_url, timeout_s=timeout_s), gz
    if eds.covers(gz):
        return eds.EnergiDataService(base_url=config.energidataservice_url, timeout_s=timeout_s), gz.upper()
    if not forecast and eco2mix.covers(gz):
        return eco2mix.Eco2mix(base_url=config.eco2mix_url, timeout_s=timeout_s), gz.upper()
    if ec.covers(gz):
        return ec.EnergyCharts(base_url=config.energycharts_url, timeout_s=timeout_s), gz.upper()
    return None
