"""Network guard of the fault suite: 127.0.0.1 only, and who touched the network."""

from __future__ import annotations

import socket
import sys
import threading
from typing import Any

_real_getaddrinfo = socket.getaddrinfo

#: host names the guard resolves to 127.0.0.1 while ``NetGuard.dns_ok`` is set
FAKE_HOST = "grid.carbon-test"
UNRESOLVABLE_HOST = "dns-fails.invalid"


class NetGuard:
    """Keeps every test on 127.0.0.1 and records which thread touched the network.

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
        if host in ("127.0.0.1", "localhost", b"127.0.0.1"):
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
