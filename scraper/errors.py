"""Exceptions users can catch, and the error kinds that records carry."""

from __future__ import annotations

import logging
import os
import sys

# The log level of the command line, passed on to worker processes (which
# inherit the environment, also under spawn) so that -v shows their retries.
LOG_LEVEL_VARIABLE = "SCRAPER_LOG_LEVEL"
LOG_FORMAT = "scraper: %(levelname)s: %(message)s"


def configure_logging(level: int | None = None) -> None:
    """Log to stderr at `level` (the command line's), or at the level the
    command line passed on in the environment (a worker process)."""
    if level is None:
        inherited = os.environ.get(LOG_LEVEL_VARIABLE, "")
        if not inherited.isdigit() or logging.root.handlers:
            return
        level = int(inherited)
    else:
        os.environ[LOG_LEVEL_VARIABLE] = str(level)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


class ScraperError(Exception):
    """Root of every exception this package raises on purpose."""


class UsageError(ScraperError, ValueError):
    """A bad option value or a bad argument: the CLI exits with status 2."""


class SeedFileError(UsageError):
    """The seed file cannot be read, or holds no valid seed."""


class CrawlInterrupted(ScraperError):
    """The crawl was stopped by SIGINT or SIGTERM; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


# Error kinds of records (the part of `error` before the colon).
TIMEOUT = "timeout"
CONNECTION = "connection"
TOO_LARGE = "too_large"
TOO_MANY_REDIRECTS = "too_many_redirects"
OFFSITE_REDIRECT = "offsite_redirect"
FILTERED_REDIRECT = "filtered_redirect"  # a redirect to a URL --allow/--deny refuse
TRUNCATED = "truncated"
PARSE = "parse"
WORKER_DIED = "worker_died"
INVALID_URL = "invalid_url"
ROBOTS_DISALLOWED = "robots_disallowed"  # a redirect into what robots.txt refuses
INTERNAL = "internal"


MAX_ERROR = 300  # characters of an error string: kind, colon, and the detail cut at a word


def describe(kind: str, detail: str | None = None) -> str:
    """`kind: detail` on one line, cut at a word to at most MAX_ERROR characters."""
    if not detail:
        return kind
    text = f"{kind}: {' '.join(detail.split())}"
    if len(text) <= MAX_ERROR:
        return text
    cut = text.rfind(" ", 0, MAX_ERROR - 1)
    return text[: cut if cut > len(kind) + 2 else MAX_ERROR - 1].rstrip() + "\u2026"


def http_error(status: int) -> str:
    """The error kind of a status that is neither 2xx nor a followed redirect (`http_404`)."""
    return f"http_{status}"


def error_kind(error: str | None) -> str | None:
    """`"timeout: read"` -> `"timeout"`; None stays None."""
    return None if error is None else error.split(":", 1)[0]
