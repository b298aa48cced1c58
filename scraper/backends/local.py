"""Local worker processes, written once: the process backend's workers and the redis
backend's `-w N` and isolation workers (issue 21).

What both need of a process of this machine: start it (its bootstrap ignores
SIGINT/SIGTERM: the parent alone decides when it stops), start the isolation
worker on demand, see which died, replace them, kill some, and stop them all
with a deadline (the broadcast is the backend's; then wait, kill, join). The
backend says how one is launched (`launch(context, isolated)`); this module
says with which start method.

Start methods: the first workers start with the crawl's own (fork is fast).
Replacements and the isolation worker start later, while the crawl's threads
run, and a fork then copies whatever lock one of them held at that moment
(Python 3.12+ warns of it): when the crawl forks, they start from a
forkserver instead (Python 3.14's default on Linux), a process exec'd fresh
that runs no thread of ours, so nothing it forks can inherit a held lock.
A queue handed to such a process must be made in its context (`later`): a
fork context's locks cannot be handed to a forkserver's child.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

WAIT_POLL = 0.02  # seconds between two looks at the processes while stopping
# What the forkserver imports once, so that a worker it forks starts in milliseconds
# instead of importing the fetcher (lxml, requests) again.
PRELOAD = ["scraper.fetcher", "scraper.backends.process", "scraper.backends.redis_worker"]
JOIN = 1.0  # seconds a killed process gets to be reaped


@dataclass
class Local:
    """One local worker process, and what its backend keeps of it (`data`)."""

    name: str
    process: Any
    data: Any = None


# launch(context, isolated) -> the started process: how a backend starts one of its workers.
Launch = Callable[[Any, bool], Local]


def later_context(context: Any) -> Any:
    """The context of processes started while the crawl's threads run: the crawl's
    own, unless it forks; then a forkserver (where the platform has one)."""
    if context.get_start_method() == "fork" and "forkserver" in multiprocessing.get_all_start_methods():
        later = multiprocessing.get_context("forkserver")
        later.set_forkserver_preload(PRELOAD)  # read when the server starts (at the first such process)
        return later
    return context


def run_child(target: Callable[..., None], *args: Any) -> None:
    """A worker process's bootstrap: a Ctrl-C sent to the whole process group must not
    kill a worker in the middle of a task, nor SIGTERM: the parent decides."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    target(*args)


def parent_alive() -> bool:
    """Whether the process that started this one still runs (True in a process no
    multiprocessing parent started, e.g. `scraper worker`)."""
    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


class LocalProcesses:
    """`count` worker processes of one group and, on demand, its isolation worker."""

    def __init__(self, context: Any, count: int, launch: Launch) -> None:
        self.context = context
        self.later = later_context(context)
        self.count = count
        self.launch = launch
        self.workers: list[Local] = []
        self.isolated: Local | None = None
        self.started = False  # the first set started: any later start is a replacement

    def start(self) -> None:
        """The first set, with the crawl's start method (before the crawl's threads run)."""
        context = self.later if self.started else self.context
        self.workers += [self.launch(context, False) for _ in range(self.count)]
        self.started = True

    def isolation(self) -> Local:
        """The isolation worker (one fetch thread, one task at a time), started when missing or dead."""
        if self.isolated is None or not self.isolated.process.is_alive():
            self.isolated = self.launch(self.later, True)
        return self.isolated

    def all(self) -> list[Local]:
        return self.workers if self.isolated is None else [*self.workers, self.isolated]

    def dead(self) -> list[Local]:
        return [local for local in self.all() if not local.process.is_alive()]

    def replace_dead(self) -> None:
        """Each dead worker replaced, and the isolation worker restarted if it died
        (tasks sent again may wait for it)."""
        if self.isolated is not None and not self.isolated.process.is_alive():
            self.isolated = self.launch(self.later, True)
        for index, local in enumerate(self.workers):
            if not local.process.is_alive():
                local.process.join(JOIN)
                self.workers[index] = self.launch(self.later, False)

    def kill(self, chosen: list[Local]) -> None:
        for local in chosen:
            if local.process.is_alive():
                local.process.kill()
        for local in chosen:
            local.process.join(JOIN)

    def stop(self, deadline: float, wait: Callable[[], object] | None = None, warn: bool = True) -> None:
        """Wait for every process to exit until the monotonic `deadline` (the caller
        broadcast the stop; `wait` runs each turn, e.g. to drain their results), kill
        the rest, join all. Never leaves one behind."""
        while any(local.process.is_alive() for local in self.all()) and time.monotonic() < deadline:
            (wait or _pause)()
        late = [local for local in self.all() if local.process.is_alive()]
        for local in late if warn else ():
            log.warning("worker %s did not stop in time; killing it", local.name)
        self.kill(self.all())
        self.workers, self.isolated = [], None

    def kill_all(self) -> None:
        """Kill every process at once and forget them (the group starts a fresh set)."""
        self.kill(self.all())
        self.workers, self.isolated = [], None


def _pause() -> None:
    time.sleep(WAIT_POLL)
