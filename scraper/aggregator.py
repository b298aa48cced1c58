"""The aggregator role: the one reader of the results.

It appends page records to a shared list (the batch buffer of the journal),
counts them, writes them as JSONL, and returns the results so that the
crawl can hand their links back to the scheduler.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .journal import Journal
from .records import PAGE, Result
from .stats import CrawlStats

log = logging.getLogger(__name__)

# Seconds between two writes of the shared list: one write (and one flush to
# the OS) per batch keeps the parent cheap; a crash loses at most this much
# output, which --resume fetches again.
FLUSH_EVERY = 0.1


class Aggregator:
    def __init__(self, stats: CrawlStats, journal: Journal | None = None) -> None:
        self.stats = stats
        self.journal = journal
        self.records: list[dict[str, Any]] = []  # the shared list: records not yet written
        self._last_flush = time.monotonic()

    def add(self, result: Result) -> None:
        """Keep a page record for the next flush."""
        assert result.task.kind == PAGE
        record = result.record
        self.records.append(record)
        self.stats.count(record)
        if record["error"]:
            log.info("failed: %s: %s", record["url"], record["error"])
        else:
            log.debug("fetched: %s (%s, %d bytes)", record["url"], record["status"], record["bytes"])

    def flush(self, force: bool = True) -> list[dict[str, Any]]:
        """Write the shared list to the journal and empty it; the records written.

        Unless `force`, only once FLUSH_EVERY has passed since the last write.
        """
        now = time.monotonic()
        if not self.records or (not force and now - self._last_flush < FLUSH_EVERY):
            return []
        if self.journal is not None:
            self.journal.write(self.records)
        written, self.records = self.records, []
        self._last_flush = now
        return written

    def close(self) -> None:
        self.flush()
        if self.journal is not None:
            self.journal.close()
