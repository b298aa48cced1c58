"""Crawl counters and the end-of-run summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .errors import error_kind

MAX_DETAILS = 1000  # distinct error strings counted (their number is unbounded)


@dataclass
class CrawlStats:
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)  # whole error strings, for "nothing succeeded"
    skipped: Counter[str] = field(default_factory=Counter)
    slowed: Counter[str] = field(default_factory=Counter)  # host -> 429/503 slow-downs
    waited: float = 0.0  # seconds spent waiting for a first worker: not counted in the rate
    worker_failures: int = 0  # workers that died or hung (each restarted the pool)
    resumed: int = 0  # pages already in the output when the crawl resumed
    sitemap_urls: int = 0  # page URLs the sitemaps gave (--sitemaps), scheduled or not
    unchanged: int = 0  # --since: pages found unchanged (304, or the same body)
    interrupted: bool = False

    def count(self, record: dict[str, Any]) -> None:
        kind = error_kind(record["error"])
        if kind is None:
            self.ok += 1
            self.unchanged += bool(record.get("unchanged"))
        else:
            self.errors[kind] += 1
            if len(self.details) < MAX_DETAILS or record["error"] in self.details:
                self.details[record["error"]] += 1

    def finish(self) -> None:
        self.finished = time.monotonic()

    @property
    def duration(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def pages(self) -> int:
        """Pages recorded: ok or not."""
        return self.ok + sum(self.errors.values())

    @property
    def pages_per_second(self) -> float:
        working = self.duration - self.waited
        return self.pages / working if working > 0 else 0.0

    def summary(self) -> str:
        """A few lines for stderr: pages, errors by kind, skips, rate and time."""
        lines = [
            f"{plural(self.pages, 'page')} in {self.duration:.2f} s ({self.pages_per_second:.1f} pages/s): "
            f"{self.ok} ok, {plural(sum(self.errors.values()), 'error')}"
            + (" (interrupted)" if self.interrupted else "")
        ]
        if self.errors:
            lines.append("errors: " + _by_count(self.errors))
        if self.skipped:
            lines.append("not scheduled: " + _by_count(self.skipped))
        if self.slowed:
            lines.append("slowed down (429/503): " + _by_count(self.slowed))
        if self.sitemap_urls:
            lines.append(f"sitemaps: {self.sitemap_urls} URLs given")
        if self.unchanged:
            lines.append(f"unchanged since the last crawl: {self.unchanged} pages")
        if self.resumed:
            lines.append(f"resumed: {plural(self.resumed, 'page')} already recorded")
        if self.worker_failures:
            lines.append(f"worker failures (died or hung; workers restarted): {self.worker_failures}")
        return "\n".join(lines + self.nothing_succeeded())

    def nothing_succeeded(self) -> list[str]:
        """Lines that say so when no page succeeded, and the most common reason."""
        if self.ok or self.interrupted:
            return []
        if not self.pages:
            why = f": {self._most_common()[0]}" if self.details else ""
            return [f"scraper: nothing was crawled{why}"]
        error, count = self._most_common()
        share = "all" if count == self.pages else f"{count} of them"
        return [f"scraper: nothing succeeded: {plural(self.pages, 'page')} failed, {share} with {error}"]


    def _most_common(self) -> tuple[str, int]:
        """The most common error string (the first in sort order on a tie: the same every run)."""
        return min(self.details.items(), key=lambda item: (-item[1], item[0]))


def plural(n: int, noun: str) -> str:
    """`1 page`, `2 pages`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _by_count(counter: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counter.most_common())
