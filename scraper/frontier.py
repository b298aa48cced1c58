"""The frontier: pure scheduling state, with the clock passed in.

It decides which URL goes next and which is never fetched: duplicates,
scope (allowed hosts), depth, max-pages and robots.txt. It owns the per-host
politeness (politeness.py: a minimum delay, a cap on requests in flight, the
pause after a 429 or 503) and the sitemaps to read (sitemaps.py). It never
touches a queue or the network, so it is tested without either.

Breadth-first, one level ahead: with L the lowest depth of any task not yet
done, only tasks of depth L and L+1 are handed out, lowest first, and a
waiting task whose URL turns up again by a shorter path moves up to that
depth. A URL first found at L+2 (by a page of L+1) while pages of L are in
flight may be linked from one of them; it waits until L is done, and by then
it has its true depth. So `depth` is the true number of hops from a seed and a
depth-limited crawl gets the same pages every run, while the next level keeps
the workers busy as the stragglers of a level finish.

With max-pages, which pages are recorded must not depend on which answer
came first either: the first N pages in breadth-first order (depth, then
the order of the parents, then link order within a parent), the same on every
run and backend. So a level is held until the level before it is done (its
pages, and so their order and all their links, are then known), sorted, and
admitted in that order, robots.txt first, until the budget is spent. The
price is the overlap of levels: the last pages of a level run alone.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace

from . import errors
from .politeness import Politeness
from .records import PAGE, ROBOTS, Task
from .robots import RobotsRules, product_token, rules_from_response
from .sitemaps import Sitemaps
from .urls import canonicalize, host_in_scope, host_of, is_http_url, origin_of, robots_url, wire_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10  # hops a page may take (each one is checked like a link)

# Why a URL was not scheduled (the summary counts them).
SKIP_DUPLICATE = "duplicate"
SKIP_OFFSITE = "offsite"
SKIP_DEPTH = "depth"
SKIP_MAX_PAGES = "max_pages"
SKIP_ROBOTS = "robots"
SKIP_ROBOTS_UNAVAILABLE = "robots_unavailable"
SKIP_FILTERED = "filtered"  # --allow / --deny
SKIP_INVALID = "invalid_url"  # a sitemap entry that is no http(s) URL


@dataclass(frozen=True)
class UrlFilter:
    """--allow / --deny: re.search on the canonical URL; deny wins; no --allow allows all."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", [re.compile(p) for p in self.allow])
        object.__setattr__(self, "_deny", [re.compile(p) for p in self.deny])

    def passes(self, url: str) -> bool:
        if any(p.search(url) for p in self._deny):  # type: ignore[attr-defined]
            return False
        return not self.allow or any(p.search(url) for p in self._allow)  # type: ignore[attr-defined]


@dataclass
class _Origin:
    """robots.txt state of one scheme://host:port."""

    rules: RobotsRules | None = None  # None while robots.txt is being fetched
    waiting: list[Task] = field(default_factory=list)


class Frontier:
    """`queue_ahead`: tasks a host may have handed out beyond `per_host`, so
    that a worker finds its next task waiting. Only for workers that cannot
    run more than `per_host` requests at once anyway (all their fetch
    threads together): the cap on requests in flight still holds."""

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
        url_filter: UrlFilter | None = None,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.robots_token = product_token(user_agent)
        self.obey_robots = obey_robots
        self.url_filter = url_filter or UrlFilter()
        self.seen: set[str] = set()
        self.skipped: Counter[str] = Counter()
        self.robots_failures: Counter[str] = Counter()  # why an origin's robots.txt was unavailable
        self.admitted = 0  # pages scheduled (the max-pages count)
        self._ids = itertools.count(1)
        self._politeness = Politeness(per_host=per_host, delay=delay, queue_ahead=queue_ahead)
        self._sitemaps = Sitemaps(self._ids, self._sitemap_in_scope)  # --sitemaps
        self._origins: dict[str, _Origin] = {}
        self._robots_tasks: deque[Task] = deque()
        self._open_by_depth: Counter[int] = Counter()  # waiting, queued or in flight
        self._waiting: dict[str, Task] = {}  # URL -> its task, until handed out
        self._refused: list[tuple[Task, str]] = []  # redirect hops that may not go on
        self._done_before: set[str] = set()  # recorded by the run that --resume continues
        # With max_pages (see the module's docstring): pages offered but not admitted
        # yet, by depth (url -> (breadth-first key, task)), the level being admitted,
        # the position of each admitted page in its level, links offered per parent.
        self._held: dict[int, dict[str, tuple[tuple[int, int], Task]]] = defaultdict(dict)
        self._releasing: list[Task] = []
        self._position: dict[str, int] = {}
        self._links_of: Counter[str | None] = Counter()

    # -- offering URLs ---------------------------------------------------

    def offer(
        self, url: str, depth: int, parent: str | None = None, fetch_url: str | None = None,
        seed: bool = False,
    ) -> bool:
        """Consider a canonical URL (to be requested as `fetch_url`, if given);
        False when it is rejected at once (counted in `skipped`).

        True means it passed de-duplication, depth, scope and --allow/--deny
        (seeds are exempt from the last: wpull#321); robots.txt and max-pages
        decide when its origin's rules are known, maybe later.
        """
        # Most links are duplicates: the common case goes first, and the
        # breadth-first keys of --max-pages are kept only when it is given.
        if url in self.seen and self.max_pages is None:
            if self._moves_up(url, depth, parent):
                return True
            if url not in self._done_before:  # a page of an earlier run is no duplicate
                self.skipped[SKIP_DUPLICATE] += 1
            return False
        key = (-1, 0)
        if self.max_pages is not None:
            key = (self._position.get(parent, len(self._position)) if parent else -1, self._links_of[parent])
            self._links_of[parent] += 1
        reason = self._rejection(url, depth) or (None if seed else self._filtered(url))
        if reason == SKIP_DUPLICATE and (
            self._moves_up(url, depth, parent) or self._held_earlier(url, key, parent)
        ):
            return True
        if reason is not None:
            if url not in self._done_before:  # a page of an earlier run is no duplicate
                self.skipped[reason] += 1
            return False
        self.seen.add(url)
        task = Task(next(self._ids), url, depth, parent, fetch_url=fetch_url if fetch_url != url else None)
        if self.max_pages is not None:
            self._held[depth][url] = (key, task)
            return True
        self._open_by_depth[depth] += 1
        self._enter(task)
        return True

    # -- max-pages: admission in breadth-first order ------------------------------

    def _held_earlier(self, url: str, key: tuple[int, int], parent: str | None) -> bool:
        """A held page found again earlier in breadth-first order takes that place."""
        for level in self._held.values():
            held = level.get(url)
            if held is not None and key < held[0]:
                self.skipped[SKIP_DUPLICATE] += 1
                level[url] = (key, replace(held[1], parent=parent))
                return True
        return False

    def _release(self) -> None:
        """Admit the next held level once the levels before it are done: in
        breadth-first order, once robots.txt of each page's origin is known."""
        if not self._releasing and self._held and not self._open_by_depth:
            level = self._held.pop(min(self._held))
            self._releasing = [task for _, task in sorted(level.values(), key=lambda held: held[0])]
        if not self._releasing:
            return
        origins = [self._origin(task.target) for task in self._releasing]  # asks for robots.txt
        if any(origin.rules is None for origin in origins):
            return
        for task, origin in zip(self._releasing, origins, strict=True):
            if origin.rules is not None and not origin.rules.allowed(task.target):
                self._waiting[task.url] = task
                self._open_by_depth[task.depth] += 1
                self._admit(task, origin.rules)  # skipped, and logged
            elif self.max_pages is not None and self.admitted >= self.max_pages:
                self.skipped[SKIP_MAX_PAGES] += 1
            else:
                self.admitted += 1
                self._position[task.url] = len(self._position)
                self._waiting[task.url] = task
                self._open_by_depth[task.depth] += 1
                self._politeness.push(task)
        self._releasing = []

    def _enter(self, task: Task) -> None:
        """Let `task` wait for its origin's robots.txt, or for its host's slot."""
        self._waiting[task.url] = task
        origin = self._origin(task.target)
        if origin.rules is None:
            origin.waiting.append(task)
        else:
            self._admit(task, origin.rules)

    def _moves_up(self, url: str, depth: int, parent: str | None) -> bool:
        """A waiting task found again by a shorter path takes the lower depth.

        The new task replaces the old one wherever that waits (the old one
        is skipped when it comes up: it is no longer in `_waiting`).
        """
        old = self._waiting.get(url)
        if old is None or old.depth <= depth:
            return False
        self.skipped[SKIP_DUPLICATE] += 1  # the longer path is the duplicate
        task = replace(old, depth=depth, parent=parent)
        self._waiting[url] = task
        self._close(old.depth)
        self._open_by_depth[depth] += 1
        origin = self._origins[origin_of(task.target)]
        if origin.rules is None:
            origin.waiting.append(task)
        else:  # admitted already: robots.txt and max-pages do not decide again
            self._politeness.push(task)
        return True

    def _is_stale(self, task: Task) -> bool:
        return self._waiting.get(task.url) is not task

    def mark_done(self, url: str) -> None:
        """Treat `url` as fetched in an earlier run (resume): it counts, and never comes again."""
        if url not in self.seen:
            self.seen.add(url)
            self._done_before.add(url)
            self.admitted += 1

    def _rejection(self, url: str, depth: int) -> str | None:
        if url in self.seen:
            return SKIP_DUPLICATE
        if depth > self.max_depth:
            return SKIP_DEPTH
        if not host_in_scope(host_of(url), self.allowed_hosts):
            return SKIP_OFFSITE
        return None

    def _filtered(self, url: str) -> str | None:
        if not (self.url_filter.allow or self.url_filter.deny):
            return None
        return None if self.url_filter.passes(url) else SKIP_FILTERED

    def _origin(self, url: str) -> _Origin:
        key = origin_of(url)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin()
            if self.obey_robots:
                self._robots_tasks.append(Task(next(self._ids), robots_url(url), kind=ROBOTS))
            else:
                origin.rules = RobotsRules.allow_all()
        return origin

    def _admit(self, task: Task, rules: RobotsRules) -> None:
        if self._is_stale(task):
            return  # it moved up: its replacement is admitted instead
        if rules.allowed(task.target):
            self._politeness.push(task)
        elif not task.first_try:  # a redirect into what robots.txt refuses
            why = "robots.txt unavailable" if rules.unavailable else "disallowed by robots.txt"
            self._refuse(task, errors.describe(errors.ROBOTS_DISALLOWED, f"{why}: {task.target}"))
        else:
            why = "robots.txt unavailable" if rules.unavailable else "disallowed by robots.txt"
            log.info("skipped: %s: %s", task.url, why)
            self._skip(task, SKIP_ROBOTS_UNAVAILABLE if rules.unavailable else SKIP_ROBOTS)

    def _skip(self, task: Task, reason: str) -> None:
        self.skipped[reason] += 1
        del self._waiting[task.url]
        self._close(task.depth)

    def _refuse(self, task: Task, error: str) -> None:
        """A page whose next hop may not be fetched: it ends with `error`."""
        self._waiting.pop(task.url, None)
        self._close(task.depth)
        self._refused.append((task, error))

    def take_refused(self) -> list[tuple[Task, str]]:
        """Pages that ended at a redirect (target out of scope, refused by
        robots.txt, too many hops), with their error, since the last call."""
        refused, self._refused = self._refused, []
        return refused

    def robots_arrived(self, task: Task, status: int | None, body: bytes, error: str | None = None) -> None:
        """The answer to a ROBOTS task (`status` None: no answer, for the reason
        `error`); admits the URLs that waited for it."""
        key = origin_of(task.url)
        origin = self._origins[key]
        origin.rules = rules_from_response(status, body, self.robots_token)
        if origin.rules.unavailable:
            answer = f"answered {status}" if status is not None else f"did not answer ({error})"
            self.robots_failures[f"{key}/robots.txt {answer}"] += 1
            log.warning("%s/robots.txt %s: nothing of that origin is crawled (RFC 9309)", key, answer)
        self._politeness.obey_crawl_delay(task.url, origin.rules.crawl_delay())
        waiting, origin.waiting = origin.waiting, []
        for page in waiting:
            self._admit(page, origin.rules)
        self._sitemaps.robots_known(key, origin.rules)

    # -- sitemaps (--sitemaps, SPEC 3.2) -----------------------------------------

    def want_sitemaps(self, seed: str) -> None:
        """Read the sitemaps of the seed's origin, once its robots.txt is known
        (its Sitemap: lines name them; else /sitemap.xml)."""
        key = origin_of(seed)
        if not self._sitemaps.want(key):
            return
        origin = self._origin(seed)
        if origin.rules is not None:  # --ignore-robots, or known already
            self._sitemaps.robots_known(key, origin.rules)

    def _sitemap_in_scope(self, url: str) -> bool:
        """Whether a sitemap may be read; one that may not is counted as off-site."""
        if host_in_scope(host_of(url), self.allowed_hosts):
            return True
        self.skipped[SKIP_OFFSITE] += 1  # StormCrawler#2083: nothing off-site from a sitemap
        return False

    def sitemap_arrived(self, task: Task, entries: dict[str, list[str]] | None) -> None:
        """The <loc>s of a SITEMAP task (None: it could not be read). Its pages are
        offered like seeds (depth 0, parent = the sitemap) but through scope,
        --allow/--deny and robots.txt; the sitemaps of an index are read next."""
        for url in self._sitemaps.arrived(task, entries):
            self._offer_entry(url, task.url)

    def _offer_entry(self, url: str, sitemap: str) -> None:
        try:
            canonical = canonicalize(url) if is_http_url(url) else None
        except ValueError:
            canonical = None
        if canonical is None:
            self.skipped[SKIP_INVALID] += 1
            return
        self.offer(canonical, 0, parent=sitemap, fetch_url=wire_url(url))

    @property
    def sitemap_urls(self) -> int:
        """Page URLs the sitemaps gave (the summary counts them)."""
        return self._sitemaps.urls

    # -- redirects and slow-downs -------------------------------------------

    def redirect(self, task: Task, target: str, spent_ms: float) -> None:
        """Go on with a page that was handed out and answered a redirect to
        `target` (as linked): checked like a link (scope, robots.txt of the
        target's origin, fetched first if new), then fetched as the same page.
        A target that may not be fetched ends the page (see take_refused)."""
        hop = replace(task, fetch_url=target, hops=task.hops + 1, spent_ms=spent_ms, retries=0)
        try:
            canonical_host = host_of(canonicalize(target))
        except ValueError:
            canonical_host = ""
        if hop.hops > MAX_REDIRECTS:
            self._refuse(hop, errors.TOO_MANY_REDIRECTS)
        elif not host_in_scope(canonical_host, self.allowed_hosts):
            self._refuse(hop, errors.describe(errors.OFFSITE_REDIRECT, target))
        elif not self._redirect_passes(target):  # scrapy/scrapy#1744: Scrapy misses this one
            self._refuse(hop, errors.describe(errors.FILTERED_REDIRECT, f"{target} (--allow/--deny)"))
        else:
            self._enter(hop)

    def _redirect_passes(self, target: str) -> bool:
        try:
            return self.url_filter.passes(canonicalize(target))
        except ValueError:
            return True  # not a URL we can read: the fetch says so

    def retry_later(self, task: Task, now: float, retry_after: float | None) -> float:
        """A page answered 429 or 503: slow its host down and send it again
        when the host may be asked again. The pause, in seconds."""
        pause = self.slow_down(host_of(task.target), now, retry_after)
        self._waiting[task.url] = retried = replace(task, retries=task.retries + 1)
        self._politeness.push(retried)
        return pause

    def slow_down(self, host: str, now: float, retry_after: float | None) -> float:
        """No new request to `host` before its Retry-After (capped), or a growing pause."""
        return self._politeness.slow_down(host, now, retry_after)

    def speed_up(self, host: str) -> None:
        """A success: the next pause without Retry-After is shorter again."""
        self._politeness.speed_up(host)

    @property
    def slowed(self) -> Counter[str]:
        """Host -> slow-downs (429 or 503)."""
        return self._politeness.slowed

    # -- handing out tasks -----------------------------------------------

    def next_ready(self, now: float) -> Task | None:
        """The next task that may start at `now`, or None (nothing ready yet)."""
        self._release()
        if self._robots_tasks:
            return self._robots_tasks.popleft()
        if self._sitemaps.ready:  # few, and their pages come next: not held back by politeness
            return self._sitemaps.ready.popleft()
        level = self.current_level()
        if level is None:
            return None
        task = self._politeness.start_next(now, level + 1, self._is_stale)
        if task is None:
            return None
        if task.first_try and self.max_pages is None:
            self.admitted += 1
        del self._waiting[task.url]
        return task

    def current_level(self) -> int | None:
        """The lowest depth with open tasks: this depth and the next are handed out."""
        return min(self._open_by_depth) if self._open_by_depth else None

    def release(self, task: Task, now: float) -> None:
        """A task handed out by next_ready() is back: its host's slot is free again."""
        if task.kind == PAGE:
            self._politeness.release(task, now)

    def done(self, task: Task, now: float) -> None:
        """A task handed out by next_ready() has its final result (at `now`)."""
        self.release(task, now)
        if task.kind == PAGE:
            self._close(task.depth)

    def _close(self, depth: int) -> None:
        self._open_by_depth[depth] -= 1
        if self._open_by_depth[depth] <= 0:
            del self._open_by_depth[depth]

    def has_pending(self) -> bool:
        """True while any task waits for robots, a slot, or is handed out."""
        return bool(self._robots_tasks or self._sitemaps.ready or self._open_by_depth or self._held
                    or self._releasing)  # fmt: skip
