"""The messages between the roles: WorkerSpec and Task (to the workers),
Result and its record (back). wire.py gives them a versioned JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .linkbatch import LinkBatch

PAGE = "page"
ROBOTS = "robots"
SITEMAP = "sitemap"  # --sitemaps: a urlset or a sitemap index, read by a worker, never a record
# Statuses by which a host asks for fewer requests: not retried by the fetch
# thread; the scheduler slows the host down for every worker and sends the
# page again (up to --retries).
SLOW_DOWN_STATUSES = frozenset({429, 503})

RECORD_FIELDS = (
    "url", "final_url", "status", "ok", "error", "depth", "parent", "fetched_at",
    "elapsed_ms", "parse_ms", "content_type", "bytes", "title", "description",
    "lang", "canonical", "links", "fields", "worker", "etag", "last_modified", "sha256",
    "unchanged", "warc",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Task:
    """One URL to fetch. `kind` is PAGE, ROBOTS for a host's robots.txt, or
    SITEMAP (its `depth` counts the sitemap indexes above it).

    `url` is the canonical form (the de-duplication key and the record's
    `url`); `fetch_url` is what goes on the wire when it differs: the URL as
    linked, or a redirect's target. A page keeps its `id` through redirect
    hops and retries; the other counters tell those hand-outs apart.
    """

    id: int
    url: str
    depth: int = 0
    parent: str | None = None
    kind: str = PAGE
    attempt: int = 0  # > 0 when retried after its worker died
    fetch_url: str | None = None
    hops: int = 0  # redirects followed to get here
    spent_ms: float = 0.0  # time the earlier hops took, out of the page's --timeout
    retries: int = 0  # times the scheduler sent it again after a 429 or 503
    # --since: validators of the old record, sent as If-None-Match / If-Modified-Since
    if_none_match: str | None = None
    if_modified_since: str | None = None

    @property
    def target(self) -> str:
        """The URL to request."""
        return self.fetch_url or self.url

    @property
    def validators(self) -> dict[str, str]:
        """The conditional request headers of a re-crawl (--since), if any."""
        headers = {"If-None-Match": self.if_none_match, "If-Modified-Since": self.if_modified_since}
        return {name: value for name, value in headers.items() if value}

    @property
    def first_try(self) -> bool:
        """Not a redirect hop nor a retry: counts as a new page (--max-pages)."""
        return not (self.hops or self.retries)

    def __reduce__(self) -> tuple:  # twice as fast as a slotted dataclass's default
        return (Task, (self.id, self.url, self.depth, self.parent, self.kind, self.attempt,
                       self.fetch_url, self.hops, self.spent_ms, self.retries,
                       self.if_none_match, self.if_modified_since))  # fmt: skip


@dataclass(slots=True)
class Result:
    """What a fetcher sends back: the task and its record, and what the scheduler needs."""

    task: Task
    record: dict[str, Any]
    robots_body: bytes | None = None  # robots.txt as received (ROBOTS tasks)
    cpu_ms: float = 0.0  # CPU the fetch thread spent on the task (fetch + parse)...
    wall_ms: float = 0.0  # ...out of this much time
    redirect_to: str | None = None  # a redirect's target, for the scheduler to check and follow
    retry_after: float | None = None  # seconds, from a 429 or 503
    links: LinkBatch | None = None  # the record's links, parsed for the frontier (linkbatch.py)
    # SITEMAP tasks: {"urls": [...], "sitemaps": [...]}, the <loc>s as listed (None: not read)
    sitemap: dict[str, list[str]] | None = None

    def __reduce__(self) -> tuple:
        return (Result, (self.task, self.record, self.robots_body, self.cpu_ms, self.wall_ms,
                         self.redirect_to, self.retry_after, self.links, self.sitemap))  # fmt: skip


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to fetch and parse, the same on every machine.

    `parse` is a callback by import name ("module:function"), so that a
    worker can resolve it wherever it runs; `threads` is the most fetch
    threads one worker process runs. `auth` (Basic) and the credential
    headers of `headers` (Authorization, Cookie) go only to `private_origins`:
    a worker decides per request, redirect hops included. `warc` is a folder
    on the worker's machine.
    """

    timeout: float
    max_bytes: int
    retries: int
    user_agent: str
    select: tuple[tuple[str, str], ...] = ()
    parse: str | None = None
    threads: int = 1
    # Issue 15. Headers and cookies may be secrets: not in the repr (logs).
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # -H
    cookies: tuple[tuple[str, str, str, str, bool], ...] = field(default=(), repr=False)  # cookies.CookieSpec
    auth: str | None = field(default=None, repr=False)  # "user:password", HTTP Basic
    private_origins: tuple[str, ...] = ()  # the seeds' origins: the only ones given credentials
    warc: str | None = None  # --warc: the folder each worker writes its own .warc.gz into, where it runs


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_record(task: Task, worker: str) -> dict[str, Any]:
    """A record of `task` with every field present, as if nothing was fetched."""
    return {
        "url": task.url,
        "final_url": None,
        "status": None,
        "ok": False,
        "error": None,
        "depth": task.depth,
        "parent": task.parent,
        "fetched_at": utc_now(),
        "elapsed_ms": 0.0,
        "parse_ms": 0.0,
        "content_type": None,
        "bytes": 0,
        "title": None,
        "description": None,
        "lang": None,
        "canonical": None,
        "links": [],
        "fields": {},
        "worker": worker,
        "etag": None,
        "last_modified": None,
        "sha256": None,
        "unchanged": False,
        "warc": None,
    }


def failed_record(task: Task, worker: str, error: str) -> dict[str, Any]:
    """A record for a task that produced no response (e.g. its worker died)."""
    record = new_record(task, worker)
    record["error"] = error
    return record
