"""A small JSON-over-HTTP client with the safety every provider needs.

``requests`` is imported here, lazily, the first time a request is made (on the refresher
thread): ``import carbon_core`` must stay fast and offline runs never pay for it.

Per request: connect and read timeouts of ``timeout_s`` plus a whole-body deadline of
twice that; a body cap (:data:`MAX_BODY_BYTES`); no redirects (a custom ``auth-token``
header would follow a redirect to another host); a bounded retry (:data:`RETRIES`
retries, back-off :data:`BACKOFF_S`) on connection errors, timeouts, 429 and 5xx, honouring
``Retry-After`` up to :data:`MAX_RETRY_AFTER_WAIT_S` within a round (a longer one ends the
round and is passed back so the next round waits, up to :data:`MAX_RETRY_AFTER_S`).
Every message is scrubbed of the secrets the client was given.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from carbon_core.intensity.providers.errors import ProviderError

RETRIES = 2
BACKOFF_S: tuple[float, ...] = (0.5, 1.0)
MAX_RETRY_AFTER_WAIT_S = 10.0
MAX_RETRY_AFTER_S = 3600.0
MAX_BODY_BYTES = 1 << 20
_CHUNK = 64 * 1024


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (raw or URL-encoded) replaced by ``***``."""
    from urllib.parse import quote

    for s in secrets:
        if s:
            for form in {s, quote(s, safe=""), quote(s)}:
                if form:
                    text = text.replace(form, "***")
    return text


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


def _error_text(body: bytes, secrets: Sequence[str] = ()) -> str:
    """A short human text from an error body: JSON ``error``/``message`` or raw text.

    Scrubbed of ``secrets`` before it is shortened: a cut through a secret would leave a
    part of it that no later scrub recognises."""
    import json

    text = scrub(body.decode("utf-8", "replace"), secrets)[:2000]
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            v = data.get(key)
            if isinstance(v, dict):
                v = v.get("message") or v.get("code")
            if isinstance(v, str) and v.strip():
                text = v
                break
    text = scrub(" ".join(text.split()), secrets)
    return text[:160] + ("..." if len(text) > 160 else "")


class HttpClient:
    """GET JSON with timeouts, retries and scrubbed errors; one ``requests.Session``."""

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
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpClient(label={self.label!r}, timeout_s={self.timeout_s})"

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _get_session(self) -> Any:
        with self._lock:
            if self._session is None:
                import requests  # lazy: ~50 ms, only when live

                session = requests.Session()
                session.headers.update({"Accept": "application/json"})
                session.headers.update(self._headers)
                self._session = session
            return self._session

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
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
        import json

        import requests

        session = self._get_session()
        t = self.timeout_s
        try:
            resp = session.get(url, params=params, timeout=(t, t), stream=True, allow_redirects=False)
        except requests.exceptions.Timeout:
            raise ProviderError(
                "timeout", f"{self.label}: no answer within {t:g} s", retryable=True
            ) from None
        except requests.exceptions.ConnectionError as exc:
            text = self._scrub(str(exc))
            if _is_dns(exc):
                raise ProviderError(
                    "dns", f"{self.label}: host name could not be resolved", retryable=True
                ) from None
            raise ProviderError(
                "connection",
                f"{self.label}: connection failed ({type(exc).__name__}: {text[:200]})",
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
        except (ValueError, UnicodeDecodeError):
            raise ProviderError(
                "shape",
                f"{self.label}: the answer is not JSON "
                f"({len(body)} bytes starting {_error_text(body, self._secrets)[:40]!r})",
            ) from None

    def _read(self, resp: Any, stop: threading.Event | None) -> bytes:
        """The body, within the size cap and the whole-body deadline.

        Read with ``read1`` (whatever one socket read gives) where urllib3 has it (2.x), so
        the deadline is checked after every read: a server that trickles a byte at a time,
        each within the socket timeout, cannot hold the refresher for longer than the
        deadline (``iter_content(n)`` would wait for ``n`` bytes, however slowly they came).
        """
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error
        from urllib3.exceptions import TimeoutError as Urllib3Timeout

        deadline = time.monotonic() + 2 * self.timeout_s
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
                if time.monotonic() > deadline:
                    raise ProviderError(
                        "timeout",
                        f"{self.label}: answer not complete within {2 * self.timeout_s:g} s",
                        retryable=True,
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
        return b"".join(chunks)

    def _raise_status(self, status: int, body: bytes, retry_after: str | None) -> None:
        detail = _error_text(body, self._secrets) if body else ""
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


def _is_dns(exc: BaseException) -> bool:
    import socket

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return True
        stack.extend([e.__cause__, e.__context__])
        stack.extend(a for a in e.args if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False
