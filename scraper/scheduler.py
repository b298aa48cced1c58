"""The scheduler role: the single owner of the frontier and of what is in flight.

It says which tasks to hand out now (no more than the workers can take, so
that politeness and Ctrl-C take effect at once), remembers what is in
flight, takes results back, offers their links one level deeper, and says
when the crawl is over: nothing pending and nothing in flight. It never
touches a queue: the crawl carries tasks and results to and from the workers.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from .config import CrawlConfig
from .frontier import Frontier, UrlFilter
from .linkbatch import link_batch
from .records import PAGE, ROBOTS, SITEMAP, SLOW_DOWN_STATUSES, Result, Task, failed_record
from .since import Since
from .stats import CrawlStats
from .store import Store
from .urls import canonicalize, host_of, wire_url

log = logging.getLogger(__name__)



def retried_after_slow_down(task: Task, status: int | None, retries: int) -> bool:
    """A page that answered 429 or 503 and has retries left goes back to its host's queue."""
    return status in SLOW_DOWN_STATUSES and task.retries < retries


def settles_page(result: Result, retries: int) -> bool:
    """The one rule for a result that ends its page: a page's answer that is
    neither a redirect hop nor a 429/503 to send again. Scheduler.complete
    records exactly these (and pages refused at a redirect), as does the
    --resume of results an earlier coordinator left in a broker."""
    task = result.task
    again = retried_after_slow_down(task, result.record.get("status"), retries)
    return task.kind == PAGE and result.redirect_to is None and not again


class FetchThreads:
    """How many fetch threads each worker process should run.

    With a fixed --concurrency, enough for it. Otherwise as many as keep a
    core busy while requests wait on the network, the classic 1 + W/C: C is
    the CPU time a task takes (median of the last results) and W the time it
    spends off its own CPU, waiting for the server (a low percentile: the
    waits for the GIL that several threads add are mostly left out, so the
    estimate does not feed on itself). A parse-heavy crawl of a fast server
    gets 1 thread per process, a crawl of a 100 ms server dozens.
    """

    SAMPLES = 64  # results the estimate is taken over
    EVERY = 16  # results between two estimates, once the first SAMPLES are in
    MIN_CPU_MS = 0.2  # a task never costs less than this (an error page can be almost free)

    def __init__(self, workers: int, max_threads: int, concurrency: int | None) -> None:
        self.max_threads = max_threads
        self.adaptive = concurrency is None and max_threads > 1
        # Without --concurrency, start as if parse-bound; the first results tell.
        self.threads = 1 if concurrency is None else -(-concurrency // max(workers, 1))
        self._cpu_ms: deque[float] = deque(maxlen=self.SAMPLES)
        self._wait_ms: deque[float] = deque(maxlen=self.SAMPLES)
        self._observed = 0

    def observe(self, cpu_ms: float, wall_ms: float) -> None:
        """One result came back: its task took `wall_ms`, `cpu_ms` of it on a CPU."""
        if not self.adaptive:
            return
        self._cpu_ms.append(max(cpu_ms, self.MIN_CPU_MS))
        self._wait_ms.append(max(wall_ms - cpu_ms, 0.0))
        self._observed += 1
        if self._observed < self.SAMPLES or self._observed % self.EVERY == 0:
            self.estimate()

    def estimate(self) -> None:
        cpu = sorted(self._cpu_ms)[len(self._cpu_ms) // 2]
        wait = sorted(self._wait_ms)[len(self._wait_ms) // 4]
        self.threads = max(1, min(self.max_threads, round(1 + wait / cpu)))


class Scheduler:
    def __init__(
        self,
        config: CrawlConfig,
        allowed_hosts: tuple[str, ...],
        clock: Callable[[], float] = time.monotonic,
        max_threads: int = 1,
        queue_ahead: int = 0,
        since: Since | None = None,
        store: Store | None = None,
    ) -> None:
        """`max_threads`: fetch threads a worker may run (one, unless processes run
        several); `queue_ahead`: see Frontier; `since`: the old crawl of a re-crawl;
        `store`: where the frontier lives (None: in memory)."""
        self.config = config
        self.since = since
        self.clock = clock
        self.frontier = Frontier(
            allowed_hosts=allowed_hosts,
            max_depth=config.depth,
            max_pages=config.max_pages,
            per_host=config.per_host,
            delay=config.delay,
            user_agent=config.user_agent,
            obey_robots=not config.ignore_robots,
            queue_ahead=queue_ahead,
            url_filter=UrlFilter(config.allow, config.deny),
            store=store,
        )
        self.in_flight: dict[int, Task] = {}
        self._last_hop: dict[int, dict[str, Any]] = {}  # record of a page's redirect, while its target waits
        self.threads = FetchThreads(config.workers, max_threads, config.concurrency)
        self.stopping = False

    def ask_robots_of(self, urls: Iterable[str]) -> None:
        """robots.txt of these URLs' origins is asked for now (the seeds': their tasks
        can go out before the seeds themselves have been through the seen-set)."""
        for url in urls:
            self.frontier.ask_robots(wire_url(url))

    def add_seeds(self, urls: Iterable[str]) -> None:
        """Seeds as given (they are requested so); their canonical form is the key."""
        canonical: dict[str, str] = {}
        for url in urls:
            canonical.setdefault(canonicalize(url), wire_url(url))
            if self.config.sitemaps:
                self.frontier.want_sitemaps(url)
        self.frontier.offer_links(link_batch(list(canonical), canonical), depth=0, seed=True)

    def fill(self, capacity: int) -> list[Task]:
        """Tasks to hand out now, so that at most `capacity` are in flight
        (never more than --concurrency, when given)."""
        if self.config.concurrency is not None:
            capacity = min(capacity, self.config.concurrency)
        ready: list[Task] = []
        now = self.clock()
        while not self.stopping and len(self.in_flight) < capacity:
            task = self.frontier.next_ready(now)
            if task is None:
                break
            if self.since is not None:
                task = self.since.conditional(task)
            self.in_flight[task.id] = task
            ready.append(task)
        return ready

    def complete(self, result: Result) -> list[Result]:
        """Take a result back; the page results it settles, for the output.

        A redirect or a 429/503 to retry is not settled yet: the page goes
        back to the frontier. A page may also end at its next hop, now or
        once robots.txt of the target's origin is known (`take_refused`).
        """
        task = self.in_flight.get(result.task.id)
        if task is None or task != result.task:
            return []  # a late duplicate of a task already settled or sent again (its worker died)
        del self.in_flight[task.id]
        self.threads.observe(result.cpu_ms, result.wall_ms)
        now = self.clock()
        if task.kind == ROBOTS:
            self.frontier.done(task, now)
            failed = result.record["error"] is not None and result.record["error"].startswith("http_")
            status = result.record["status"] if not result.record["error"] or failed else None
            self.frontier.robots_arrived(task, status, result.robots_body or b"", result.record["error"])
            return self._refused(now)
        if task.kind == SITEMAP:
            self._sitemap_arrived(task, result)
            return self._refused(now)
        if result.redirect_to is not None and self.stopping:
            self.frontier.release(task, now)  # not finished: --resume fetches it again
            return []
        if self.stopping or settles_page(result, self.config.retries):
            self._settle(task, result, now)
            return [result, *self._refused(now)]
        self._go_on(task, result, now)
        return self._refused(now)

    def _settle(self, task: Task, result: Result, now: float) -> None:
        """The page's answer is final: its host learns how it went, its links go on."""
        record = result.record
        host = host_of(task.target)
        if record["status"] in SLOW_DOWN_STATUSES:
            self.frontier.slow_down(host, now, result.retry_after)
        elif record["ok"]:
            self.frontier.speed_up(host)
        self.frontier.done(task, now)
        self._last_hop.pop(task.id, None)
        if self.since is not None:
            self.since.settle(record)  # a 304 gets the old links: offered next
        self._offer_links(task, result)

    def _sitemap_arrived(self, task: Task, result: Result) -> None:
        error = result.record["error"]
        if error is not None:
            log.warning("sitemap %s not read: %s", task.target, error)
        if not self.stopping:
            self.frontier.sitemap_arrived(task, result.sitemap if error is None else None)

    def _go_on(self, task: Task, result: Result, now: float) -> None:
        """The page is not settled (settles_page): a redirect to follow, or a retry after 429/503."""
        record = result.record
        self.frontier.release(task, now)
        if result.redirect_to is not None:
            self._last_hop[task.id] = record
            self.frontier.redirect(task, result.redirect_to, record["elapsed_ms"])
            return
        pause = self.frontier.retry_later(task, now, result.retry_after)
        log.info("%s answered %s: slowing down %s for %.1f s",
                 task.target, record["status"], host_of(task.target), pause)  # fmt: skip

    def _offer_links(self, task: Task, result: Result) -> None:
        """The page's links, one level deeper, as the worker parsed them."""
        urls = result.record["links"]
        if self.stopping or task.depth >= self.config.depth or not urls:
            return
        links = result.links
        if links is None or links.urls != tuple(urls):  # a 304's old links, or a callback changed them
            links = link_batch(urls)
        self.frontier.offer_links(links, task.depth + 1, parent=task.url, parent_id=task.id)

    def _refused(self, now: float) -> list[Result]:
        """Records of the pages that ended at a redirect they may not follow."""
        ended = []
        for task, error in self.frontier.take_refused():
            record = self._last_hop.pop(task.id, None) or failed_record(task, "scheduler", error)
            record.update(error=error, ok=False)
            ended.append(Result(task, record))
        return ended

    def next_attempt(self, task: Task) -> Task:
        """A task in flight whose worker died or hung: its next attempt."""
        again = self.in_flight[task.id] = replace(task, attempt=task.attempt + 1)
        return again

    @property
    def fetch_threads(self) -> int:
        """Fetch threads each worker process should run now (FetchThreads' estimate)."""
        return self.threads.threads

    def next_start(self) -> float | None:
        """When a task that waits for its host's turn may start (a time, maybe past)."""
        return None if self.stopping else self.frontier.next_start()

    def commit(self, journal_offset: int, done_pages: int) -> None:
        """Make the frontier durable: the output holds every settled page up to
        `journal_offset` bytes, `done_pages` of them in all."""
        self.frontier.commit(journal_offset, done_pages)

    # -- --resume ------------------------------------------------------------------

    def recorded(self, record: dict[str, Any]) -> None:
        """A page the output holds past the store's last commit: done, and its
        links offered (the store may not have them)."""
        self.mark_recorded(record["url"])
        self.offer_recorded_links(record)

    def mark_recorded(self, url: str) -> None:
        """A page of the output: it never comes again."""
        self.frontier.mark_done(url)

    def offer_recorded_links(self, record: dict[str, Any]) -> None:
        """The links of a page of the output, one level deeper."""
        depth = record.get("depth", 0)
        links = record.get("links")
        if isinstance(depth, int) and depth < self.config.depth and isinstance(links, list) and links:
            urls = [link for link in links if isinstance(link, str)]
            self.frontier.offer_links(link_batch(urls), depth + 1, parent=record["url"])

    def report(self, stats: CrawlStats) -> None:
        """What the frontier skipped, slowed down and found, into the summary."""
        frontier = self.frontier
        stats.skipped.update(frontier.skipped)
        stats.slowed.update(frontier.slowed)
        stats.sitemap_urls = frontier.sitemap_urls
        stats.details.update(frontier.robots_failures)

    def stop(self) -> None:
        """Schedule nothing more; what is in flight may still finish."""
        self.stopping = True

    def finished(self) -> bool:
        if self.stopping:
            return not self.in_flight
        return not self.in_flight and not self.frontier.has_pending()
