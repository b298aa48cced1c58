"""Worker lifecycle: start N fetchers, watch them, restart them, stop them all.

The pool owns the task queue and the result channel it hands its workers.
A worker that dies may have held the task queue's lock (an idle worker waits
inside get() holding it), so after a death the pool does what CPython's
ProcessPoolExecutor does with a broken pool, but keeps going: it kills the
other workers, abandons the queues and starts a fresh set. The crawl then puts
every task still in flight on the new queue.

Blame. A worker process runs several fetch threads, so when it dies the pool
cannot tell which of its tasks killed it: it names every task that can have
(those that were parsing, since a crash in a C extension happens there; if
none was, all it held). None of them is failed for it: each is retried once,
alone, in the isolation worker, a worker of its own with one fetch thread
that reads its own queue (`isolate()`), so it runs these tasks one at a time.
A death there names exactly one task, its culprit for sure; it is not
retried again (SPEC 7: "its task retried once") and the crawl records it.
So an innocent page that parsed beside a crashing one is never recorded
`worker_died`, and a task is blamed at most twice, so a page that kills its
worker every time costs two restarts and the crawl ends. A hung parse is
named the same way (one per hung fetch thread) and takes the same path. The
isolation worker starts with its first task and is killed and abandoned
like the others at a restart (its task, not blamed then, goes back to it).
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
from .records import Task

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
    """A worker that died or hung, and the tasks that can have caused it."""

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
        # The isolation worker and its own task queue, from the first isolate() on.
        self.isolation: _Slot | None = None
        self.isolated: Any = None

    def start(self) -> None:
        for _ in range(self.size):
            self.slots.append(self._start_one(self.tasks, self.threads, self.wanted))

    def _start_one(self, tasks: Any, threads: int, wanted: Any = None) -> _Slot:
        self._started += 1
        name = f"{self.backend.name}-{self._started}"
        current = self.backend.Array("q", threads, IDLE)
        parse_started = self.backend.Array("d", threads, 0.0)
        sender = self.results.open(name)
        args = (sender, current, parse_started, self.config, self.allowed_hosts,
                self.backend.parent_alive_check())  # fmt: skip
        worker = self.backend.start_worker(worker_main, name, tasks, args, threads, wanted)
        self.results.started(name, sender)
        return _Slot(name, worker, current, parse_started)

    def isolate(self, task: Task) -> None:
        """Run `task` in the isolation worker: alone, after the tasks isolated before it."""
        if self.isolation is None:
            self.isolated = self.backend.JoinableQueue()
            self.isolation = self._start_one(self.isolated, threads=1)
        self.isolated.put(task)

    def _all_slots(self) -> list[_Slot]:
        return self.slots if self.isolation is None else [*self.slots, self.isolation]

    def _queues(self) -> list[tuple[Any, list[_Slot]]]:
        """Each task queue with the workers that read it."""
        if self.isolation is None:
            return [(self.tasks, self.slots)]
        return [(self.tasks, self.slots), (self.isolated, [self.isolation])]

    def want(self, threads: int) -> None:
        """Ask each worker to run `threads` fetch threads (they never stop one)."""
        self.wanted[0] = max(1, min(self.threads, threads))

    def failures(self, now: float | None = None) -> list[Failure]:
        """Workers that died or whose parse hung, with the tasks that can have caused it.

        A death is blamed on the tasks that were parsing, or on every task held
        if none was; a hang on each parse that overran. In the isolation worker
        that is one task at most.
        """
        now = time.time() if now is None else now
        hung_after = self.config.timeout + PARSE_GRACE
        found = []
        for slot in self._all_slots():
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
        """Kill every worker, abandon the queues, start a fresh set on new ones.

        The isolation worker is gone too; the next isolate() starts a new one.
        """
        self._stop_now()
        self.close()
        self.isolation = self.isolated = None
        self.tasks = self.backend.JoinableQueue()
        self.results = self.backend.ResultChannel()
        self.slots = [self._start_one(self.tasks, self.threads, self.wanted) for _ in range(self.size)]

    def _send_sentinels(self) -> None:
        for tasks, slots in self._queues():
            # Count first: a worker may take an early sentinel and exit before we
            # would have looked at it, and then one sentinel too few would be sent.
            # One per worker: a process ends with all its fetch threads.
            for _ in range(sum(slot.worker.is_alive() for slot in slots)):
                tasks.put(None)

    def _discard_queued_tasks(self) -> None:
        for tasks, _ in self._queues():
            with contextlib.suppress(queue.Empty):
                while True:
                    tasks.get(timeout=DISCARD_WAIT)
                    tasks.task_done()

    def _stop_now(self) -> None:
        self._discard_queued_tasks()
        self._send_sentinels()  # threads cannot be killed: they stop at a sentinel
        for slot in self._all_slots():
            slot.worker.kill()
        for slot in self._all_slots():
            slot.worker.join(1.0)

    def stop(self, deadline: float, discard_queued: bool = False) -> None:
        """Sentinels, then join while draining results until `deadline`, then kill.

        `discard_queued`: the crawl ended early; tasks not started yet are
        dropped, so that the sentinels are not queued behind them.
        """
        if discard_queued:
            self._discard_queued_tasks()
        self._send_sentinels()
        while any(slot.worker.is_alive() for slot in self._all_slots()) and time.monotonic() < deadline:
            # A worker blocked on a full result pipe can only finish if we read.
            # What arrives now is dropped: those tasks were abandoned, and
            # --resume fetches them again, so nothing is lost or written twice.
            self.results.receive(JOIN_POLL)
        for slot in self._all_slots():
            if slot.worker.is_alive():
                log.warning("worker %s did not stop in time; killing it", slot.name)
                slot.worker.kill()
            slot.worker.join(1.0)

    def close(self) -> None:
        for tasks, _ in self._queues():
            self.backend.close_queue(tasks)
        self.results.close()
