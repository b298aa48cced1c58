"""The frontier's store on the crawl's disk: what is seen, waiting and done.

An SQLite database (WAL) and the seen-set's runs (seen.py), in one folder
beside the output (`OUT.frontier/`). It holds:

- `chunks`: the waiting pages, one row per (host, page that linked them):
  the new links of that page on that host, in document order. Read back per
  host, lowest depth then oldest first, into the frontier's in-memory window.
- `held`: links of pages two levels ahead, kept whole until the level before
  them is done (then their depths are exact: see Frontier).
- `hosts`: every host that had a chunk, so that a resume starts without a
  scan of the chunks.
- `done`: the ids of finished pages whose chunk still has pages waiting.
- `meta`: the id counter, the open pages per depth, the seen-set's runs, and
  `journal_offset`: how much of the output the store accounts for.

One commit (Store.commit) makes a consistent state, always after the journal
has been written and synced up to `journal_offset`: so the store never runs
ahead of the output. After a crash, the records past that offset are the
journal's tail, which `--resume` reconciles (crawl.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from typing import Any

from .errors import ScraperError
from .seen import SeenSet

SCHEMA_VERSION = 1
DATABASE = "frontier.sqlite"
STORE_SUFFIX = ".frontier"  # the store of OUT.jsonl is the folder OUT.jsonl.frontier
CACHE_KIB = 2048  # SQLite's own page cache: small and fixed; reads go through mmap
MMAP_BYTES = 1 << 40

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE chunks (
    seq INTEGER PRIMARY KEY, host TEXT NOT NULL, depth INTEGER NOT NULL,
    parent TEXT, links TEXT NOT NULL, wire TEXT);
CREATE INDEX chunks_by_host ON chunks (host, depth, seq);
CREATE TABLE hosts (host TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE held (
    depth INTEGER NOT NULL, parent_id INTEGER NOT NULL, parent TEXT NOT NULL, links TEXT NOT NULL,
    fingerprints BLOB NOT NULL, hosts TEXT NOT NULL, host_index BLOB NOT NULL, wire TEXT,
    PRIMARY KEY (depth, parent_id));
CREATE TABLE done (id INTEGER PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Waiting pages of one host found by one page: ids seq .. seq + len(urls) - 1."""

    host: str
    depth: int
    seq: int
    parent: str | None
    urls: list[str]
    wire: dict[int, str]


@dataclass(frozen=True, slots=True)
class HeldPage:
    """The links of one page, held until their depth is exact."""

    depth: int
    parent_id: int
    parent: str
    urls: list[str]
    fingerprints: bytes
    hosts: list[str]
    host_index: bytes
    wire: dict[int, str]


class StoreError(ScraperError):
    """The store cannot be used (another version's, damaged, or a full disk)."""


class Store:
    """The store of one crawl. `folder` None: in memory (tests); `private`: a
    temporary folder of a crawl with no output file, deleted when it ends."""

    def __init__(self, folder: str | None, fresh: bool, private: bool = False) -> None:
        self.folder = folder
        self.private = private
        self.broken = False  # a commit failed: nothing more is committed
        self._hosts: set[str] = set()  # the rows of `hosts`, once read
        self._done: list[tuple[int]] = []  # pages done since the last commit
        self._chunks_done: list[tuple[int, int]] = []  # chunks done since then: (first id, last id)
        if folder is not None and fresh:
            remove(folder)
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
        path = ":memory:" if folder is None else os.path.join(folder, DATABASE)
        existed = folder is not None and os.path.exists(path)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        if folder is not None:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")  # once a second: the runs' files depend on it
            self.db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        if not existed:
            self.db.executescript(_SCHEMA)
            self._set("version", SCHEMA_VERSION)
        elif self.get("version") != SCHEMA_VERSION:
            raise StoreError(f"{path} was written by another version of scraper")
        self.seen = SeenSet(folder, self.get("runs") or [])
        self._done_before = self.db.execute("SELECT 1 FROM done LIMIT 1").fetchone() is not None
        self.db.execute("BEGIN")

    # -- meta -------------------------------------------------------------

    def get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- waiting pages ----------------------------------------------------

    def add_chunk(self, chunk: Chunk) -> None:
        wire = json.dumps(chunk.wire) if chunk.wire else None
        row = (chunk.seq, chunk.host, chunk.depth, chunk.parent, "\n".join(chunk.urls), wire)
        self.db.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)", row)
        if chunk.host not in self._hosts:
            self.db.execute("INSERT OR IGNORE INTO hosts VALUES (?)", (chunk.host,))
            self._hosts.add(chunk.host)

    def chunks(self, host: str, after: tuple[int, int], max_depth: int, limit: int) -> list[Chunk]:
        """The next chunks of `host` after (depth, seq) `after`, up to depth `max_depth`."""
        rows = self.db.execute(
            "SELECT depth, seq, parent, links, wire FROM chunks WHERE host = ? AND depth <= ? "
            "AND (depth, seq) > (?, ?) ORDER BY depth, seq LIMIT ?",
            (host, max_depth, after[0], after[1], limit),
        ).fetchall()
        return [Chunk(host, depth, seq, parent, links.split("\n"), _int_keys(wire))
                for depth, seq, parent, links, wire in rows]  # fmt: skip

    def hosts_waiting(self) -> list[str]:
        """The hosts that had pages waiting (a resume reads one row per host, not per page)."""
        self._hosts = {host for (host,) in self.db.execute("SELECT host FROM hosts")}
        return sorted(self._hosts)

    def done_between(self, first: int, last: int) -> set[int]:
        """Ids from `first` to `last` of pages marked done by an earlier run (their
        chunks still had pages waiting); an empty set at once when there are none."""
        if not self._done_before:
            return set()
        rows = self.db.execute("SELECT id FROM done WHERE id BETWEEN ? AND ?", (first, last))
        return {page_id for (page_id,) in rows}

    def page_done(self, page_id: int) -> None:
        """A page of a chunk is done (written at the next commit)."""
        self._done.append((page_id,))

    def chunk_done(self, seq: int, size: int) -> None:
        """Every page of the chunk is done: it and its marks go (at the next commit)."""
        self._chunks_done.append((seq, seq + size - 1))

    # -- held pages -------------------------------------------------------

    def hold(self, page: HeldPage) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (page.depth, page.parent_id, page.parent, "\n".join(page.urls), page.fingerprints,
             "\n".join(page.hosts), page.host_index, json.dumps(page.wire) if page.wire else None),
        )  # fmt: skip

    def take_held(self, depth: int, limit: int) -> list[HeldPage]:
        """The first `limit` held pages of `depth`, by the order of their parents; removed."""
        rows = self.db.execute(
            "SELECT parent_id, parent, links, fingerprints, hosts, host_index, wire FROM held "
            "WHERE depth = ? ORDER BY parent_id LIMIT ?", (depth, limit)).fetchall()  # fmt: skip
        if rows:
            self.db.execute("DELETE FROM held WHERE depth = ? AND parent_id <= ?", (depth, rows[-1][0]))
        return [HeldPage(depth, parent_id, parent, links.split("\n"), prints, hosts.split("\n"), index,
                         _int_keys(wire))
                for parent_id, parent, links, prints, hosts, index, wire in rows]  # fmt: skip

    # -- commit -------------------------------------------------------------

    def commit(self, state: dict[str, Any]) -> None:
        """Make everything since the last commit durable, with `state` (meta values).

        A failure (a full disk) is a StoreError: the crawl ends, its output and the
        store's last commit stay valid, and --resume continues from there."""
        if self.broken:
            return
        try:
            self.db.executemany("INSERT OR IGNORE INTO done VALUES (?)", self._done)
            finished = [(first,) for first, _ in self._chunks_done]
            self.db.executemany("DELETE FROM chunks WHERE seq = ?", finished)
            self.db.executemany("DELETE FROM done WHERE id BETWEEN ? AND ?", self._chunks_done)
            self._done, self._chunks_done = [], []
            runs = self.seen.persist()
            for key, value in state.items():
                self._set(key, value)
            self._set("runs", runs)
            self.db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self.broken = True
            raise StoreError(f"cannot write the frontier store {self.folder!r}: {exc}") from None
        self.seen.committed()
        self.db.execute("BEGIN")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("ROLLBACK")
        self.db.close()


def resumable_offset(folder: str, journal_size: int) -> int | None:
    """Where in the output a resume from the store at `folder` continues, or None:
    no store there, another version's, or one that does not fit the output."""
    path = os.path.join(folder, DATABASE)
    if not os.path.isfile(path):
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('version', 'journal_offset')"))
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if json.loads(rows.get("version", "null")) != SCHEMA_VERSION or "journal_offset" not in rows:
        return None
    offset = json.loads(rows["journal_offset"])
    return offset if isinstance(offset, int) and 0 <= offset <= journal_size else None


def remove(folder: str | None) -> None:
    """Delete a store's folder (a new crawl starts a new frontier)."""
    if folder is not None and os.path.isdir(folder):
        shutil.rmtree(folder)


def _int_keys(wire: str | None) -> dict[int, str]:
    return {int(k): v for k, v in json.loads(wire).items()} if wire else {}
