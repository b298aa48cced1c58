"""Worker lifecycle: start N fetchers, notice and replace dead ones, stop them all."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .backend import Backend, Worker
from .config import CrawlConfig
from .fetcher import worker_main

log = logging.getLogger(__name__)

JOIN_POLL = 0.05  # seconds between liveness checks while stopping


@dataclass
class _Slot:
    name: str
    worker: Worker
    current: Any  # shared int: id of the task in hand, -1 when idle


class WorkerPool:
    """N workers of one backend reading `tasks` and writing `results`."""

    def __init__(
        self,
        backend: Backend,
        size: int,
        tasks: Any,
        results: Any,
        config: CrawlConfig,
        allowed_hosts: tuple[str, ...],
    ) -> None:
        self.backend = backend
        self.size = size
        self.tasks = tasks
        self.results = results
        self.config = config
        self.allowed_hosts = allowed_hosts
        self.slots: list[_Slot] = []
        self._started = 0

    def start(self) -> None:
        for _ in range(self.size):
            self.slots.append(self._start_one())

    def _start_one(self) -> _Slot:
        self._started += 1
        name = f"{self.backend.name}-{self._started}"
        current = self.backend.Value()
        args = (name, self.tasks, self.results, current, self.config,
                self.allowed_hosts, self.backend.parent_alive_check())  # fmt: skip
        return _Slot(name, self.backend.start_worker(worker_main, args, name), current)

    def replace_dead(self) -> list[tuple[str, int]]:
        """Start a new worker for each dead one; (name, task id) of tasks they held."""
        lost = []
        for index, slot in enumerate(self.slots):
            if slot.worker.is_alive():
                continue
            log.warning("worker %s died (exit code %s); starting another",
                        slot.name, slot.worker.exitcode)  # fmt: skip
            if slot.current.value >= 0:
                lost.append((slot.name, slot.current.value))
            slot.worker.join(0)
            self.slots[index] = self._start_one()
        return lost

    def stop(self, deadline: float, drain: Callable[[], None]) -> None:
        """Sentinels, then join while draining results until `deadline`, then kill."""
        for slot in self.slots:
            if slot.worker.is_alive():
                self.tasks.put(None)
        while any(slot.worker.is_alive() for slot in self.slots) and time.monotonic() < deadline:
            drain()  # a worker blocked on a full result pipe can only finish if we read
            time.sleep(JOIN_POLL)
        for slot in self.slots:
            if slot.worker.is_alive():
                log.warning("worker %s did not stop in time; killing it", slot.name)
                slot.worker.kill()
            slot.worker.join(1.0)

    def alive(self) -> int:
        return sum(slot.worker.is_alive() for slot in self.slots)
