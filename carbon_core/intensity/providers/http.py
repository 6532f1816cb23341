"""A small JSON-over-HTTP client with the safety every provider needs.

``requests`` is imported here, lazily, the first time a request is made (on the refresher
thread): ``import carbon_core`` must stay fast and offline runs never pay for it.

Per request: connect and read timeouts of ``timeout_s``, and one total deadline of twice
that over the whole request (connect, headers, body: :mod:`._transport` cuts its sockets
when it passes, so a server trickling its headers cannot hold the refresher); a body cap
(:data:`MAX_BODY_BYTES`); no redirects (a custom ``auth-token`` header would follow a
redirect to another host); no proxy for a loopback URL; a bounded retry (:data:`RETRIES`
retries, back-off :data:`BACKOFF_S`) on connection errors, timeouts, 429 and 5xx, honouring
``Retry-After`` up to :data:`MAX_RETRY_AFTER_WAIT_S` within a round (a longer one ends the
round and is passed back so the next round waits, up to :data:`MAX_RETRY_AFTER_S`).
:meth:`HttpClient.close`, from any thread, cuts a request in flight. A server's words reach
a message only as a short excerpt that quotes no secret in any encoding (:mod:`._redact`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from carbon_core.intensity.providers._redact import excerpt, scrub
from carbon_core.intensity.providers._transport import Cut, is_dns_failure, new_session, proxies_for, watching
from carbon_core.intensity.providers.errors import ProviderError

__all__ = ["HttpClient", "ProviderError", "parse_retry_after", "scrub"]

RETRIES = 2
BACKOFF_S: tuple[float, ...] = (0.5, 1.0)
MAX_RETRY_AFTER_WAIT_S = 10.0
MAX_RETRY_AFTER_S = 3600.0
MAX_BODY_BYTES = 1 << 20
_CHUNK = 64 * 1024


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), clamped to
    [0, MAX_RETRY_AFTER_S]; None when absent or unreadable."""
    if not value:
        return None
    import email.utils
    from datetime import timezone

    value = value.strip()
    seconds: float
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        ref = now if now is not None else time.time()
        seconds = when.timestamp() - ref
    if seconds != seconds:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class HttpClient:
    """GET JSON with timeouts, a deadline, retries and scrubbed errors; one session."""

    def __init__(
        self,
        *,
        label: str,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.label = label
        self.timeout_s = timeout_s
        self._headers = dict(headers or {})
        self._secrets = tuple(s for s in secrets if s)
        self._session: Any = None
        self._cuts: set[Cut] = set()  # the requests in flight
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpClient(label={self.label!r}, timeout_s={self.timeout_s})"

    @property
    def deadline_s(self) -> float:
        """The most one request may take, connect to last byte."""
        return 2 * self.timeout_s

    def _get_session(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = new_session(self._headers)  # imports requests: ~50 ms, live only
            return self._session

    def close(self) -> None:
        """Cut any request in flight (from any thread) and release the session; idempotent."""
        with self._lock:
            session, self._session = self._session, None
            cuts = list(self._cuts)
        for cut in cuts:
            cut.cut("stopped")
        if session is not None:
            with contextlib.suppress(Exception):  # closing must never raise
                session.close()

    def get_json(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
    ) -> Any:
        """The decoded JSON body of ``GET url``; raises ProviderError (scrubbed)."""
        attempt = 0
        while True:
            if stop is not None and stop.is_set():
                raise ProviderError("cancelled", f"{self.label}: stopped")
            try:
                return self._once(url, params, stop)
            except ProviderError as err:
                if not err.retryable or attempt >= RETRIES:
                    raise
                wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                if err.retry_after is not None:
                    if err.retry_after > MAX_RETRY_AFTER_WAIT_S:
                        raise
                    wait = max(wait, err.retry_after)
                attempt += 1
                if stop is not None:
                    if stop.wait(wait):
                        raise ProviderError("cancelled", f"{self.label}: stopped") from None
                else:
                    time.sleep(wait)

    def _once(self, url: str, params: Mapping[str, str] | None, stop: threading.Event | None) -> Any:
        """One request under its :class:`Cut`: at the deadline or on close(), it ends."""
        cut = Cut()
        with self._lock:
            self._cuts.add(cut)
        timer = threading.Timer(self.deadline_s, cut.cut, ("deadline",))
        timer.name, timer.daemon = "carbon-core-intensity-deadline", True
        try:
            if stop is not None and stop.is_set():  # stop() sets it, then close() cuts: one of the two
                raise ProviderError("cancelled", f"{self.label}: stopped")
            timer.start()
            with watching(cut):
                return self._exchange(url, params, stop)
        except Exception:  # whatever a cut socket made the client raise
            if cut.reason == "stopped":
                raise ProviderError("cancelled", f"{self.label}: stopped") from None
            if cut.reason == "deadline":
                raise ProviderError(
                    "timeout",
                    f"{self.label}: no complete answer within {self.deadline_s:g} s",
                    retryable=True,
                ) from None
            raise
        finally:
            timer.cancel()
            if timer.is_alive():
                timer.join()  # no thread of ours outlives the request
            with self._lock:
                self._cuts.discard(cut)

    def _exchange(self, url: str, params: Mapping[str, str] | None, stop: threading.Event | None) -> Any:
        import json

        import requests

        session = self._get_session()
        t = self.timeout_s
        try:
            resp = session.get(
                url,
                params=params,
                timeout=(t, t),
                stream=True,
                allow_redirects=False,
                proxies=proxies_for(url),
            )
        except requests.exceptions.Timeout:
            raise ProviderError(
                "timeout", f"{self.label}: no answer within {t:g} s", retryable=True
            ) from None
        except requests.exceptions.ConnectionError as exc:
            if is_dns_failure(exc):
                raise ProviderError(
                    "dns", f"{self.label}: host name could not be resolved", retryable=True
                ) from None
            raise ProviderError(
                "connection",
                f"{self.label}: connection failed ({type(exc).__name__}: "
                f"{excerpt(str(exc), self._secrets, limit=200)})",
                retryable=True,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ProviderError("request", f"{self.label}: request failed ({type(exc).__name__})") from None
        try:
            body = self._read(resp, stop)
            status = int(resp.status_code)
            if status >= 400 or 300 <= status < 400:
                self._raise_status(status, body, resp.headers.get("Retry-After"))
            if status != 200:
                raise ProviderError("http", f"{self.label}: unexpected HTTP {status}")
        finally:
            with contextlib.suppress(Exception):
                resp.close()
        try:
            return json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ProviderError(
                "shape",
                f"{self.label}: the answer is not JSON "
                f"({len(body)} bytes starting {excerpt(body[:4000], self._secrets, limit=40)!r})",
            ) from None

    def _read(self, resp: Any, stop: threading.Event | None) -> bytes:
        """The body, within the size cap (the request's deadline bounds the time).

        Read with ``read1`` (whatever one socket read gives) where urllib3 has it (2.x), so
        the cap and ``stop`` are checked after every read.
        """
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error
        from urllib3.exceptions import TimeoutError as Urllib3Timeout

        chunks: list[bytes] = []
        size = 0
        read1 = getattr(resp.raw, "read1", None)
        pieces = (
            iter(lambda: read1(_CHUNK, decode_content=True), b"")
            if callable(read1)
            else resp.iter_content(_CHUNK)
        )
        try:
            for chunk in pieces:
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise ProviderError(
                        "too-large",
                        f"{self.label}: answer larger than {MAX_BODY_BYTES} bytes, dropped",
                    )
                if stop is not None and stop.is_set():
                    raise ProviderError("cancelled", f"{self.label}: stopped")
                chunks.append(chunk)
        except (requests.exceptions.Timeout, Urllib3Timeout):
            raise ProviderError(
                "timeout", f"{self.label}: answer stalled for {self.timeout_s:g} s", retryable=True
            ) from None
        except (requests.exceptions.RequestException, Urllib3Error, OSError) as exc:
            if any("Timeout" in type(a).__name__ for a in exc.args):
                raise ProviderError(
                    "timeout",
                    f"{self.label}: answer stalled for {self.timeout_s:g} s",
                    retryable=True,
                ) from None
            raise ProviderError(
                "connection",
                f"{self.label}: connection broken while reading ({type(exc).__name__})",
                retryable=True,
            ) from None
        length = resp.headers.get("Content-Length", "")  # urllib3 1.x does not check it
        if length.isdigit() and size < int(length) and "Content-Encoding" not in resp.headers:
            cut_short = f"{self.label}: connection broken while reading (answer cut short)"
            raise ProviderError("connection", cut_short, retryable=True)
        return b"".join(chunks)

    def _raise_status(self, status: int, body: bytes, retry_after: str | None) -> None:
        detail = excerpt(body, self._secrets) if body else ""
        tail = f": {detail}" if detail else ""
        if 300 <= status < 400:
            raise ProviderError("redirect", f"{self.label}: HTTP {status} redirect not followed")
        if status in (401, 403):
            raise ProviderError("auth", f"{self.label}: HTTP {status}, access refused{tail}")
        if status == 404:
            raise ProviderError("not-found", f"{self.label}: HTTP 404, no data{tail}")
        if status == 429:
            ra = parse_retry_after(retry_after)
            when = f" (Retry-After {ra:g} s)" if ra is not None else ""
            raise ProviderError(
                "rate-limited",
                f"{self.label}: HTTP 429, rate limited{when}",
                retryable=True,
                retry_after=ra,
            )
        if status >= 500:
            ra = parse_retry_after(retry_after)
            raise ProviderError(
                "server", f"{self.label}: HTTP {status}{tail}", retryable=True, retry_after=ra
            )
        raise ProviderError("http", f"{self.label}: HTTP {status}{tail}")
