"""The messages between the roles: Task (scheduler -> fetcher), Result and record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

PAGE = "page"
ROBOTS = "robots"

RECORD_FIELDS = (
    "url", "final_url", "status", "ok", "error", "depth", "parent", "fetched_at",
    "elapsed_ms", "parse_ms", "content_type", "bytes", "title", "description",
    "lang", "canonical", "links", "fields", "worker",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Task:
    """One URL to fetch. `kind` is PAGE, or ROBOTS for a host's robots.txt."""

    id: int
    url: str
    depth: int = 0
    parent: str | None = None
    kind: str = PAGE
    attempt: int = 0  # > 0 when retried after its worker died

    def __reduce__(self) -> tuple:  # twice as fast as a slotted dataclass's default
        return (Task, (self.id, self.url, self.depth, self.parent, self.kind, self.attempt))


@dataclass(slots=True)
class Result:
    """What a fetcher sends back: the task, its record, robots.txt text if any."""

    task: Task
    record: dict[str, Any]
    robots_txt: str | None = None
    cpu_ms: float = 0.0  # CPU the fetch thread spent on the task (fetch + parse)...
    wall_ms: float = 0.0  # ...out of this much time

    def __reduce__(self) -> tuple:
        return (Result, (self.task, self.record, self.robots_txt, self.cpu_ms, self.wall_ms))


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
    }


def failed_record(task: Task, worker: str, error: str) -> dict[str, Any]:
    """A record for a task that produced no response (e.g. its worker died)."""
    record = new_record(task, worker)
    record["error"] = error
    return record
