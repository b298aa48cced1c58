"""The crawl: the composition root that wires the roles together.

    seeds -> Scheduler --tasks--> WorkerGroup: N workers --results--> Aggregator --> JSONL
                 ^                                                        |
                 +------------- links of each page, one level deeper -----+

Scheduler (this process): owns the frontier (de-duplication, scope, depth,
  max-pages, robots.txt, per-host politeness) and knows what is in flight.
Workers (from the backend: threads, processes running fetch threads, or
  workers on other machines): take a Task, fetch it with requests, parse it
  with lxml, send one Result back (fetcher.worker_main).
Aggregator (this process, exactly one): appends page records to the shared
  list and writes them as JSONL; their links go back to the scheduler.

Here the crawl carries tasks from the scheduler to the group's task channel,
results from its result channel to the scheduler and the aggregator, looks
after failed workers (backends/base.py: the ports), and ends when nothing is
pending and nothing is in flight: then the group stops every worker.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from . import errors
from .aggregator import Aggregator
from .backends import get_backend
from .backends.base import PREFETCH, Failure, Reason, WorkerGroup, hung_after
from .config import CrawlConfig
from .cookies import load_cookie_file, seed_cookies
from .errors import ScraperError, UsageError
from .journal import Journal, read_records
from .numeric import prefetch as prefetch_numpy
from .records import Result, WorkerSpec, failed_record
from .scheduler import Scheduler, settles_page
from .since import Since
from .stats import CrawlStats
from .store import STORE_SUFFIX, Store, StoreError, resumable_offset
from .store import remove as remove_store
from .urls import host_of, origin_of

log = logging.getLogger(__name__)

TICK = 0.05  # seconds the main loop waits for results before it looks at the rest
CHECK_EVERY = 0.1  # seconds between two looks for dead or hung workers
COMMIT_EVERY = 1.0  # seconds between two commits of the frontier (what a crash costs again)
STOP_JOIN = 5.0  # seconds workers get to exit after the stop broadcast at the end
# After Ctrl-C, pages in flight get this long (at most --timeout) to finish.
STOP_GRACE = 3.0
# Restarts in a row with no result in between before the crawl gives up
# (workers that die at start-up, e.g. a parse callback they cannot import).
MAX_FRUITLESS_RESTARTS = 3


class Crawl:
    """One crawl: `with Crawl(config, seeds) as crawl: for record in crawl.run(): ...`."""

    # The roles exist between __enter__ and __exit__.
    spec: WorkerSpec
    workers: WorkerGroup
    scheduler: Scheduler
    aggregator: Aggregator

    def __init__(self, config: CrawlConfig, seeds: Sequence[str]) -> None:
        self.config = config
        self.seeds = list(seeds)
        self.allowed_hosts = allowed_hosts(self.seeds, config.allow_domain)
        self.stats = CrawlStats()
        self._stop_deadline: float | None = None
        self._stop_asked = False  # stop() before the scheduler existed: run() stops at once
        self._fruitless_restarts = 0  # pool restarts since the last result
        self._last_check = 0.0  # when the workers were last looked at
        self._last_commit = time.monotonic()  # when the frontier was last made durable
        self._numpy: threading.Thread | None = None  # numpy imported while the output and store open

    def __enter__(self) -> Crawl:
        refuse_start_while_main_is_imported_again()
        config = self.config
        self.spec = spec = worker_spec(config, self.seeds)
        if config.warc:
            check_warc_folder(config.warc)
        self.since = Since(config.since) if config.since else None
        self.workers = get_backend(config.backend, config).workers(spec, config.workers)
        self.aggregator = Aggregator(self.stats)
        try:
            self.workers.start()
            self._numpy = prefetch_numpy()  # after the workers: none is forked from a process importing
            # Only now that the crawl has started (a refused start changes no file):
            # the output opens (-O empties it) and a new crawl's store replaces an old one.
            journal = None
            if config.output_path:
                journal = Journal(config.output_path, overwrite=bool(config.overwrite_output))
                journal.start()
            self.aggregator.journal = journal
            self.store, self._resume_offset = open_store(config, journal)
            self.scheduler = Scheduler(config, self.allowed_hosts, max_threads=spec.threads,
                                       queue_ahead=self._queue_ahead(), since=self.since,
                                       store=self.store)  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def _queue_ahead(self) -> int:
        return queue_ahead(self.config.workers, self.workers.max_concurrency(), self.config.per_host)

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def run(self) -> Iterator[dict[str, Any]]:
        """Crawl the seeds; yield each page record once it is written."""
        self._resume()
        if self._stop_asked:  # a Ctrl-C while the crawl started: nothing is scheduled
            self.stop()
        if not self.config.resume:
            # robots.txt of the first seeds' origins goes out first: it is fetched
            # while numpy, which the seen-set needs for the seeds, finishes loading.
            self.scheduler.ask_robots_of(itertools.islice(self.seeds, self.workers.capacity()))
            self._hand_out()
        self.scheduler.add_seeds(self.seeds)
        while not self.scheduler.finished() and not self._stop_expired():
            self._hand_out()
            yield from self._collect(self.workers.results.receive(self._wait()))
            yield from self._recover_failed_workers()
            yield from self._commit(force=False)
        yield from self._commit(force=True)
        self.scheduler.report(self.stats)

    def _hand_out(self) -> None:
        self.workers.scale(self.scheduler.fetch_threads)  # first: the threads start as tasks arrive
        for task in self.scheduler.fill(self.workers.capacity()):
            self.workers.tasks.put(task)

    def _wait(self) -> float:
        """Seconds to wait for results: until the next host may be asked again
        (--delay, Crawl-delay, a slow-down), at most TICK."""
        wake = self.scheduler.next_start()
        now = time.monotonic()
        return TICK if wake is None or wake <= now else min(TICK, wake - now)

    def _commit(self, force: bool) -> list[dict[str, Any]]:
        """Every COMMIT_EVERY seconds: write and sync what is settled, then make
        the frontier durable up to there (the store never runs ahead of the output)."""
        now = time.monotonic()
        if not force and now - self._last_commit < COMMIT_EVERY:
            return []
        self._last_commit = now
        written = self.aggregator.flush()
        journal = self.aggregator.journal
        if journal is not None and not journal.broken:
            journal.sync()
            self.scheduler.commit(journal.size(), self.stats.resumed + self.stats.pages)
        return written

    def _resume(self) -> None:
        """--resume: continue from the store (the output's tail past its last
        commit reconciled), or, for an output without one, from the output."""
        path = self.config.output_path
        if not self.config.resume or not path:
            return
        self._write_delivered(path)
        if self._resume_offset is not None:
            self.stats.resumed = self.store.get("done_pages") or 0
            for record in read_records(path, self._resume_offset):
                self.scheduler.recorded(record)
                self.stats.resumed += 1
            return
        depths = self._mark_done(path)
        for depth in depths:
            self._offer_links(path, depth)

    def _write_delivered(self, path: str) -> None:
        """Resume, part 0: pages an earlier coordinator left in a broker (the redis
        backend's result stream) are written to the journal, not fetched again."""
        delivered = self.workers.delivered()
        journal = self.aggregator.journal
        if not delivered or journal is None:
            return
        written = {record["url"] for record in read_records(path)}
        records = []
        for result in delivered:
            url = result.record["url"]
            if settles_page(result, self.config.retries) and url not in written:
                written.add(url)
                records.append(result.record)
        journal.write(records)

    def _mark_done(self, path: str) -> list[int]:
        """Resume, part 1: every page in `path` is done. The depths found, in order."""
        depths = set()
        for record in read_records(path):
            self.scheduler.mark_recorded(record["url"])
            self.stats.resumed += 1
            depths.add(record.get("depth", 0))
        return sorted(depth for depth in depths if depth < self.config.depth)

    def _offer_links(self, path: str, depth: int) -> None:
        """Resume, part 2: the links of the recorded pages at `depth` are the frontier.

        One pass per depth, lowest first, so that a page gets the depth a
        breadth-first crawl gives it (the seeds were offered before).
        """
        for record in read_records(path):
            if record.get("depth", 0) == depth:
                self.scheduler.offer_recorded_links(record)

    def _collect(self, results: list[Result]) -> list[dict[str, Any]]:
        if results:
            self._fruitless_restarts = 0
        for result in results:
            for settled in self.scheduler.complete(result):
                self.aggregator.add(settled)
        return self.aggregator.flush(force=False)

    def _recover_failed_workers(self) -> list[dict[str, Any]]:
        """Replace workers that died or hung; send their tasks again.

        A task that can have caused a failure (backends/base.py: blamed_tasks)
        is sent again once, alone where the backend can isolate it; blamed a
        second time (alone by then, so the culprit), it is recorded failed.
        """
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY:
            return []
        self._last_check = now
        for task in self.workers.lost(self.scheduler.in_flight):  # a broker's loss: no one's failure
            self.workers.tasks.put(task)
        failures = self.workers.failed()
        if not failures:
            return []
        for failure in failures:
            log.warning("worker %s %s; replacing it", failure.worker, failure.reason)
        self.stats.worker_failures += len(failures)
        self._fruitless_restarts += 1
        if self._fruitless_restarts > MAX_FRUITLESS_RESTARTS:
            raise ScraperError(
                "the workers keep dying before they finish any task (their own errors are above). "
                "Under the spawn or forkserver start method each worker process imports your main "
                "module again: the code that starts the crawl must be under `if __name__ == "
                "'__main__':`. A parse callback must be importable by the workers: a top-level "
                "function of a module, not one defined under that `if`."
            )
        blamed = {task_id: failure for failure in failures for task_id in failure.task_ids}
        settled = []
        for task in self.workers.recover(failures, self.scheduler.in_flight):
            cause = blamed.get(task.id)
            if cause is not None and task.attempt >= 1:
                error = self._failure_error(cause)
                settled.append(Result(task, failed_record(task, cause.worker, error)))
                continue
            if cause is None:
                self.workers.tasks.put(task)
            else:
                self.workers.tasks.put(self.scheduler.next_attempt(task), alone=True)
        return self._collect(settled)

    def _failure_error(self, failure: Failure) -> str:
        if failure.reason == Reason.DIED:
            return errors.WORKER_DIED
        return errors.describe(errors.PARSE, f"still parsing after {hung_after(self.spec):g} s")

    def stop(self) -> None:
        """Stop scheduling; in-flight tasks get until their deadline to finish."""
        self._stop_asked = True
        if self._stop_deadline is None and hasattr(self, "scheduler"):
            self.scheduler.stop()
            grace = min(self.config.timeout, STOP_GRACE)
            self._stop_deadline = time.monotonic() + grace

    def _stop_expired(self) -> bool:
        return self._stop_deadline is not None and time.monotonic() > self._stop_deadline

    def close(self) -> None:
        """Stop every worker and close the output; each step runs even if one fails."""
        steps = [
            ("workers", self._stop_workers),
            ("output", self._close_output),
            ("frontier", self._close_store),
            ("--since file", self._close_since),
            ("numpy import", self._join_numpy),
        ]
        for what, step in steps:
            try:
                step()
            except Exception:
                log.exception("closing the %s failed", what)
        self.stats.interrupted = self._stop_deadline is not None
        self.stats.finish()

    def _close_output(self) -> None:
        """Write what is settled; the frontier's last commit then matches it."""
        if hasattr(self, "scheduler"):
            for _ in self._commit(force=True):
                pass
        self.aggregator.close()

    def _close_store(self) -> None:
        """The store outlives a crawl only to resume it: a finished crawl leaves
        its output alone (its --resume, if any, replays the output)."""
        store = getattr(self, "store", None)
        if store is None:
            return
        store.close()
        finished = self._stop_deadline is None and hasattr(self, "scheduler") and self.scheduler.finished()
        if store.private or (finished and not store.broken):
            remove_store(store.folder)

    def _join_numpy(self) -> None:
        if self._numpy is not None:
            self._numpy.join()

    def _close_since(self) -> None:
        since = getattr(self, "since", None)  # None also when __enter__ failed before it
        if since is not None:
            since.close()

    def _stop_workers(self) -> None:
        # Normally instant (every worker is idle); after a stop, pages still
        # in flight are abandoned (--resume fetches them again).
        scheduler = getattr(self, "scheduler", None)  # None when __enter__ failed before it
        early = self._stop_deadline is not None or scheduler is None or not scheduler.finished()
        self.stats.waited = self.workers.waited()
        self.workers.stop(time.monotonic() + (1.0 if early else STOP_JOIN), finished=not early)


# multiprocessing's "Safe importing of main module": a worker process started
# by spawn or forkserver imports the main module again as __mp_main__.
GUARD_HINT = (
    "a crawl was started while a worker process imported your main module again "
    "(the spawn and forkserver start methods do that): put the code that starts "
    "the crawl under `if __name__ == '__main__':`"
)


def refuse_start_while_main_is_imported_again() -> None:
    """ScraperError(GUARD_HINT) when called from the top-level code of the main module
    being imported again in a worker process (a script without a __main__ guard)."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            raise ScraperError(GUARD_HINT)
        frame = frame.f_back


def queue_ahead(workers: int, max_concurrency: int, per_host: int) -> int:
    """Tasks a host may have handed out beyond --per-host (see Frontier): only
    when the workers could not run more than --per-host requests at once anyway."""
    return workers * PREFETCH if max_concurrency <= per_host else 0


def worker_spec(config: CrawlConfig, seeds: Sequence[str] = ()) -> WorkerSpec:
    """What every worker of this crawl needs, wherever it runs. Cookies and
    credentials are for the seeds' hosts and origins; a cookies file is read
    here, so that a worker on another machine needs none."""
    hosts = dict.fromkeys(host for host in map(host_of, seeds) if host)
    cookies = seed_cookies(config.cookie, hosts)
    if config.cookies is not None:
        cookies += load_cookie_file(config.cookies)
    return WorkerSpec(
        timeout=config.timeout, max_bytes=config.max_bytes, retries=config.retries,
        user_agent=config.user_agent, select=config.select, parse=config.parse_ref,
        threads=config.threads_per_worker, headers=config.header, cookies=tuple(cookies),
        auth=config.auth, private_origins=tuple(dict.fromkeys(map(origin_of, seeds))), warc=config.warc,
    )  # fmt: skip


def open_store(config: CrawlConfig, journal: Journal | None) -> tuple[Store, int | None]:
    """The frontier's store, and where in the output a resume continues from
    (None: an output without a usable store, replayed whole).

    Beside a regular output file (`OUT.frontier/`); otherwise (standard output,
    a pipe, no output) a private one in a temporary folder, deleted at the end.
    A --max-pages crawl resumes by replaying its output: the held levels that
    decide its pages live in memory, and its output is at most N records.
    """
    if journal is None or not journal.regular:
        return Store(tempfile.mkdtemp(prefix="scraper-frontier-"), fresh=True, private=True), None
    folder = journal.path + STORE_SUFFIX
    offset = None
    if config.resume and config.max_pages is None:
        offset = resumable_offset(folder, journal.size())
    try:
        return Store(folder, fresh=offset is None), offset
    except (OSError, StoreError) as exc:
        raise UsageError(f"cannot use the frontier store {folder!r}: {exc}") from None


def check_warc_folder(path: str) -> None:
    """--warc: the folder exists (made if need be) and is writable, before a worker tries."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the --warc folder {path!r}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into the --warc folder {path!r}")


def allowed_hosts(seeds: Sequence[str], allow_domain: Sequence[str]) -> tuple[str, ...]:
    """Host names links may lead to: the seeds' hosts and the allowed domains."""
    hosts = [host_of(url) for url in seeds] + list(allow_domain)
    return tuple(dict.fromkeys(host for host in hosts if host))
