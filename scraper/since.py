"""The re-crawl (--since OLD.jsonl): what the scheduler needs of the last crawl's output.

OLD is read once into a small entry per page: its validators (ETag,
Last-Modified), the SHA-256 of its body, and the byte offset of its line.
Nothing else is kept: the title, links... of a page the server says is
unchanged (304) are read back from OLD at that offset when the 304 arrives,
so a million-page OLD costs a few hundred bytes per page, not its size.

    fill():     conditional(task)  -> the task carries If-None-Match / If-Modified-Since
    complete(): settle(record)     -> a 304 gets the old record's content; a 200
                                      whose body has OLD's hash is `unchanged` too
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, BinaryIO, NamedTuple

from .errors import UsageError
from .records import PAGE, Task
from .urls import canonicalize

log = logging.getLogger(__name__)

# What a 304 record takes from the old one (SPEC 3.3).
KEPT_FIELDS = ("title", "description", "lang", "canonical", "links", "fields", "etag", "last_modified",
               "sha256")  # fmt: skip


class Entry(NamedTuple):
    """What is kept of one old record."""

    offset: int  # of its line in OLD
    etag: str | None
    last_modified: str | None
    sha256: bytes | None  # the digest: half the size of its hex form
    final_url: str | None  # where the validators came from, when not the URL itself (a redirect)


class Since:
    """The old crawl, read once; `close()` when the crawl ends."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"cannot read --since {path!r}: {exc.strerror or exc}") from None
        try:
            self.entries = self._read()
        except BaseException:
            self._file.close()
            raise

    def _read(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        offset = 0
        for number, line in enumerate(self._file, start=1):
            record = self._record(line, number)
            if record is not None:
                entry = _entry(record, offset)
                if entry is None:
                    entries.pop(record["url"], None)  # the latest record of a URL counts
                else:
                    entries[record["url"]] = entry
            offset += len(line)
        return entries

    def _record(self, line: bytes, number: int) -> dict[str, Any] | None:
        if not line.endswith(b"\n") or not line.strip():
            return None  # blank, or a torn last line (a killed crawl): as --resume reads it
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("url"), str) and _valid(record)):
            raise UsageError(f"--since {self.path!r}: line {number} is not a scraper record")
        return record

    def conditional(self, task: Task) -> Task:
        """`task` with the validators of its old record, when it requests what that record got."""
        entry = self.entries.get(task.url)
        if task.kind != PAGE or entry is None or not (entry.etag or entry.last_modified):
            return task
        if entry.final_url is None:
            if task.hops:
                return task  # the page redirects now; the validators were of the page itself
        elif not task.hops or _canonical(task.target) != entry.final_url:
            return task  # the old validators were of the redirect's last target
        return replace(task, if_none_match=entry.etag, if_modified_since=entry.last_modified)

    def settle(self, record: dict[str, Any]) -> None:
        """A page's record as it leaves the scheduler: `unchanged` and, for a 304, OLD's content."""
        entry = self.entries.get(record["url"])
        if entry is None:
            record["unchanged"] = False
            return
        if record["unchanged"]:  # a 304 (the worker set it)
            record.update(self._old_content(entry, record["url"]))
        elif record["ok"] and record["sha256"] is not None and entry.sha256 is not None:
            record["unchanged"] = bytes.fromhex(record["sha256"]) == entry.sha256

    def _old_content(self, entry: Entry, url: str) -> dict[str, Any]:
        """The old record's content, read back at its offset (OLD stays open: a
        file renamed over it does not matter; one rewritten in place does)."""
        try:
            self._file.seek(entry.offset)
            old = json.loads(self._file.readline())
        except (OSError, ValueError) as exc:
            old = {"error": str(exc)}
        if not isinstance(old, dict) or old.get("url") != url:
            log.warning("%s changed during the crawl: the old content of %s is lost", self.path, url)
            return {}
        return {name: old.get(name) for name in KEPT_FIELDS if name in old}

    def close(self) -> None:
        self._file.close()


def _valid(record: dict[str, Any]) -> bool:
    strings = all(isinstance(record.get(name), (str, type(None))) for name in ("etag", "last_modified"))
    sha = record.get("sha256")
    return strings and (sha is None or isinstance(sha, str) and len(sha) == 64)


def _entry(record: dict[str, Any], offset: int) -> Entry | None:
    """The entry of a page that was fetched (ok); None for a failed one."""
    if not record.get("ok"):
        return None
    etag, modified, sha = record.get("etag"), record.get("last_modified"), record.get("sha256")
    if not (etag or modified or sha):
        return None  # nothing to ask or compare with
    try:
        digest = bytes.fromhex(sha) if sha else None
    except ValueError:
        digest = None
    final = record.get("final_url")
    return Entry(offset, etag, modified, digest, final if final != record["url"] else None)


def _canonical(url: str) -> str:
    try:
        return canonicalize(url)
    except ValueError:
        return url
