"""The ``requests`` session under :class:`~carbon_core.intensity.providers.http.HttpClient`:
requests that another thread can cut, and no proxy for a loopback address.

``requests`` timeouts bound each socket operation, not a request: a server that trickles
its headers a byte at a time, each byte within the read timeout, holds a request for as
long as it likes. So every request runs under a :class:`Cut`: the sockets it opens or uses
are recorded (through a connection class of our own, which the session's adapter gives its
connection pools), and :meth:`Cut.cut`, from any thread, shuts them down, which ends a
blocked read at once: at the request's deadline (a timer), or when the client is closed
(``IntensitySource.stop``). Name resolution cannot be cut; connecting is bounded by the
connect timeout.

A base URL on loopback (``127.0.0.0/8``, ``::1``, ``localhost``) never goes through a proxy,
whatever ``http_proxy``, ``HTTPS_PROXY``, ``ALL_PROXY`` say: :func:`proxies_for`.
:func:`is_dns_failure` tells a name that did not resolve from other connection errors.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

#: what ``requests`` is told for a loopback URL: every proxy setting empty ("" is kept by
#: requests where None would be dropped and the environment's proxy used instead)
NO_PROXIES: dict[str, str] = {"http": "", "https": "", "all": ""}

_local = threading.local()  # .cut: the Cut of the request this thread is making


class Cut:
    """The sockets of one request, and why it was cut (``deadline``, ``stopped``) if it was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: list[Any] = []
        self.reason: str | None = None

    def add(self, sock: Any) -> None:
        with self._lock:
            if self.reason is None:
                self._socks.append(sock)
                return
        _shutdown(sock)  # cut already: this one too

    def cut(self, reason: str) -> None:
        """Shut down every socket of the request (idempotent; the first reason stays)."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            socks, self._socks = self._socks, []
        for sock in socks:
            _shutdown(sock)


@contextlib.contextmanager
def watching(cut: Cut) -> Iterator[None]:
    """Record in ``cut`` the sockets this thread's requests use, while in the block."""
    _local.cut = cut
    try:
        yield
    finally:
        _local.cut = None


def _seen(sock: Any) -> Any:
    cut = getattr(_local, "cut", None)
    if cut is not None and sock is not None:
        cut.add(sock)
    return sock


def _shutdown(sock: Any) -> None:
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if isinstance(raw, socket.socket):
        with contextlib.suppress(OSError):
            # the plain socket's shutdown, also under TLS: it wakes a read blocked in another
            # thread, where SSLSocket.shutdown would first try to unwrap
            socket.socket.shutdown(raw, socket.SHUT_RDWR)


def is_loopback(host: str | None) -> bool:
    """``host`` (a URL's hostname) is this machine: localhost, 127.0.0.0/8, ::1."""
    host = (host or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def proxies_for(url: str) -> dict[str, str] | None:
    """The ``proxies`` argument for a request to ``url``: none at all on loopback."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return dict(NO_PROXIES) if is_loopback(host) else None


def is_dns_failure(exc: BaseException) -> bool:
    """Whether a name lookup failed somewhere in ``exc``'s causes."""
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


def new_session(headers: Mapping[str, str]) -> Any:
    """A ``requests.Session`` whose connections report their sockets to :func:`watching`."""
    import requests

    session = requests.Session()
    adapter = _adapter_class()()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"Accept": "application/json"})
    session.headers.update(headers)
    return session


@functools.cache
def _adapter_class() -> type[Any]:
    """Built on first use: ``requests`` and ``urllib3`` are imported only for live look-ups."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _seen(super()._new_conn())  # type: ignore[no-any-return]

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            _seen(self.sock)  # a kept-alive connection: its socket, now in use again
            return super().getresponse(*args, **kwargs)

    class TlsConnection(HTTPSConnection, Connection):  # HTTPSConnection's connect, our two
        pass

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = TlsConnection

    pools = {"http": Pool, "https": TlsPool}

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = dict(pools)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS pools keep their own classes
                manager.pool_classes_by_scheme = dict(pools)
            return manager

    return Adapter
