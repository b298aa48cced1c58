"""The frontier: scheduling state, with the clock passed in.

It decides which URL goes next and which is never fetched: duplicates,
scope (allowed hosts), depth, max-pages and robots.txt. It owns the per-host
politeness (politeness.py: a minimum delay, a cap on requests in flight, the
pause after a 429 or 503) and the sitemaps to read (sitemaps.py). It never
touches a worker queue or the network, so it is tested without either.

Memory stays bounded however large the crawl grows (the store, store.py,
holds the rest on disk): the seen-set is a set of 64-bit fingerprints in
memory-mapped files (seen.py), the pages waiting are rows of the store, one
per (host, page that linked them), and only a window of them is in memory:
up to HOST_WINDOW tasks per host and WINDOW tasks in all, read back per
host, lowest depth then oldest first. A link is parsed once, by the worker
that found it (linkbatch.py): here a page's links cost a few vectorized
operations and one row, not work per link.

Breadth-first, one level ahead: with L the lowest depth of any page not yet
done, only pages of depth L and L+1 are handed out, lowest first. The links
of a page of depth L+1 (depth L+2) are held, whole, until level L is done:
by then every URL of depth L+1 is known, so a held link that is new has its
true depth. So `depth` is the true number of hops from a seed and a
depth-limited crawl gets the same pages every run, while the next level
keeps the workers busy as the stragglers of a level finish.

With max-pages, which pages are recorded must not depend on which answer
came first either: the first N pages in breadth-first order (depth, then
the order of the parents, then link order within a parent), the same on every
run and backend. So a level is held (in memory: at most the links of N pages)
until the level before it is done, sorted, and admitted in that order,
robots.txt first, until the budget is spent. The price is the overlap of
levels: the last pages of a level run alone.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from . import errors
from .linkbatch import LinkBatch, canonical_host, link_batch
from .numeric import np
from .politeness import Politeness
from .records import PAGE, ROBOTS, Task
from .robots import RobotsRules, product_token, rules_from_response
from .seen import as_fingerprints
from .sitemaps import Sitemaps
from .store import Chunk, HeldPage, Store
from .urls import canonicalize, host_of, is_http_url, origin_of, robots_url, wire_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10  # hops a page may take (each one is checked like a link)
HOST_WINDOW = 256  # tasks of one host read into memory at a time (at least one chunk)
WINDOW = 20_000  # tasks in memory in all, beyond which hosts wait for their turn
HELD_BATCH = 64  # held pages released per step (the rest at the next steps)
HOSTS_PER_FILL = 64  # hosts looked at per refill of the window

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

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)

    def passes(self, url: str) -> bool:
        if any(p.search(url) for p in self._deny):  # type: ignore[attr-defined]
            return False
        return not self.allow or any(p.search(url) for p in self._allow)  # type: ignore[attr-defined]


class Scope:
    """The allowed hosts and their subdomains: a set lookup of the host and of
    each of its parent domains (a.b.example.com, b.example.com, example.com)."""

    def __init__(self, allowed_hosts: tuple[str, ...]) -> None:
        self.allowed = frozenset(allowed_hosts)

    def __contains__(self, host: str) -> bool:
        while True:
            if host in self.allowed:
                return True
            dot = host.find(".")
            if dot < 0:
                return False
            host = host[dot + 1:]


class Ids:
    """The task ids: one counter for pages, robots.txt and sitemaps, kept in the store."""

    def __init__(self, first: int) -> None:
        self.next = first

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        return self.take(1)

    def take(self, count: int) -> int:
        """The first of `count` consecutive ids."""
        first = self.next
        self.next += count
        return first


@dataclass
class _Origin:
    """robots.txt state of one scheme://host:port."""

    rules: RobotsRules | None = None  # None while robots.txt is being fetched
    waiting: list[Task] = field(default_factory=list)


@dataclass
class _Loaded:
    """A chunk of the store read into the window: its pages not done yet."""

    chunk: Chunk
    open: int


class Frontier:
    """`queue_ahead`: tasks a host may have handed out beyond `per_host`, so
    that a worker finds its next task waiting. Only for workers that cannot
    run more than `per_host` requests at once anyway (all their fetch
    threads together): the cap on requests in flight still holds.
    `store`: where the frontier lives (None: a private one in memory)."""

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
        store: Store | None = None,
    ) -> None:
        self.allowed_hosts = allowed_hosts
        self.scope = Scope(allowed_hosts)
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.robots_token = product_token(user_agent)
        self.obey_robots = obey_robots
        self.url_filter = url_filter or UrlFilter()
        self.store = store or Store(None, fresh=True)
        self.skipped: Counter[str] = Counter()
        self.robots_failures: Counter[str] = Counter()  # why an origin's robots.txt was unavailable
        self.admitted = 0  # pages scheduled (the max-pages count)
        self._ids = Ids(self.store.get("next_id") or 1)
        self._politeness = Politeness(per_host=per_host, delay=delay, queue_ahead=queue_ahead)
        self._sitemaps = Sitemaps(self._ids, self._sitemap_in_scope)  # --sitemaps
        self._origins: dict[str, _Origin] = {}
        self._robots_tasks: list[Task] = []
        self._refused: list[tuple[Task, str]] = []  # redirect hops that may not go on
        # Pages not done, by depth: in the store, in the window or in flight (kept in the store).
        self._open_by_depth: Counter[int] = _by_depth(self.store.get("open"))
        # Pages whose links wait for their level, by the depth of the links.
        self._held_pages: Counter[int] = _by_depth(self.store.get("held"))
        # The window: hosts with chunks in the store, the read position of each, the chunks read.
        self._stocked: dict[str, None] = dict.fromkeys(self.store.hosts_waiting())  # in the order met
        self._deeper: dict[str, None] = {}  # hosts whose chunks are deeper than may be read yet
        self._cursor: dict[str, tuple[int, int]] = {}
        self._loaded: dict[int, _Loaded] = {}  # first id of a chunk -> the chunk
        self._loaded_ids: list[int] = []  # their first ids, sorted
        self._in_window = 0
        self._parked: Counter[str] = Counter()  # host -> tasks waiting for robots.txt
        self._done_before: set[str] = set()  # URLs recorded after the store's last commit (--resume)
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
        """Consider one canonical URL (to be requested as `fetch_url`, if given);
        False when it is rejected at once (counted in `skipped`).

        True means it passed de-duplication, depth, scope and --allow/--deny
        (seeds are exempt from the last: wpull#321), or waits for its level
        to be decided; robots.txt and max-pages decide when its origin's rules
        are known, maybe later.
        """
        as_linked = {url: fetch_url} if fetch_url and fetch_url != url else None
        return self.offer_links(link_batch([url], as_linked), depth, parent, seed=seed) > 0

    def offer_links(
        self, links: LinkBatch, depth: int, parent: str | None = None, parent_id: int = 0,
        seed: bool = False,
    ) -> int:
        """Consider the links of one page (at `depth`, found on `parent`, whose task
        id `parent_id` orders held pages); how many were taken or held."""
        if not len(links):
            return 0
        if depth > self.max_depth:
            self._count(SKIP_DEPTH, len(links))
            return 0
        if self.max_pages is None and not seed and self._too_deep_yet(depth):
            parent_id = parent_id or next(self._ids)
            self.store.hold(HeldPage(depth, parent_id, parent or "", list(links.urls), links.fingerprints,
                                     list(links.hosts), links.host_index, links.as_linked))  # fmt: skip
            self._held_pages[depth] += 1
            return len(links)
        candidates = self._in_scope(links, seed)
        new = self.store.seen.add_new(as_fingerprints(links.fingerprints)[candidates])
        fresh = candidates[new]
        duplicates = len(candidates) - len(fresh)
        if self.max_pages is not None:
            return self._hold_for_admission(links, candidates, new, depth, parent)
        self._count_duplicates(links, candidates[~new], duplicates)
        self._add_chunks(links, fresh, depth, parent)
        return len(fresh)

    def _too_deep_yet(self, depth: int) -> bool:
        """Links of `depth` wait while a page two levels up is not done (see the docstring)."""
        level = self.current_level()
        return level is not None and depth > level + 1

    def _in_scope(self, links: LinkBatch, seed: bool) -> np.ndarray:
        """Indices of the links on allowed hosts that pass --allow/--deny (seeds: all but scope)."""
        scope = self.scope
        allowed = [host in scope for host in links.hosts]
        if all(allowed):
            candidates = np.arange(len(links))
        else:
            inside = np.array(allowed, dtype=bool)[np.frombuffer(links.host_index, dtype="<u4")]
            candidates = np.flatnonzero(inside)
        self._count(SKIP_OFFSITE, len(links) - len(candidates))
        if self.url_filter and not seed and len(candidates):
            passes = np.fromiter((self.url_filter.passes(links.urls[i]) for i in candidates), dtype=bool,
                                 count=len(candidates))  # fmt: skip
            self._count(SKIP_FILTERED, len(candidates) - int(passes.sum()))
            candidates = candidates[passes]
        return candidates

    def _count_duplicates(self, links: LinkBatch, repeated: np.ndarray, count: int) -> None:
        if count and self._done_before:  # a page of an earlier run is no duplicate
            count -= sum(links.urls[i] in self._done_before for i in repeated)
        self._count(SKIP_DUPLICATE, count)

    def _count(self, reason: str, count: int) -> None:
        if count:
            self.skipped[reason] += count

    def _add_chunks(self, links: LinkBatch, fresh: np.ndarray, depth: int, parent: str | None) -> None:
        """The new links, one chunk per host, into the store."""
        if not len(fresh):
            return
        hosts = np.frombuffer(links.host_index, dtype="<u4")[fresh]
        groups = [fresh]
        if len(links.hosts) > 1:
            groups = [fresh[hosts == h] for h in dict.fromkeys(hosts.tolist())]
        for group in groups:
            indices = group.tolist()
            host = links.hosts[int(hosts[0])] if len(groups) == 1 else canonical_host(links.urls[indices[0]])
            urls = list(links.urls) if len(indices) == len(links) else [links.urls[i] for i in indices]
            wire = {}
            if links.as_linked:
                wire = {k: links.as_linked[i] for k, i in enumerate(indices) if i in links.as_linked}
            chunk = Chunk(host, depth, self._ids.take(len(urls)), parent, urls, wire)
            self.store.add_chunk(chunk)
            self._open_by_depth[depth] += len(urls)
            self._stocked[host] = None

    def mark_done(self, url: str) -> None:
        """Treat `url` as recorded by an earlier run (--resume): it counts, and never comes again."""
        batch = link_batch([url])
        if self.store.seen.add_new(as_fingerprints(batch.fingerprints))[0]:
            self.admitted += 1
        self._done_before.add(url)

    # -- max-pages: admission in breadth-first order ------------------------------

    def _hold_for_admission(self, links: LinkBatch, candidates: np.ndarray, new: np.ndarray, depth: int,
                            parent: str | None) -> int:  # fmt: skip
        """--max-pages: new links wait, in memory, for their level's admission."""
        taken = 0
        is_new = dict(zip(candidates.tolist(), new.tolist(), strict=True))
        for index, url in enumerate(links.urls):
            key = (self._position.get(parent, len(self._position)) if parent else -1, self._links_of[parent])
            self._links_of[parent] += 1
            fresh = is_new.get(index)
            if fresh is None:
                continue  # off-site or filtered: counted
            if not fresh:
                if self._held_earlier(url, key, parent):
                    taken += 1
                elif url not in self._done_before:
                    self.skipped[SKIP_DUPLICATE] += 1
                continue
            fetch_url = links.as_linked.get(index)
            task = Task(next(self._ids), url, depth, parent, fetch_url=fetch_url)
            self._held[depth][url] = (key, task)
            taken += 1
        return taken

    def _held_earlier(self, url: str, key: tuple[int, int], parent: str | None) -> bool:
        """A held page found again earlier in breadth-first order takes that place."""
        for level in self._held.values():
            held = level.get(url)
            if held is not None:
                self.skipped[SKIP_DUPLICATE] += 1
                if key < held[0]:
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
                self._open_by_depth[task.depth] += 1
                self._in_window += 1
                self._admit(task, origin.rules)  # skipped, and logged
            elif self.max_pages is not None and self.admitted >= self.max_pages:
                self.skipped[SKIP_MAX_PAGES] += 1
            else:
                self.admitted += 1
                self._position[task.url] = len(self._position)
                self._open_by_depth[task.depth] += 1
                self._in_window += 1
                self._politeness.push(task)
        self._releasing = []

    # -- held links and the window ---------------------------------------------

    def _release_held(self) -> None:
        """Offer the held links whose level may now be decided (a batch at a time)."""
        if not self._held_pages:
            return
        depth = min(self._held_pages)
        if self._too_deep_yet(depth):
            return
        pages = self.store.take_held(depth, HELD_BATCH)
        self._held_pages[depth] -= len(pages)
        if not pages or self._held_pages[depth] <= 0:
            del self._held_pages[depth]
        for page in pages:
            links = LinkBatch(tuple(page.urls), page.fingerprints, tuple(page.hosts), page.host_index,
                              page.wire)  # fmt: skip
            self.offer_links(links, page.depth, page.parent or None, page.parent_id)

    def _fill_window(self) -> None:
        """Read chunks of the hosts that run short, while the window has room.

        A few hosts a call, in turn (the first ones go to the back), so that a
        crawl of many hosts does not look at each of them on every call."""
        if not self._stocked or self._in_window >= WINDOW:
            return
        level = self.current_level()
        deepest = self.max_depth if level is None else level + 1
        for host in list(itertools.islice(self._stocked, HOSTS_PER_FILL)):
            if self._in_window >= WINDOW:
                break
            if self._waiting(host) < HOST_WINDOW // 2:
                self._load(host, deepest)
            if host in self._stocked:
                del self._stocked[host]
                self._stocked[host] = None

    def _waiting(self, host: str) -> int:
        """Tasks of `host` in the window: waiting for its slot or for robots.txt."""
        return self._politeness.waiting(host) + self._parked[host]

    def _load(self, host: str, deepest: int) -> None:
        """Read chunks of `host` until it has HOST_WINDOW tasks in memory (or none are left)."""
        waiting = self._waiting(host)
        limit = 4
        while waiting < HOST_WINDOW:
            chunks = self.store.chunks(host, self._cursor.get(host, (-1, -1)), deepest, limit)
            if chunks:
                self._cursor[host] = (chunks[-1].depth, chunks[-1].seq)
                done = self.store.done_between(chunks[0].seq, chunks[-1].seq + len(chunks[-1].urls))
                for chunk in chunks:
                    waiting += self._enter_chunk(chunk, done)
            if len(chunks) < limit:
                del self._stocked[host]
                self._deeper[host] = None  # may have chunks of a depth not handed out yet
                return
            limit = min(4 * limit, HOST_WINDOW)  # small chunks (a page's few new links): read more at once

    def _enter_chunk(self, chunk: Chunk, done: set[int]) -> int:
        loaded = _Loaded(chunk, len(chunk.urls))
        self._loaded[chunk.seq] = loaded
        bisect.insort(self._loaded_ids, chunk.seq)
        entered = 0
        for index, url in enumerate(chunk.urls):
            task_id = chunk.seq + index
            if task_id in done or url in self._done_before:
                self._finish_chunk_page(task_id, count=task_id not in done)
                continue
            task = Task(task_id, url, chunk.depth, chunk.parent, fetch_url=chunk.wire.get(index))
            self._in_window += 1
            entered += 1
            self._enter(task)
        return entered

    def _level_advanced(self) -> None:
        """The lowest open depth went up: deeper chunks may be read."""
        self._stocked.update(self._deeper)
        self._deeper = {}

    # -- robots.txt and admission -------------------------------------------------

    def _enter(self, task: Task) -> None:
        """Let `task` wait for its origin's robots.txt, or for its host's slot."""
        origin = self._origin(task.target)
        if origin.rules is None:
            origin.waiting.append(task)
            self._parked[host_of(task.target)] += 1
        else:
            self._admit(task, origin.rules)

    def ask_robots(self, url: str) -> None:
        """Ask for robots.txt of `url`'s origin now, if it is not known or asked for yet."""
        self._origin(url)

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
        self._in_window -= 1
        self._finish(task)

    def _refuse(self, task: Task, error: str) -> None:
        """A page whose next hop may not be fetched: it ends with `error`."""
        self._in_window -= 1
        self._finish(task)
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
            self._parked[host_of(page.target)] -= 1
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
        if host_of(url) in self.scope:
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
        self._in_window += 1
        try:
            canonical = canonicalize(target)
        except ValueError:
            canonical = None
        if hop.hops > MAX_REDIRECTS:
            self._refuse(hop, errors.TOO_MANY_REDIRECTS)
        elif canonical is None or host_of(canonical) not in self.scope:
            self._refuse(hop, errors.describe(errors.OFFSITE_REDIRECT, target))
        elif not self.url_filter.passes(canonical):  # scrapy/scrapy#1744: Scrapy misses this one
            self._refuse(hop, errors.describe(errors.FILTERED_REDIRECT, f"{target} (--allow/--deny)"))
        else:
            self._enter(hop)

    def retry_later(self, task: Task, now: float, retry_after: float | None) -> float:
        """A page answered 429 or 503: slow its host down and send it again
        when the host may be asked again. The pause, in seconds."""
        pause = self.slow_down(host_of(task.target), now, retry_after)
        self._in_window += 1
        self._politeness.push(replace(task, retries=task.retries + 1))
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
        self._release_held()
        if not self._in_window:
            self._fill_window()
        if self._robots_tasks:
            return self._robots_tasks.pop(0)
        if self._sitemaps.ready:  # few, and their pages come next: not held back by politeness
            return self._sitemaps.ready.popleft()
        level = self.current_level()
        if level is None:
            return None
        task = self._politeness.start_next(now, level + 1)
        if task is None and self._stocked:  # the hosts that run short read more, then try again
            self._fill_window()
            task = self._politeness.start_next(now, level + 1)
        if task is None:
            return None
        self._in_window -= 1
        if task.first_try and self.max_pages is None:
            self.admitted += 1
        return task

    def next_start(self) -> float | None:
        """When next_ready() may give a task that waits for its host (a time, maybe
        past), or None when no task waits for a time to come."""
        level = self.current_level()
        return None if level is None else self._politeness.next_start(level + 1)

    def current_level(self) -> int | None:
        """The lowest depth with open pages: this depth and the next are handed out."""
        return min(self._open_by_depth) if self._open_by_depth else None

    def release(self, task: Task, now: float) -> None:
        """A task handed out by next_ready() is back: its host's slot is free again."""
        if task.kind == PAGE:
            self._politeness.release(task, now)

    def done(self, task: Task, now: float) -> None:
        """A task handed out by next_ready() has its final result (at `now`)."""
        self.release(task, now)
        if task.kind == PAGE:
            self._finish(task)

    def _finish(self, task: Task) -> None:
        """A page is settled (recorded or skipped): it never comes again."""
        level = self.current_level()
        self._open_by_depth[task.depth] -= 1
        if self._open_by_depth[task.depth] <= 0:
            del self._open_by_depth[task.depth]
        self._finish_chunk_page(task.id)
        if self.current_level() != level:
            self._level_advanced()

    def _finish_chunk_page(self, task_id: int, count: bool = False) -> None:
        """The store learns that a page of a chunk is done; a chunk all done goes.
        `count`: a page recorded after the store's last commit (its depth is still open)."""
        where = bisect.bisect_right(self._loaded_ids, task_id) - 1
        if where < 0:
            return
        loaded = self._loaded.get(self._loaded_ids[where])
        chunk = loaded.chunk if loaded else None
        if loaded is None or chunk is None or task_id >= chunk.seq + len(chunk.urls):
            return  # not from a chunk (--max-pages admits in memory)
        if count:
            self._open_by_depth[chunk.depth] -= 1
            if self._open_by_depth[chunk.depth] <= 0:
                del self._open_by_depth[chunk.depth]
        loaded.open -= 1
        if loaded.open > 0:
            self.store.page_done(task_id)
            return
        self.store.chunk_done(chunk.seq, len(chunk.urls))
        del self._loaded[chunk.seq]
        del self._loaded_ids[where]

    def has_pending(self) -> bool:
        """True while any task waits for robots, a slot, or is handed out."""
        return bool(self._robots_tasks or self._sitemaps.ready or self._open_by_depth or self._held
                    or self._releasing or self._held_pages)  # fmt: skip

    # -- the store -------------------------------------------------------------

    def commit(self, journal_offset: int, done_pages: int) -> None:
        """Make the frontier durable as it is now: the output holds every page
        settled so far, `done_pages`, up to `journal_offset` bytes (synced)."""
        self.store.commit({
            "next_id": self._ids.next, "open": {str(k): v for k, v in self._open_by_depth.items()},
            "held": {str(k): v for k, v in self._held_pages.items()}, "journal_offset": journal_offset,
            "done_pages": done_pages,
        })  # fmt: skip


def _by_depth(saved: dict[str, int] | None) -> Counter[int]:
    """A per-depth count as the store keeps it (JSON: string keys)."""
    return Counter({int(depth): count for depth, count in (saved or {}).items()})
