"""Ctrl-C and SIGTERM on the command line: the first stops the running crawl
(its pages in flight finish) and starts no other; the second stops at once.

The handler only records the signal and asks the crawl to stop. A handler
that raised KeyboardInterrupt could lose it: Python prints and forgets an
exception raised in a `__del__`, a weakref callback or a finalizer, and a
demo of six crawls would then run on to its end and exit 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any, Protocol

from .errors import CrawlInterrupted

log = logging.getLogger("scraper")

STOPPING: dict[int, str] = {
    signal.SIGINT: "stopping: finishing the pages in flight (press Ctrl-C again to quit now)",
    signal.SIGTERM: "terminated: finishing the pages in flight (a second SIGTERM quits now)",
}
# 128 + the signal number, as shells report it
EXIT_STATUS: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stoppable(Protocol):
    def stop(self) -> None: ...


class Interrupts:
    """The signals received, and the crawl the first one stops."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._running: Stoppable | None = None

    @property
    def exit_status(self) -> int | None:
        """130 or 143 once a signal was received, else None."""
        return EXIT_STATUS[self.received[0]] if self.received else None

    @contextlib.contextmanager
    def running(self, crawl: Stoppable) -> Iterator[None]:
        """While `crawl` runs, a first signal stops it (one received before it started, too)."""
        self._running = crawl
        if self.received:
            crawl.stop()
        try:
            yield
        finally:
            self._running = None

    def handle(self, signum: int, frame: Any = None) -> None:
        self.received.append(signum)
        if len(self.received) == 2:
            raise CrawlInterrupted(signum)
        if len(self.received) == 1:
            log.warning(STOPPING[signum])
            if self._running is not None:
                self._running.stop()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Interrupts]:
    """Interrupts handled for the duration, the previous handlers restored after."""
    interrupts = Interrupts()
    previous = {sig: signal.signal(sig, interrupts.handle) for sig in EXIT_STATUS}
    try:
        yield interrupts
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
