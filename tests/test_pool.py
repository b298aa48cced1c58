"""The worker-death blame rule without processes: WorkerPool.failures() on fake
workers and a fixed clock, the isolation worker on a fake backend, and the
scheduler's bookkeeping in Scheduler.requeue."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import pytest

from scraper.config import CrawlConfig
from scraper.fetcher import IDLE
from scraper.pool import PARSE_GRACE, Failure, WorkerPool, _Slot
from scraper.records import Task
from scraper.scheduler import Scheduler

NOW = 1_000_000.0  # the pool's clock (time.time()) in these tests
TIMEOUT = 10.0
HUNG = NOW - TIMEOUT - PARSE_GRACE - 1  # a parse that began this long ago has hung


class FakeWorker:
    def __init__(self, name: str, tasks: Any, threads: int, wanted: Any) -> None:
        self.name, self.tasks, self.threads, self.wanted = name, tasks, threads, wanted
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def join(self, timeout: float | None = None) -> None:
        pass

    def kill(self) -> None:
        self.alive = False


class FakeResults:
    def open(self, name: str) -> str:
        return name

    def started(self, name: str, sender: Any) -> None:
        pass

    def receive(self, timeout: float) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class FakeBackend:
    """A backend whose workers run nothing: the test says what they hold and whether they live."""

    name = "fake"

    def __init__(self) -> None:
        self.workers: list[FakeWorker] = []

    def JoinableQueue(self) -> queue.Queue:  # noqa: N802 - the Backend protocol
        return queue.Queue()

    def ResultChannel(self) -> FakeResults:  # noqa: N802
        return FakeResults()

    def Array(self, typecode: str, size: int, value: float) -> list[float]:  # noqa: N802
        return [value] * size

    def fetch_threads(self, wanted: int) -> int:
        return wanted

    def start_worker(self, target: Callable[..., None], name: str, tasks: Any, args: tuple,
                     threads: int = 1, wanted: Any = None) -> FakeWorker:  # fmt: skip
        worker = FakeWorker(name, tasks, threads, wanted)
        self.workers.append(worker)
        return worker

    def parent_alive_check(self) -> Callable[[], bool]:
        return lambda: True

    def close_queue(self, q: Any) -> None:
        pass


def new_pool(workers: int = 1, threads: int = 4) -> WorkerPool:
    config = CrawlConfig(workers=workers, concurrency=workers * threads, timeout=TIMEOUT)
    pool = WorkerPool(FakeBackend(), workers, config, ("example.com",))
    pool.start()
    return pool


def hold(slot: _Slot, *held: tuple[int, float]) -> None:
    """The slot's fetch threads hold these (task id, parse start or 0); the rest are idle."""
    for index in range(len(slot.current)):
        slot.current[index], slot.parse_started[index] = held[index] if index < len(held) else (IDLE, 0.0)


def queued(q: queue.Queue) -> list[Any]:
    return [q.get_nowait() for _ in range(q.qsize())]


# -- WorkerPool.failures() --------------------------------------------------------------------


@pytest.mark.parametrize(
    "held, blamed",
    [
        pytest.param([(1, NOW - 1), (2, 0.0), (3, NOW - 2)], (1, 3), id="the parsing tasks"),
        pytest.param([(1, 0.0), (2, 0.0)], (1, 2), id="all it held when none was parsing"),
        pytest.param([(1, NOW - 1)], (1,), id="its one task"),
        pytest.param([], (), id="nothing when it held nothing"),
    ],
)
def test_a_death_is_blamed_on_the_tasks_that_can_have_caused_it(held, blamed):
    pool = new_pool()
    hold(pool.slots[0], *held)
    pool.slots[0].worker.kill()
    assert pool.failures(now=NOW) == [Failure(pool.slots[0].name, blamed, "died")]


def test_a_hang_is_blamed_on_the_parse_that_overran_only():
    pool = new_pool()
    hold(pool.slots[0], (1, HUNG), (2, NOW - 1), (3, 0.0))
    assert pool.failures(now=NOW) == [Failure(pool.slots[0].name, (1,), "hung")]


def test_live_workers_within_their_deadline_are_no_failure():
    pool = new_pool(workers=2)
    hold(pool.slots[0], (1, NOW - 1), (2, 0.0))
    assert pool.failures(now=NOW) == []


# -- the isolation worker ---------------------------------------------------------------------


def test_isolated_tasks_run_one_at_a_time_in_a_worker_of_their_own():
    pool = new_pool(workers=2)
    assert pool.isolation is None  # started only when needed
    pool.isolate(Task(1, "http://example.com/1", attempt=1))
    pool.isolate(Task(2, "http://example.com/2", attempt=1))
    workers = pool.backend.workers
    assert len(workers) == 3  # one isolation worker for both tasks
    isolation = workers[-1]
    assert (isolation.threads, isolation.wanted) == (1, None)  # one fetch thread, never more
    assert isolation.tasks is pool.isolated and pool.isolated is not pool.tasks
    assert [task.id for task in queued(pool.isolated)] == [1, 2]
    assert queued(pool.tasks) == []


def test_a_death_in_the_isolation_worker_is_blamed_on_its_task():
    pool = new_pool()
    pool.isolate(Task(1, "http://example.com/1", attempt=1))
    hold(pool.isolation, (1, 0.0))
    pool.isolation.worker.kill()
    assert pool.failures(now=NOW) == [Failure(pool.isolation.name, (1,), "died")]


def test_a_restart_ends_the_isolation_worker_and_the_next_task_starts_a_new_one():
    pool = new_pool()
    pool.isolate(Task(1, "http://example.com/1", attempt=1))
    old = pool.isolation
    pool.restart()
    assert not old.worker.is_alive()
    assert pool.isolation is None
    pool.isolate(Task(1, "http://example.com/1", attempt=1))
    assert pool.isolation is not old and pool.isolation.worker.is_alive()


def test_stop_sends_each_queue_a_sentinel_per_live_worker():
    pool = new_pool(workers=2)
    pool.isolate(Task(1, "http://example.com/1", attempt=1))
    queued(pool.isolated)  # the isolation worker took its task
    pool._send_sentinels()
    assert queued(pool.tasks) == [None, None]
    assert queued(pool.isolated) == [None]


# -- Scheduler.requeue ------------------------------------------------------------------------


class Requeued:
    """A scheduler with tasks in flight, requeued after a restart: what went where."""

    def __init__(self, *in_flight: Task) -> None:
        self.scheduler = Scheduler(CrawlConfig(workers=1), queue.Queue(), ("example.com",))
        self.scheduler.in_flight = {task.id: task for task in in_flight}

    def after(self, blamed: set[int]) -> tuple[list[Task], list[Task], list[Task]]:
        """(put on the shared queue, isolated, returned as failed)."""
        shared: queue.Queue = queue.Queue()
        isolated: list[Task] = []
        failed = self.scheduler.requeue(shared, blamed, isolated.append)
        assert self.scheduler.tasks is shared
        return queued(shared), isolated, failed


def task(task_id: int, attempt: int = 0) -> Task:
    return Task(task_id, f"http://example.com/{task_id}", attempt=attempt)


def test_blamed_tasks_are_retried_alone_and_the_others_as_before():
    requeued = Requeued(task(1), task(2), task(3))
    shared, isolated, failed = requeued.after(blamed={1, 2})
    assert shared == [task(3)]
    assert isolated == [task(1, attempt=1), task(2, attempt=1)]
    assert failed == []
    assert requeued.scheduler.in_flight[1].attempt == 1  # still in flight, retried once


def test_a_retried_task_blamed_again_is_returned_as_failed_and_not_requeued():
    requeued = Requeued(task(1, attempt=1), task(2))
    shared, isolated, failed = requeued.after(blamed={1})
    assert (shared, isolated, failed) == ([task(2)], [], [task(1, attempt=1)])
    assert 1 in requeued.scheduler.in_flight  # until the crawl records it


def test_a_retried_task_not_blamed_stays_isolated():
    # Its isolation worker was killed by a restart for another worker's death.
    shared, isolated, failed = Requeued(task(1, attempt=1), task(2)).after(blamed={2})
    assert (shared, isolated, failed) == ([], [task(1, attempt=1), task(2, attempt=1)], [])


def test_only_the_page_that_kills_its_worker_alone_fails():
    """A poison page parsing beside an innocent one, then each alone in the isolation worker."""
    requeued = Requeued(task(1), task(2))  # 1 innocent, 2 poison
    assert requeued.after(blamed={1, 2}) == ([], [task(1, attempt=1), task(2, attempt=1)], [])
    requeued.scheduler.in_flight.pop(1)  # the innocent page's result came back
    assert requeued.after(blamed={2}) == ([], [], [task(2, attempt=1)])
