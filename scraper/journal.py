"""The JSONL journal: one line per record, flushed in batches, fsynced on a cadence.

The output file is also the journal `--resume` reads: every line is a page
that is done. A crash can tear only the last line, which is cut off before
anything is appended again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import UsageError

log = logging.getLogger(__name__)

FSYNC_EVERY = 2.0  # seconds: at most this much output is lost on power failure
_TAIL_CHUNK = 64 * 1024


def encode(record: dict[str, Any]) -> str:
    """One JSON line (UTF-8 text, no ASCII escaping)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


class Journal:
    """Appends (or, with overwrite, truncates first) a JSONL file."""

    def __init__(self, path: str, overwrite: bool = False) -> None:
        self.path = path
        try:
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            if not overwrite:
                repair_tail(path)  # never glue a new record onto a torn one
            self._file = open(path, "w" if overwrite else "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write the output {path!r}: {exc.strerror or exc}") from None
        self._last_sync = time.monotonic()

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Write a batch: complete lines in one write, then flush to the OS."""
        text = "".join(encode(record) for record in records)
        if not text:
            return
        self._file.write(text)
        self._file.flush()
        if time.monotonic() - self._last_sync >= FSYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._file.fileno())
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        self.sync()
        self._file.close()


def repair_tail(path: str) -> int:
    """Cut a torn last line (a crash in the middle of a write); the bytes removed."""
    try:
        file = open(path, "rb+")  # noqa: SIM115
    except FileNotFoundError:
        return 0
    with file:
        size = end = file.seek(0, os.SEEK_END)
        cut = 0
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            file.seek(start)
            newline = file.read(end - start).rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            end = start
        if cut < size:
            file.truncate(cut)
            log.warning("%s: removed a torn last line (%d bytes)", path, size - cut)
        return size - cut


def read_records(path: str) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file; lines that are not JSON objects are skipped."""
    try:
        file = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return
    with file:
        for number, line in enumerate(file, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("url"), str):
                yield record
            elif line.strip():
                log.warning("%s: line %d is not a record; ignored", path, number)
