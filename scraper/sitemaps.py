"""The sitemaps of the seed origins (--sitemaps, SPEC 3.2): pure state.

Which sitemaps to read, each once: those that an origin's robots.txt names
on its Sitemap: lines (else /sitemap.xml), then the sitemaps of an index,
not nested too deep. The frontier owns one `Sitemaps`: it says when an
origin's robots.txt is known, hands out the SITEMAP tasks and offers the
page URLs they give like seeds. Like the frontier, it never touches a
worker queue or the network.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from urllib.parse import urljoin

from .records import SITEMAP, Task
from .robots import RobotsRules
from .urls import canonicalize, is_http_url, wire_url

# Sitemap indexes are not meant to nest (sitemaps.org); a little nesting is
# read, a chain of indexes (a trap) is not followed further than this.
MAX_SITEMAP_NESTING = 2


class Sitemaps:
    """`ids` numbers the tasks (the frontier's own counter); `in_scope` says
    whether a sitemap's canonical URL may be read (and counts those that may not)."""

    def __init__(self, ids: Iterator[int], in_scope: Callable[[str], bool]) -> None:
        self._ids = ids
        self._in_scope = in_scope
        self._origins: set[str] = set()  # seed origins whose sitemaps are read
        self._seen: set[str] = set()
        self.ready: deque[Task] = deque()  # SITEMAP tasks to hand out
        self.urls = 0  # page URLs the sitemaps gave (the summary counts them)

    def want(self, origin: str) -> bool:
        """Read the sitemaps of `origin` once its robots.txt is known; False if wanted already."""
        if origin in self._origins:
            return False
        self._origins.add(origin)
        return True

    def robots_known(self, origin: str, rules: RobotsRules) -> None:
        """The robots.txt of `origin` is known: its sitemaps are read, if wanted."""
        if origin not in self._origins or rules.unavailable:
            return  # unavailable: nothing of this origin is crawled (RFC 9309)
        named = [urljoin(origin + "/robots.txt", url) for url in rules.sitemaps()]
        fallback = origin + "/sitemap.xml"
        if not named and not rules.allowed(fallback):
            return
        for url in named or [fallback]:
            self._add(url, nesting=0, parent=None)

    def arrived(self, task: Task, entries: dict[str, list[str]] | None) -> list[str]:
        """The <loc>s of a SITEMAP task (None: it could not be read): the sitemaps
        of an index are read next; the page URLs are returned (absolute, as written)."""
        if entries is None:
            return []
        for url in entries.get("sitemaps", ()):
            self._add(urljoin(task.target, url), task.depth + 1, parent=task.url)
        pages = [urljoin(task.target, url) for url in entries.get("urls", ())]
        self.urls += len(pages)
        return pages

    def _add(self, url: str, nesting: int, parent: str | None) -> None:
        """A sitemap to read: within scope, once, not nested too deep."""
        try:
            canonical = canonicalize(url) if is_http_url(url) else None
        except ValueError:
            canonical = None
        if canonical is None or canonical in self._seen or nesting > MAX_SITEMAP_NESTING:
            return
        if not self._in_scope(canonical):
            return
        self._seen.add(canonical)
        fetch_url = wire_url(url)
        task = Task(next(self._ids), canonical, depth=nesting, parent=parent, kind=SITEMAP,
                    fetch_url=fetch_url if fetch_url != canonical else None)  # fmt: skip
        self.ready.append(task)
