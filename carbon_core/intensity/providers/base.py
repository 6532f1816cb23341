"""The one interface every live provider implements, and the error it raises."""

from __future__ import annotations

import threading
from typing import Protocol

from carbon_core.intensity.values import Intensity


class ProviderError(Exception):
    """A live look-up that did not give a usable figure.

    ``kind`` is a short stable tag (``dns``, ``connection``, ``timeout``, ``auth``,
    ``not-found``, ``rate-limited``, ``server``, ``http``, ``redirect``, ``too-large``,
    ``shape``, ``value``, ``cancelled``) used to de-duplicate warnings. ``message`` is
    already free of secrets. ``retry_after`` is the server's ``Retry-After`` in seconds.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ProviderError({self.kind!r}, {self.message!r})"


class Provider(Protocol):
    """A live source of grid carbon intensity for one or more zones."""

    #: short name used in sources and warning keys, e.g. ``electricitymaps``
    name: str
    #: human name for messages, e.g. ``Electricity Maps``
    label: str

    def fetch(self, zone: str, stop: threading.Event | None = None) -> Intensity:
        """The current figure for ``zone``; raises :class:`ProviderError` on any failure.

        Blocking (network); called only from the refresher thread. ``stop`` cuts retries
        and back-off waits short.
        """
        ...

    def close(self) -> None:
        """Release the HTTP session; idempotent."""
        ...
