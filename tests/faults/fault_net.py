"""Network guard of the fault suite: loopback only, and who touched the network; a
recording proxy (:class:`FakeProxy`) to prove that a look-up did not go through one."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_real_getaddrinfo = socket.getaddrinfo

#: host names the guard resolves to 127.0.0.1 while ``NetGuard.dns_ok`` is set
FAKE_HOST = "grid.carbon-test"
UNRESOLVABLE_HOST = "dns-fails.invalid"


class NetGuard:
    """Keeps every test on loopback (127.0.0.1, ::1) and records which thread touched the network.

    ``lookups`` and ``connects`` hold ``(thread name, host or address)``: a name lookup
    through ``socket.getaddrinfo`` (patched) and every ``socket.connect`` (seen through an
    audit hook, so nothing in the client is patched).
    """

    def __init__(self) -> None:
        self.dns_ok = True
        self.lookups: list[tuple[str, Any]] = []
        self.connects: list[tuple[str, Any]] = []
        self.recording = False

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        if self.recording:
            self.lookups.append((threading.current_thread().name, host))
        if host in ("127.0.0.1", "localhost", "::1", b"127.0.0.1", b"::1"):
            return _real_getaddrinfo(host, *args, **kwargs)
        if host == FAKE_HOST and self.dns_ok:
            return _real_getaddrinfo("127.0.0.1", *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test: no resolving {host!r}")

    def threads(self) -> set[str]:
        return {name for name, _ in self.lookups + self.connects}


_current: list[NetGuard] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _current and _current[0].recording:
        _current[0].connects.append((threading.current_thread().name, args[1]))


sys.addaudithook(_audit)  # an audit hook cannot be removed: it only records while a test asks


class FakeProxy:
    """An HTTP proxy on 127.0.0.1 that forwards nothing: it records every request it gets
    (``(method, target, headers)``; ``CONNECT host:port`` for an https URL) and answers
    502. ``url`` is what goes into ``http_proxy`` and the like."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _record(self) -> None:
                proxy.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_error(502, "a test proxy: nothing is forwarded")

            do_GET = do_CONNECT = do_POST = do_HEAD = _record

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
