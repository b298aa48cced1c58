"""Per-host politeness: pure state, with the clock passed in.

Every host has a slot (Scrapy's downloader Slot): its tasks, lowest depth
then oldest first; a cap on the tasks handed out; a minimum delay between
requests (--delay, or robots.txt's Crawl-delay when longer); and a pause
after a 429 or 503. The frontier owns one `Politeness`: it pushes the tasks
it admits and asks which one may start now. Like the frontier, it never
touches a worker queue or the network, so it is tested without either.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .records import Task
from .urls import host_of

log = logging.getLogger(__name__)

# robots.txt may ask for any Crawl-delay; more than this is taken as this.
MAX_CRAWL_DELAY = 60.0
# A host that answers 429 or 503 gets no new request before its Retry-After,
# capped at MAX_PAUSE, or else a pause that doubles from MIN_BACKOFF on every
# slow-down and halves on every success.
MAX_PAUSE = 60.0
MIN_BACKOFF = 1.0


@dataclass
class HostSlot:
    """Politeness state of one host (Scrapy's downloader Slot)."""

    queue: list[tuple[int, int, Task]] = field(default_factory=list)  # heap of (depth, seq, task)
    in_flight: int = 0
    last_start: float = float("-inf")
    delay: float = 0.0
    paused_until: float = float("-inf")  # after a 429 or 503
    backoff: float = 0.0  # the pause of the next slow-down without Retry-After

    def ready_at(self) -> float:
        return max(self.last_start + self.delay, self.paused_until)

    def limit(self, per_host: int, queue_ahead: int) -> int:
        """Tasks handed out allowed. With a delay, one at a time: a task waits in
        the queue for a free worker, so only a finished request tells when the
        next one may start without coming too soon after it (wget --wait)."""
        return 1 if self.delay > 0 else per_host + queue_ahead


class Politeness:
    """The slots of all hosts: which task may start when (see Frontier for
    `per_host` and `queue_ahead`; `delay` is --delay)."""

    def __init__(self, *, per_host: int, delay: float, queue_ahead: int = 0) -> None:
        self.per_host = per_host
        self.delay = delay
        self.queue_ahead = queue_ahead
        self.slowed: Counter[str] = Counter()  # host -> slow-downs (429 or 503)
        self._hosts: dict[str, HostSlot] = defaultdict(lambda: HostSlot(delay=delay))
        # The hosts with tasks waiting: the only ones start_next() looks at, so that a
        # crawl that has met many hosts does not look at each of them for every task.
        self._queued: dict[str, HostSlot] = {}

    def push(self, task: Task) -> None:
        """Let `task` wait for its host's slot."""
        host = host_of(task.target)
        slot = self._queued[host] = self._hosts[host]
        heapq.heappush(slot.queue, (task.depth, task.id, task))

    def obey_crawl_delay(self, robots: str, crawl_delay: float) -> None:
        """The robots.txt at `robots` asks for `crawl_delay` (capped) between requests to its host."""
        slot = self._hosts[host_of(robots)]
        if crawl_delay > MAX_CRAWL_DELAY:
            log.warning("%s asks for Crawl-delay %g s; using %g s", robots, crawl_delay, MAX_CRAWL_DELAY)
        slot.delay = max(slot.delay, self.delay, min(crawl_delay, MAX_CRAWL_DELAY))

    def slow_down(self, host: str, now: float, retry_after: float | None) -> float:
        """No new request to `host` before its Retry-After (capped), or a growing pause."""
        slot = self._hosts[host]
        if retry_after is not None:
            pause = min(max(retry_after, 0.0), MAX_PAUSE)
        else:
            if now >= slot.paused_until:  # one step per pause: the requests in flight say the same
                slot.backoff = min(MAX_PAUSE, max(MIN_BACKOFF, slot.backoff * 2))
            pause = slot.backoff
        slot.paused_until = max(slot.paused_until, now + pause)
        self.slowed[host] += 1
        log.debug("slowing down %s for %.1f s", host, pause)
        return pause

    def speed_up(self, host: str) -> None:
        """A success: the next pause without Retry-After is shorter again."""
        slot = self._hosts[host]
        if slot.backoff:
            slot.backoff = slot.backoff / 2 if slot.backoff / 2 >= MIN_BACKOFF else 0.0

    def waiting(self, host: str) -> int:
        """Tasks of `host` waiting for its slot."""
        slot = self._queued.get(host)
        return 0 if slot is None else len(slot.queue)

    def start_next(self, now: float, deepest: int) -> Task | None:
        """Start the task that goes first (lowest depth up to `deepest`, then oldest)
        on a host that may start one at `now`, if any."""
        slot = self._next_slot(now, deepest)
        if slot is None:
            return None
        task = heapq.heappop(slot.queue)[2]
        slot.in_flight += 1
        slot.last_start = now
        return task

    def next_start(self, deepest: int) -> float | None:
        """When the next task up to depth `deepest` may start on a host with a free
        slot (a time, maybe past), or None: no such task. The crawl sleeps until then."""
        soonest = None
        for slot in self._queued.values():
            if slot.queue and slot.queue[0][0] <= deepest \
                    and slot.in_flight < slot.limit(self.per_host, self.queue_ahead):
                ready = slot.ready_at()
                soonest = ready if soonest is None else min(soonest, ready)
        return soonest

    def _next_slot(self, now: float, deepest: int) -> HostSlot | None:
        best: tuple[int, int, HostSlot] | None = None
        emptied = []
        for host, slot in self._queued.items():
            if not slot.queue:
                emptied.append(host)
                continue
            if slot.queue[0][0] > deepest:
                continue
            if slot.in_flight >= slot.limit(self.per_host, self.queue_ahead) or now < slot.ready_at():
                continue
            depth, seq, _ = slot.queue[0]
            if best is None or (depth, seq) < best[:2]:
                best = (depth, seq, slot)
        for host in emptied:
            del self._queued[host]
        return None if best is None else best[2]

    def release(self, task: Task, now: float) -> None:
        """A task started by start_next() is back: its host's slot is free again."""
        slot = self._hosts[host_of(task.target)]
        slot.in_flight -= 1
        if slot.delay > 0:
            slot.last_start = max(slot.last_start, now)  # the delay counts from the end
