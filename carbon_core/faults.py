"""One place where run-time faults are reported: logged once, kept for the snapshot.

Every part of the tracker (meters, intensity providers, the run log) reports a fault
through a :class:`FaultLog`. The first report under a key is logged on the
``carbon_core`` logger and kept in ``warnings``; later reports under the same key are
dropped, so a fault that repeats every interval costs one line, not thousands.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("carbon_core")


class FaultLog:
    """Thread-safe, de-duplicated list of warnings for one run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._messages: list[str] = []

    def warn(self, key: str, message: str, level: int = logging.WARNING) -> bool:
        """Record ``message`` once per ``key``; return True when it was new."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            self._messages.append(message)
        logger.log(level, "%s", message)
        return True

    def copy(self) -> FaultLog:
        """A new log holding the warnings so far (a run starts from its tracker's setup ones)."""
        new = FaultLog()
        with self._lock:
            new._seen, new._messages = set(self._seen), list(self._messages)
        return new

    @property
    def messages(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._messages)

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)
