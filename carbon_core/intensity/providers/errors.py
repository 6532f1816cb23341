"""The error every live provider raises for a look-up that gave no usable figure."""

from __future__ import annotations


class ProviderError(Exception):
    """A live look-up that did not give a usable figure.

    ``kind`` is a short stable tag (``dns``, ``connection``, ``timeout``, ``auth``,
    ``not-found``, ``rate-limited``, ``server``, ``http``, ``redirect``, ``too-large``,
    ``shape``, ``value``, ``zone`` (an answer for another zone), ``stale`` (the newest figure
    is hours old), ``cancelled``) used to
    de-duplicate warnings. ``message`` is already free of secrets. ``retry_after`` is the
    server's ``Retry-After`` in seconds.
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
