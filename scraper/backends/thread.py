"""The thread backend: workers are daemon threads of this process, sharing its GIL.

Every worker is one fetch thread reading one queue.Queue and putting its
results on another; a threading.Event is the stop broadcast. A thread cannot
die mid-message nor be killed: one that failed (its loop raised, or its parse
hangs) is abandoned (it stops at its next look at the broadcast, and what it
sends later is dropped) and a new one takes its place.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping

from ..fetcher import worker_main
from ..records import Result, Task, WorkerSpec
from .base import PREFETCH, Activity, Failure, Reason, Settings, hung_after, hung_failures


class ThreadBackend:
    name = "thread"

    @classmethod
    def from_config(cls, config: Settings) -> ThreadBackend:
        return cls()

    def workers(self, spec: WorkerSpec, count: int) -> ThreadGroup:
        return ThreadGroup(spec, count)


class ThreadGroup:
    def __init__(self, spec: WorkerSpec, count: int) -> None:
        self.spec = spec
        self.count = count
        self._tasks = _QueueTasks()
        self._results = _QueueResults()
        self._stop = threading.Event()
        self._workers: list[_ThreadContext] = []
        self._serial = 0

    @property
    def tasks(self) -> _QueueTasks:
        return self._tasks

    @property
    def results(self) -> _QueueResults:
        return self._results

    def start(self) -> None:
        for _ in range(self.count):
            self._start_one()

    def _start_one(self) -> None:
        self._serial += 1
        context = _ThreadContext(f"thread-{self._serial}", self)
        context.thread = threading.Thread(target=worker_main, args=(context, self.spec),
                                          name=context.name, daemon=True)  # fmt: skip
        context.thread.start()
        self._workers.append(context)

    def delivered(self) -> list[Result]:
        return []  # nothing outlives a crawl here

    def capacity(self) -> int:
        return sum(worker.thread.is_alive() for worker in self._workers) * (1 + PREFETCH)

    def max_concurrency(self) -> int:
        return self.count

    def lost(self, in_flight: Mapping[int, Task]) -> list[Task]:
        return []  # no broker: nothing outlives a worker's death but what recover() sends

    def waited(self) -> float:
        return 0.0  # the workers start with the crawl

    def scale(self, threads: int) -> None:
        """Each worker is one fetch thread already."""

    def activity(self) -> list[Activity]:
        now = time.monotonic()
        return [activity for worker in self._workers if (activity := worker.activity(now)) is not None]

    def failed(self) -> list[Failure]:
        now, found = time.monotonic(), []
        for worker in self._workers:
            held = worker.activity(now)
            if not worker.thread.is_alive():
                found.append(Failure(worker.name, (held.task_id,) if held else (), Reason.DIED))
            elif held is not None:
                found += hung_failures([held], hung_after(self.spec))
        return found

    def recover(self, failures: list[Failure], in_flight: Mapping[int, Task]) -> list[Task]:
        """Abandon the failed threads and start new ones; only their tasks are sent again."""
        failed = {failure.worker for failure in failures}
        for worker in [w for w in self._workers if w.name in failed]:
            worker.abandoned = True
            self._workers.remove(worker)
            self._start_one()
        held = {task_id for failure in failures for task_id in failure.task_ids}
        return [task for task_id, task in in_flight.items() if task_id in held]

    def stop(self, deadline: float, finished: bool = True) -> None:
        """Threads cannot be killed: the broadcast ends them; a hung one stays, a daemon."""
        self._stop.set()
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))


class _QueueTasks:
    """One queue that every worker thread waits on, with a timeout, between looks at
    the stop broadcast. A queue.Queue: SimpleQueue.get(timeout) can wait for ever
    (CPython 3.11) when the thread that the put woke finds its item taken by
    another thread and its timeout spent: it then waits without one for the next
    put, which never comes once the crawl has ended."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Task] = queue.Queue()

    def put(self, task: Task, alone: bool = False) -> None:
        """Threads share one queue: a thread cannot kill the others, so none runs alone."""
        self.queue.put(task)

    def close(self) -> None:
        pass


class _QueueResults:
    """All threads put their results on one queue (a thread cannot die mid-message);
    the crawl's thread alone takes them, so a SimpleQueue is safe here."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Result] = queue.SimpleQueue()

    def receive(self, timeout: float) -> list[Result]:
        received = []
        try:
            received.append(self.queue.get(timeout=timeout))
            while True:
                received.append(self.queue.get_nowait())
        except queue.Empty:
            return received

    def close(self) -> None:
        pass


class _ThreadContext:
    """The WorkerContext of one worker thread; also what the group knows of it."""

    def __init__(self, name: str, group: ThreadGroup) -> None:
        self.name = name
        self.group = group
        self.thread: threading.Thread
        self.abandoned = False
        self.task_id: int | None = None
        self.took_at = 0.0
        self.parsing_since: float | None = None

    def next_task(self, timeout: float) -> Task | None:
        try:
            return self.group.tasks.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, result: Result) -> None:
        if not self.abandoned:  # its task was sent again: this result is late
            self.group.results.queue.put(result)

    def began(self, task: Task) -> None:
        self.task_id, self.took_at = task.id, time.monotonic()

    def parsing(self, active: bool) -> None:
        self.parsing_since = time.monotonic() if active else None

    def done(self, task: Task) -> None:
        self.task_id = None

    def should_stop(self) -> bool:
        return self.abandoned or self.group._stop.is_set()

    def activity(self, now: float) -> Activity | None:
        task_id, took_at, parsing_since = self.task_id, self.took_at, self.parsing_since
        if task_id is None:
            return None
        parsing_for = None if parsing_since is None else now - parsing_since
        return Activity(self.name, task_id, now - took_at, parsing_for)
