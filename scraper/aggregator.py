"""The aggregator role: the one reader of the results.

It appends page records to a shared list (the batch buffer of the journal),
counts them, writes them as JSONL, and returns the results so that the
crawl can hand their links back to the scheduler.
"""

from __future__ import annotations

from typing import Any

from .journal import Journal
from .records import PAGE, Result
from .stats import CrawlStats


class Aggregator:
    def __init__(self, results: Any, stats: CrawlStats, journal: Journal | None = None) -> None:
        self.results = results
        self.stats = stats
        self.journal = journal
        self.records: list[dict[str, Any]] = []  # the shared list: records not yet written

    def drain(self, timeout: float) -> list[Result]:
        """Results available now (waiting up to `timeout` for the first one)."""
        return self.results.receive(timeout)

    def add(self, result: Result) -> None:
        """Keep a page record for the next flush."""
        assert result.task.kind == PAGE
        self.records.append(result.record)
        self.stats.count(result.record)

    def flush(self) -> None:
        """Write the shared list to the journal and empty it."""
        if self.journal is not None and self.records:
            self.journal.write(self.records)
        self.records.clear()

    def close(self) -> None:
        self.flush()
        if self.journal is not None:
            self.journal.close()
