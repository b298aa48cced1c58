"""The crawl: the composition root that wires the roles together.

    seeds -> Scheduler --(JoinableQueue of Task)--> N fetchers --(Queue of Result)--> Aggregator
                 ^                                                                        |
                 +------------------ links of each page, one level deeper ----------------+

Scheduler (main process): owns the frontier (de-duplication, scope, depth,
  max-pages, robots.txt, per-host politeness), keeps the task queue short,
  and knows what is in flight.
Fetchers (N threads or processes, from the backend): get a Task, fetch it
  with requests, parse it with lxml, put one Result, task_done().
Aggregator (main process, exactly one): drains the result queue, appends
  records to the shared list, writes them as JSONL, and hands the results
  back here so their links reach the scheduler.

The crawl ends when nothing is pending and nothing is in flight; then every
worker gets a `None` sentinel and is joined (and killed if it will not stop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from . import errors
from .aggregator import Aggregator
from .backend import get_backend
from .config import CrawlConfig
from .journal import Journal
from .pool import WorkerPool
from .records import Result, failed_record
from .scheduler import Scheduler
from .stats import CrawlStats
from .urls import host_of

log = logging.getLogger(__name__)

TICK = 0.05  # seconds the main loop waits for results before it looks at the rest
STOP_JOIN = 5.0  # seconds workers get to exit after their sentinel


class Crawl:
    """One crawl: `with Crawl(config, seeds) as crawl: for record in crawl.run(): ...`."""

    def __init__(self, config: CrawlConfig, seeds: Sequence[str]) -> None:
        self.config = config
        self.seeds = list(seeds)
        self.allowed_hosts = allowed_hosts(self.seeds, config.allow_domain)
        self.stats = CrawlStats()
        self._stop_deadline: float | None = None

    def __enter__(self) -> Crawl:
        config = self.config
        backend = get_backend(config.backend, config.start_method)
        self.backend = backend
        self.tasks = backend.JoinableQueue()
        self.results = backend.Queue()
        journal = None
        if config.output_path:
            journal = Journal(config.output_path, overwrite=bool(config.overwrite_output))
        self.aggregator = Aggregator(self.results, self.stats, journal)
        self.scheduler = Scheduler(config, self.tasks, self.allowed_hosts)
        self.pool = WorkerPool(backend, config.workers, self.tasks, self.results,
                               config, self.allowed_hosts)  # fmt: skip
        try:
            self.pool.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def run(self) -> Iterator[dict[str, Any]]:
        """Crawl the seeds; yield each page record once it is written."""
        self.scheduler.add_seeds(self.seeds)
        while not self.scheduler.finished() and not self._stop_expired():
            self.scheduler.fill()
            yield from self._collect(self.aggregator.drain(TICK))
            self._recover_lost_tasks()
        self.stats.skipped.update(self.scheduler.frontier.skipped)

    def _collect(self, results: list[Result]) -> list[dict[str, Any]]:
        pages = [result for result in results if self.scheduler.complete(result)]
        for result in pages:
            self.aggregator.add(result)
        self.aggregator.flush()
        return [result.record for result in pages]

    def _recover_lost_tasks(self) -> None:
        for name, task_id in self.pool.replace_dead():
            self.stats.workers_replaced += 1
            task = self.scheduler.lost(task_id)
            if task is None:
                continue
            if task.attempt == 0:
                self.scheduler.retry(task)
            else:
                record = failed_record(task, name, errors.WORKER_DIED)
                self._collect([Result(task, record)])

    def stop(self) -> None:
        """Stop scheduling; in-flight tasks get until their deadline to finish."""
        if self._stop_deadline is None:
            self.stats.interrupted = True
            self.scheduler.stop()
            # A fetch in flight ends within its timeout; a retry would start another.
            self._stop_deadline = time.monotonic() + self.config.timeout + 1.0

    def _stop_expired(self) -> bool:
        return self._stop_deadline is not None and time.monotonic() > self._stop_deadline

    def close(self) -> None:
        """Stop every worker and close the output; each step runs even if one fails."""
        steps = [
            ("workers", self._stop_workers),
            ("output", self.aggregator.close),
            ("queues", self._close_queues),
        ]
        for what, step in steps:
            try:
                step()
            except Exception:
                log.exception("closing the %s failed", what)
        self.stats.finish()

    def _stop_workers(self) -> None:
        self.pool.stop(time.monotonic() + STOP_JOIN, drain=self._discard_results)

    def _discard_results(self) -> None:
        # Results that arrive after the end (tasks abandoned on stop) are dropped:
        # `--resume` fetches them again, so nothing is lost and nothing written twice.
        self.aggregator.drain(0)

    def _close_queues(self) -> None:
        for q in (self.tasks, self.results):
            self.backend.close_queue(q)


def allowed_hosts(seeds: Sequence[str], allow_domain: Sequence[str]) -> tuple[str, ...]:
    """Host names links may lead to: the seeds' hosts and the allowed domains."""
    hosts = [host_of(url) for url in seeds] + list(allow_domain)
    return tuple(dict.fromkeys(host for host in hosts if host))
