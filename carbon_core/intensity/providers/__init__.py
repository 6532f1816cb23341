"""Live grid-intensity providers: one small interface (:class:`Provider`), one module each.

Nothing here imports ``requests`` at import time; a provider's HTTP session is created on
its first fetch, on the refresher thread.
"""

from carbon_core.intensity.providers.base import HttpProvider, Provider
from carbon_core.intensity.providers.electricitymaps import ElectricityMaps
from carbon_core.intensity.providers.energidataservice import EnergiDataService
from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.providers.uk_carbon_intensity import UkCarbonIntensity

__all__ = [
    "ElectricityMaps",
    "EnergiDataService",
    "HttpProvider",
    "Provider",
    "ProviderError",
    "UkCarbonIntensity",
]
