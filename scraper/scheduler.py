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

# Tasks queued beyond one per worker: enough that a worker finishing a task
# finds the next one waiting, few enough that politeness decisions stay fresh
# (the idea of concurrent.futures' EXTRA_QUEUED_CALLS).
EXTRA_QUEUED = 2


class Scheduler:
    def __init__(
        self,
        config: CrawlConfig,
        tasks: Any,
        allowed_hosts: tuple[str, ...],
        clock: Callable[[], float] = time.monotonic,
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
        self.capacity = config.workers + EXTRA_QUEUED
        self.stopping = False

    def add_seeds(self, urls: Iterable[str]) -> None:
        for url in urls:
            self.frontier.offer(url, depth=0)

    def fill(self) -> int:
        """Put ready tasks on the queue up to capacity; how many were put."""
        put = 0
        while not self.stopping and len(self.in_flight) < self.capacity:
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
        self.frontier.done(task)
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
