"""The frontier: pure scheduling state, with the clock passed in.

It decides which URL goes next and which is never fetched: duplicates,
scope (allowed hosts), depth, max-pages, robots.txt, and per-host
politeness (a minimum delay and a cap on requests in flight). It never
touches a queue or the network, so it is tested without either.

Breadth-first, one level ahead: with L the lowest depth of any task not yet
done, only tasks of depth L and L+1 are handed out, lowest first, and a
waiting task whose URL turns up again by a shorter path moves up to that
depth. A URL first found at L+2 (by a page of L+1) while pages of L are in
flight may be linked from one of them; it waits until L is done, and by then
it has its true depth. So `depth` is the true number of hops from a seed and a
depth-limited crawl gets the same pages every run, while the next level keeps
the workers busy as the stragglers of a level finish.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from .records import PAGE, ROBOTS, Task
from .robots import RobotsRules
from .urls import host_in_scope, host_of, origin_of, robots_url

log = logging.getLogger(__name__)

# robots.txt may ask for any Crawl-delay; more than this is taken as this.
MAX_CRAWL_DELAY = 60.0

# Why a URL was not scheduled (the summary counts them).
SKIP_DUPLICATE = "duplicate"
SKIP_OFFSITE = "offsite"
SKIP_DEPTH = "depth"
SKIP_MAX_PAGES = "max_pages"
SKIP_ROBOTS = "robots"


@dataclass
class HostSlot:
    """Politeness state of one host (Scrapy's downloader Slot)."""

    queue: list[tuple[int, int, Task]] = field(default_factory=list)  # heap of (depth, seq, task)
    in_flight: int = 0
    last_start: float = float("-inf")
    delay: float = 0.0

    def ready_at(self) -> float:
        return self.last_start + self.delay

    def limit(self, per_host: int, queue_ahead: int) -> int:
        """Tasks handed out allowed. With a delay, one at a time: a task waits in
        the queue for a free worker, so only a finished request tells when the
        next one may start without coming too soon after it (wget --wait)."""
        return 1 if self.delay > 0 else per_host + queue_ahead


@dataclass
class _Origin:
    """robots.txt state of one scheme://host:port."""

    rules: RobotsRules | None = None  # None while robots.txt is being fetched
    waiting: list[Task] = field(default_factory=list)


class Frontier:
    def __init__(
        self,
        *,
        allowed_hosts: tuple[str, ...],
        max_depth: int,
        max_pages: int | None,
        per_host: int,
        delay: float,
        user_agent: str,
        obey_robots: bool,
        queue_ahead: int = 0,
    ) -> None:
        """`queue_ahead`: tasks a host may have handed out beyond `per_host`, so
        that a worker finds its next task waiting. Only for workers that cannot
        run more than `per_host` requests at once anyway (all their fetch
        threads together): the cap on requests in flight still holds."""
        self.allowed_hosts = allowed_hosts
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.per_host = per_host
        self.delay = delay
        self.user_agent = user_agent
        self.obey_robots = obey_robots
        self.queue_ahead = queue_ahead
        self.seen: set[str] = set()
        self.skipped: Counter[str] = Counter()
        self.admitted = 0  # pages scheduled (the max-pages count)
        self._ids = itertools.count(1)
        self._hosts: dict[str, HostSlot] = defaultdict(lambda: HostSlot(delay=delay))
        self._origins: dict[str, _Origin] = {}
        self._robots_tasks: deque[Task] = deque()
        self._open_by_depth: Counter[int] = Counter()  # waiting, queued or in flight
        self._waiting: dict[str, Task] = {}  # URL -> its task, until handed out

    # -- offering URLs ---------------------------------------------------

    def offer(self, url: str, depth: int, parent: str | None = None) -> bool:
        """Consider a canonical URL; False when it is rejected at once (counted in `skipped`).

        True means it passed de-duplication, depth and scope; robots.txt and
        max-pages decide when its origin's rules are known, maybe later.
        """
        reason = self._rejection(url, depth)
        if reason == SKIP_DUPLICATE and self._moves_up(url, depth, parent):
            return True
        if reason is not None:
            self.skipped[reason] += 1
            return False
        self.seen.add(url)
        task = Task(next(self._ids), url, depth, parent)
        self._open_by_depth[depth] += 1
        self._waiting[url] = task
        origin = self._origin(url)
        if origin.rules is None:
            origin.waiting.append(task)
        else:
            self._admit(task, origin.rules)
        return True

    def _moves_up(self, url: str, depth: int, parent: str | None) -> bool:
        """A waiting task found again by a shorter path takes the lower depth.

        The new task replaces the old one wherever that waits (the old one
        is skipped when it comes up: it is no longer in `_waiting`).
        """
        old = self._waiting.get(url)
        if old is None or old.depth <= depth:
            return False
        self.skipped[SKIP_DUPLICATE] += 1  # the longer path is the duplicate
        task = Task(old.id, url, depth, parent)
        self._waiting[url] = task
        self._close(old.depth)
        self._open_by_depth[depth] += 1
        origin = self._origins[origin_of(url)]
        if origin.rules is None:
            origin.waiting.append(task)
        else:  # admitted already: robots.txt and max-pages do not decide again
            heapq.heappush(self._hosts[host_of(url)].queue, (depth, task.id, task))
        return True

    def _is_stale(self, task: Task) -> bool:
        return self._waiting.get(task.url) is not task

    def mark_done(self, url: str) -> None:
        """Treat `url` as fetched in an earlier run (resume): it counts, and never comes again."""
        if url not in self.seen:
            self.seen.add(url)
            self.admitted += 1

    def _rejection(self, url: str, depth: int) -> str | None:
        if url in self.seen:
            return SKIP_DUPLICATE
        if depth > self.max_depth:
            return SKIP_DEPTH
        if not host_in_scope(host_of(url), self.allowed_hosts):
            return SKIP_OFFSITE
        return None

    def _origin(self, url: str) -> _Origin:
        key = origin_of(url)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin()
            if self.obey_robots:
                self._robots_tasks.append(Task(next(self._ids), robots_url(url), kind=ROBOTS))
            else:
                origin.rules = RobotsRules(None)
        return origin

    def _admit(self, task: Task, rules: RobotsRules) -> None:
        if self._is_stale(task):
            return  # it moved up: its replacement is admitted instead
        if rules.allowed(task.url, self.user_agent):
            heapq.heappush(self._hosts[host_of(task.url)].queue, (task.depth, task.id, task))
        else:
            self._skip(task, SKIP_ROBOTS)

    def _skip(self, task: Task, reason: str) -> None:
        self.skipped[reason] += 1
        del self._waiting[task.url]
        self._close(task.depth)

    def robots_arrived(self, task: Task, text: str | None) -> None:
        """Rules for the origin of a ROBOTS task; admits the URLs that waited for them."""
        origin = self._origins[origin_of(task.url)]
        origin.rules = RobotsRules(text)
        slot = self._hosts[host_of(task.url)]
        crawl_delay = origin.rules.crawl_delay(self.user_agent)
        if crawl_delay > MAX_CRAWL_DELAY:
            log.warning("%s asks for Crawl-delay %g s; using %g s", task.url, crawl_delay, MAX_CRAWL_DELAY)
        slot.delay = max(slot.delay, self.delay, min(crawl_delay, MAX_CRAWL_DELAY))
        waiting, origin.waiting = origin.waiting, []
        for page in waiting:
            self._admit(page, origin.rules)

    # -- handing out tasks -----------------------------------------------

    def next_ready(self, now: float) -> Task | None:
        """The next task that may start at `now`, or None (nothing ready yet)."""
        if self._robots_tasks:
            return self._robots_tasks.popleft()
        while (slot := self._next_slot(now)) is not None:
            task = heapq.heappop(slot.queue)[2]
            if self.max_pages is not None and self.admitted >= self.max_pages:
                self._skip(task, SKIP_MAX_PAGES)  # counted when handed out: in breadth-first order
                continue
            del self._waiting[task.url]
            self.admitted += 1
            slot.in_flight += 1
            slot.last_start = now
            return task
        return None

    def _next_slot(self, now: float) -> HostSlot | None:
        """The host whose next task goes first (lowest depth, then oldest), if any may start."""
        level = self.current_level()
        if level is None:
            return None
        best: tuple[int, int, HostSlot] | None = None
        for slot in self._hosts.values():
            self._drop_stale(slot)
            if not slot.queue or slot.queue[0][0] > level + 1:
                continue
            if slot.in_flight >= slot.limit(self.per_host, self.queue_ahead) or now < slot.ready_at():
                continue
            depth, seq, _ = slot.queue[0]
            if best is None or (depth, seq) < best[:2]:
                best = (depth, seq, slot)
        return None if best is None else best[2]

    def _drop_stale(self, slot: HostSlot) -> None:
        while slot.queue and self._is_stale(slot.queue[0][2]):
            heapq.heappop(slot.queue)

    def current_level(self) -> int | None:
        """The lowest depth with open tasks: this depth and the next are handed out."""
        return min(self._open_by_depth) if self._open_by_depth else None

    def done(self, task: Task, now: float) -> None:
        """A task handed out by next_ready() has its result (at `now`)."""
        if task.kind == PAGE:
            slot = self._hosts[host_of(task.url)]
            slot.in_flight -= 1
            if slot.delay > 0:
                slot.last_start = max(slot.last_start, now)  # the delay counts from the end
            self._close(task.depth)

    def _close(self, depth: int) -> None:
        self._open_by_depth[depth] -= 1
        if self._open_by_depth[depth] <= 0:
            del self._open_by_depth[depth]

    def has_pending(self) -> bool:
        """True while any task waits for robots, a slot, or is handed out."""
        return bool(self._robots_tasks or self._open_by_depth)
