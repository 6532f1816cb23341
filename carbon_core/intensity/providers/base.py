"""The one interface every live provider implements, and what the HTTP ones share."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol

from carbon_core.intensity.providers.errors import ProviderError
from carbon_core.intensity.providers.http import HttpClient
from carbon_core.intensity.values import DEFAULT_BASIS, Intensity

__all__ = ["HttpProvider", "Provider", "ProviderError"]


class Provider(Protocol):
    """A live source of grid carbon intensity for one or more zones."""

    @property
    def name(self) -> str:
        """Short name used in sources and warning keys, e.g. ``electricitymaps``."""
        ...

    @property
    def label(self) -> str:
        """Human name for messages, e.g. ``Electricity Maps``."""
        ...

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        """The current figure for ``zone``; raises :class:`ProviderError` on any failure.

        Blocking (network); called only from the refresher thread. ``stop`` cuts retries
        and back-off waits short.
        """
        ...

    def close(self) -> None:
        """Cut a look-up in flight and release the HTTP session; idempotent, and safe from
        another thread (``IntensitySource.stop`` calls it while ``fetch`` may be blocked)."""
        ...


class HttpProvider:
    """A provider behind one JSON-over-HTTP API: its names, base URL, client and close()."""

    name: ClassVar[str]
    label: ClassVar[str]
    default_url: ClassVar[str]
    #: the basis of its figures; one other than life cycle ends their source (``:direct``)
    basis: ClassVar[str] = DEFAULT_BASIS

    def source(self, zone: str) -> str:
        """``name:zone``, and the basis when it is not life cycle: ``energidataservice:DK-DK1:direct``."""
        return f"{self.name}:{zone}" + ("" if self.basis == DEFAULT_BASIS else f":{self.basis}")

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout_s: float = 3.0,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.base_url = (base_url or self.default_url).rstrip("/")
        self._has_token = bool(secrets)
        self._http = HttpClient(label=self.label, timeout_s=timeout_s, headers=headers, secrets=secrets)

    def __repr__(self) -> str:
        token = ", token=***" if self._has_token else ""
        return f"{type(self).__name__}(base_url={self.base_url!r}{token})"

    def close(self) -> None:
        self._http.close()
