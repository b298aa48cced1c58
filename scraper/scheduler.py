"""The scheduler role: the single owner of the frontier and of the task queue.

It puts tasks on the JoinableQueue (keeping it short, so politeness and
Ctrl-C take effect at once), remembers what is in flight, takes results
back, offers their links one level deeper, and says when the crawl is over:
nothing pending and nothing in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from .config import CrawlConfig
from .frontier import Frontier
from .records import ROBOTS, Result, Task

# Tasks queued beyond one per fetch thread: enough that a worker finishing a
# task finds the next one waiting, few enough that politeness decisions stay
# fresh (the idea of concurrent.futures' EXTRA_QUEUED_CALLS).
EXTRA_QUEUED = 2


class InFlightLimit:
    """How many tasks the scheduler keeps in flight.

    With one fetch thread per worker, or a fixed --concurrency, the limit is
    fixed. Otherwise it starts at one task per worker process and follows two
    measurements per window of results: how busy the worker processes' cores
    are (the CPU their fetch threads used over the CPU they could have used)
    and how many pages per second came back. Cores that wait (on the network)
    ask for more tasks in flight; an increase that did not raise the page
    rate is taken back (something else is the bottleneck: the parent, the
    server, the GIL), and no increase is tried for a while.
    """

    WINDOW = 32  # results between two adjustments...
    WINDOW_SECONDS = 0.2  # ...or this long, once MIN_WINDOW results are in
    MIN_WINDOW = 4
    TARGET_BUSY = 0.9  # share of the workers' cores to aim for
    MAX_STEP = 4.0  # at most x4 (or /4) per window: an I/O-bound crawl ramps up fast
    MIN_GAIN = 1.1  # an increase must bring 10% more pages/s to be kept
    HOLD = 10  # windows without increases after one was taken back

    def __init__(
        self, workers: int, slots: int, concurrency: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.workers = workers
        self.ceiling = slots + EXTRA_QUEUED
        if concurrency is not None:  # queued tasks count too: the cap is exact
            self.ceiling = min(self.ceiling, concurrency)
        self.floor = min(self.ceiling, workers + EXTRA_QUEUED)
        self.adaptive = concurrency is None and slots > workers
        self.value = self.floor if self.adaptive else self.ceiling  # start as if parse-bound
        self.clock = clock
        self._window_start = clock()
        self._cpu_ms = 0.0
        self._count = 0
        self._before_increase: tuple[int, float] | None = None  # (value, pages/s) before it
        self._hold = 0

    def observe(self, cpu_ms: float) -> None:
        """One result came back, whose task used `cpu_ms` of a fetch thread's CPU."""
        if not self.adaptive:
            return
        self._cpu_ms += cpu_ms
        self._count += 1
        now = self.clock()
        elapsed = now - self._window_start
        if self._count >= self.WINDOW or (self._count >= self.MIN_WINDOW and elapsed >= self.WINDOW_SECONDS):
            self.adjust(self._cpu_ms, elapsed * 1000, self._count)
            self._window_start, self._cpu_ms, self._count = now, 0.0, 0

    def adjust(self, cpu_ms: float, wall_ms: float, results: int) -> None:
        """One window's figures: CPU of the fetch threads, its length, results in it."""
        if wall_ms <= 0:
            return
        rate = results / wall_ms
        if self._before_increase is not None:
            value, rate_before = self._before_increase
            self._before_increase = None
            if rate < rate_before * self.MIN_GAIN:  # the increase did not pay: take it back
                self.value, self._hold = value, self.HOLD
                return
        busy = cpu_ms / (wall_ms * self.workers)
        step = self.TARGET_BUSY / busy if busy > 0 else self.MAX_STEP
        step = max(1 / self.MAX_STEP, min(self.MAX_STEP, step))
        new = max(self.floor, min(self.ceiling, round(self.value * step)))
        if new > self.value:
            if self._hold > 0:
                self._hold -= 1
                return
            self._before_increase = (self.value, rate)
        self.value = new


class Scheduler:
    def __init__(
        self,
        config: CrawlConfig,
        tasks: Any,
        allowed_hosts: tuple[str, ...],
        clock: Callable[[], float] = time.monotonic,
        slots: int | None = None,
    ) -> None:
        self.config = config
        self.tasks = tasks
        self.clock = clock
        self.frontier = Frontier(
            allowed_hosts=allowed_hosts,
            max_depth=config.depth,
            max_pages=config.max_pages,
            per_host=config.per_host,
            delay=config.delay,
            user_agent=config.user_agent,
            obey_robots=not config.ignore_robots,
        )
        self.in_flight: dict[int, Task] = {}
        # `slots`: fetch threads in all workers (one per worker unless they run several).
        self.limit = InFlightLimit(config.workers, slots or config.workers, config.concurrency)
        self.stopping = False

    def add_seeds(self, urls: Iterable[str]) -> None:
        for url in urls:
            self.frontier.offer(url, depth=0)

    def fill(self) -> int:
        """Put ready tasks on the queue up to capacity; how many were put."""
        put = 0
        while not self.stopping and len(self.in_flight) < self.limit.value:
            task = self.frontier.next_ready(self.clock())
            if task is None:
                break
            self.in_flight[task.id] = task
            self.tasks.put(task)
            put += 1
        return put

    def complete(self, result: Result) -> bool:
        """Take a result back; True when it is a page record for the output."""
        task = self.in_flight.pop(result.task.id, None)
        if task is None:
            return False  # a late duplicate of a task already settled (its worker died)
        self.limit.observe(result.cpu_ms)
        self.frontier.done(task, self.clock())
        if task.kind == ROBOTS:
            self.frontier.robots_arrived(task, result.robots_txt)
            return False
        if not self.stopping and task.depth < self.config.depth:
            for link in result.record["links"]:
                self.frontier.offer(link, task.depth + 1, parent=task.url)
        return True

    def requeue(self, tasks: Any, culprits: dict[int, str]) -> list[Task]:
        """After a pool restart: put every task in flight on the new queue `tasks`.

        A task in the hands of a worker that died or hung (`culprits`) is
        retried once; the ones already retried are returned instead, for the
        crawl to record as failed.
        """
        self.tasks = tasks
        exhausted = []
        for task_id, task in list(self.in_flight.items()):
            if task_id in culprits:
                if task.attempt >= 1:
                    exhausted.append(task)
                    continue
                task = self.in_flight[task_id] = replace(task, attempt=task.attempt + 1)
            self.tasks.put(task)
        return exhausted

    def stop(self) -> None:
        """Schedule nothing more; what is in flight may still finish."""
        self.stopping = True

    def finished(self) -> bool:
        if self.stopping:
            return not self.in_flight
        return not self.in_flight and not self.frontier.has_pending()
