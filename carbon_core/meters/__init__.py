"""Meters: one module per hardware source, each reporting cumulative joules per channel.

``base`` holds the contract. Concrete meters are imported lazily by name (see
``carbon_core.meters.registry``) so that importing the package costs nothing.
"""

from carbon_core.meters.base import COMPONENTS, Channel, Component, Meter, MeterUnavailable, Method

__all__ = ["COMPONENTS", "Channel", "Component", "Meter", "MeterUnavailable", "Method"]
