"""The one daemon thread per tracker that samples every interval."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Sampler:
    """Calls ``tick()`` every ``interval_s`` on a daemon thread until :meth:`stop`.

    The training thread never waits on it: ``tick`` publishes its results by replacing
    references that readers pick up without locking. An exception in ``tick`` is passed to
    ``on_error`` and sampling goes on.
    """

    def __init__(
        self, interval_s: float, tick: Callable[[], None], on_error: Callable[[BaseException], None]
    ) -> None:
        self.interval_s = interval_s
        self._tick = tick
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="carbon-core-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._tick()
            except Exception as exc:  # never let the thread die silently
                self._on_error(exc)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop and join; True when the thread is gone (False if a tick hangs)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout_s)
        return not thread.is_alive()
