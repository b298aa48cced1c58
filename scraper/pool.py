"""Worker lifecycle: start N fetchers, watch them, restart them, stop them all.

The pool owns the task queue and the result channel it hands its workers.
A worker that dies may have held the task queue's lock (an idle worker waits
inside get() holding it), so after a death the pool does what CPython's
ProcessPoolExecutor does with a broken pool, but keeps going: it kills the
other workers, abandons the queues and starts a fresh set. The crawl then puts
every task still in flight on the new queue.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

from .backend import Backend, Worker
from .config import CrawlConfig
from .fetcher import IDLE, worker_main

log = logging.getLogger(__name__)

JOIN_POLL = 0.01  # seconds between liveness checks while stopping
DISCARD_WAIT = 0.05  # seconds to wait for queued tasks still on their way into the queue
# A parse (user callback included) running this much longer than --timeout is hung.
PARSE_GRACE = 5.0


@dataclass
class _Slot:
    name: str
    worker: Worker
    current: Any  # shared, one per fetch thread: id of the task in hand, IDLE when idle
    parse_started: Any  # shared, one per fetch thread: time.time() its parse began, or 0


@dataclass(frozen=True)
class Failure:
    """A worker that died or hung, and the tasks to blame it on."""

    worker: str
    task_ids: tuple[int, ...]
    reason: str


class WorkerPool:
    """N workers of one backend reading `tasks` and sending to `results`."""

    def __init__(
        self, backend: Backend, size: int, config: CrawlConfig, allowed_hosts: tuple[str, ...]
    ) -> None:
        self.backend = backend
        self.size = size
        self.config = config
        self.allowed_hosts = allowed_hosts
        self.slots: list[_Slot] = []
        self._started = 0
        self.threads = backend.fetch_threads(config.threads_per_worker)
        self.wanted = backend.Array("q", 1, 1)  # fetch threads wanted in each worker
        self.tasks = backend.JoinableQueue()
        self.results = backend.ResultChannel()

    def start(self) -> None:
        for _ in range(self.size):
            self.slots.append(self._start_one())

    def _start_one(self) -> _Slot:
        self._started += 1
        name = f"{self.backend.name}-{self._started}"
        current = self.backend.Array("q", self.threads, IDLE)
        parse_started = self.backend.Array("d", self.threads, 0.0)
        sender = self.results.open(name)
        args = (sender, current, parse_started, self.config, self.allowed_hosts,
                self.backend.parent_alive_check())  # fmt: skip
        worker = self.backend.start_worker(worker_main, name, self.tasks, args, self.threads, self.wanted)
        self.results.started(name, sender)
        return _Slot(name, worker, current, parse_started)

    def want(self, threads: int) -> None:
        """Ask each worker to run `threads` fetch threads (they never stop one)."""
        self.wanted[0] = max(1, min(self.threads, threads))

    def failures(self, now: float | None = None) -> list[Failure]:
        """Workers that died (blamed on every task they held) or whose parse hung."""
        now = time.time() if now is None else now
        hung_after = self.config.timeout + PARSE_GRACE
        found = []
        for slot in self.slots:
            # Copy the shared values once: the worker goes on writing them.
            held = [(task_id, started) for task_id, started
                    in zip(list(slot.current), list(slot.parse_started), strict=True)
                    if task_id != IDLE]  # fmt: skip
            if not slot.worker.is_alive():
                # A crash while parsing (a segfault in a C extension) is the parsing
                # page's fault; any other death (SIGKILL, OOM) is blamed on all it held.
                parsing = tuple(task_id for task_id, started in held if started)
                found.append(Failure(slot.name, parsing or tuple(t for t, _ in held), "died"))
                continue
            hung = tuple(task_id for task_id, started in held if started and now - started > hung_after)
            if hung:
                found.append(Failure(slot.name, hung, "hung"))
        return found

    def restart(self) -> None:
        """Kill every worker, abandon the queues, start a fresh set on new ones."""
        self._stop_now()
        self.backend.close_queue(self.tasks)
        self.results.close()
        self.tasks = self.backend.JoinableQueue()
        self.results = self.backend.ResultChannel()
        self.slots = [self._start_one() for _ in range(self.size)]

    def _send_sentinels(self) -> None:
        # Count first: a worker may take an early sentinel and exit before we
        # would have looked at it, and then one sentinel too few would be sent.
        # One per worker: a process ends with all its fetch threads.
        for _ in range(sum(slot.worker.is_alive() for slot in self.slots)):
            self.tasks.put(None)

    def _discard_queued_tasks(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.tasks.get(timeout=DISCARD_WAIT)
                self.tasks.task_done()

    def _stop_now(self) -> None:
        self._discard_queued_tasks()
        self._send_sentinels()  # threads cannot be killed: they stop at a sentinel
        for slot in self.slots:
            slot.worker.kill()
        for slot in self.slots:
            slot.worker.join(1.0)

    def stop(self, deadline: float, discard_queued: bool = False) -> None:
        """Sentinels, then join while draining results until `deadline`, then kill.

        `discard_queued`: the crawl ended early; tasks not started yet are
        dropped, so that the sentinels are not queued behind them.
        """
        if discard_queued:
            self._discard_queued_tasks()
        self._send_sentinels()
        while any(slot.worker.is_alive() for slot in self.slots) and time.monotonic() < deadline:
            # A worker blocked on a full result pipe can only finish if we read.
            # What arrives now is dropped: those tasks were abandoned, and
            # --resume fetches them again, so nothing is lost or written twice.
            self.results.receive(JOIN_POLL)
        for slot in self.slots:
            if slot.worker.is_alive():
                log.warning("worker %s did not stop in time; killing it", slot.name)
                slot.worker.kill()
            slot.worker.join(1.0)

    def close(self) -> None:
        self.backend.close_queue(self.tasks)
        self.results.close()
