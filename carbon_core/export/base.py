"""What every exporter is, and the thread that sends for one (so the sampler never waits)."""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import Optional

from carbon_core.export.figures import Figures


class Exporter(abc.ABC):
    """One way out for the figures. The group (:mod:`~carbon_core.export.group`) calls
    ``start`` when the run starts, ``publish`` on the sampler thread after every interval
    (it must not block: a network call goes to a :class:`Sender`), ``close`` once at stop
    with the final figures. Any of them may raise: the group turns that into one warning."""

    name: str = "exporter"

    def start(self) -> None:  # noqa: B027 (optional hook)
        """Bind, connect lazily, register instruments: whatever must exist before the first interval."""

    @abc.abstractmethod
    def publish(self, figures: Figures) -> None:
        """The figures of the interval just accounted; must return at once."""

    @abc.abstractmethod
    def close(self, figures: Figures, timeout_s: float) -> None:
        """The final figures: send them and release what the exporter holds, within ``timeout_s``."""


class Sender:
    """A daemon thread that sends the latest figures handed to it: :meth:`offer` never waits,
    and figures that arrive while a send is in flight replace each other (only the newest
    is worth sending: every figure is cumulative)."""

    def __init__(
        self, name: str, send: Callable[[Figures], None], on_error: Callable[[BaseException], None]
    ) -> None:
        self._send, self._on_error = send, on_error
        self._cond = threading.Condition()
        self._pending: Optional[Figures] = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"carbon-core-{name}", daemon=True)
        self._thread.start()

    def offer(self, figures: Figures) -> None:
        with self._cond:
            self._pending = figures
            self._cond.notify()

    def close(self, figures: Optional[Figures], timeout_s: float) -> bool:
        """Send ``figures`` last (if given), then end; True when done within ``timeout_s``."""
        with self._cond:
            if figures is not None:
                self._pending = figures
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                figures, self._pending = self._pending, None
                last = self._closing
            if figures is not None:
                try:
                    self._send(figures)
                except Exception as exc:
                    self._on_error(exc)
            if last:
                with self._cond:
                    if self._pending is None:
                        return
