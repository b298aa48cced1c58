"""The JSONL journal: one line per record, flushed in batches, fsynced on a cadence.

The output file is also the journal `--resume` reads: every line is a page
that is done. A crash can tear only the last line, which is cut off before
anything is appended again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import ScraperError, UsageError

log = logging.getLogger(__name__)

FSYNC_EVERY = 2.0  # seconds: at most this much output is lost on power failure
_TAIL_CHUNK = 64 * 1024


def encode(record: dict[str, Any]) -> str:
    """One JSON line (UTF-8 text, no ASCII escaping)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


STDOUT = "-"  # the output name of standard output (as Scrapy's and curl's `-o -`)


class OutputError(ScraperError):
    """The output could not be written (disk full, a closed pipe): the crawl ends.

    What was written before stays whole lines, so --resume continues from it.
    `closed_pipe` is true when the reader went away (`| head`).
    """

    def __init__(self, path: str, exc: OSError) -> None:
        name = "standard output" if path == STDOUT else repr(path)
        super().__init__(f"cannot write the output {name}: {exc.strerror or exc}")
        self.closed_pipe = isinstance(exc, BrokenPipeError)


class Journal:
    """Appends to a JSONL file, a pipe or a device (with overwrite, once `start()` has emptied it).

    Lines go straight to the file descriptor (no buffer that a failed write
    would leave half-full); only a regular file is fsynced or repaired.
    """

    def __init__(self, path: str, overwrite: bool = False) -> None:
        self.path = path
        self.broken = False  # a write failed: nothing more is written
        self._fd = 1 if path == STDOUT else _open(path, overwrite)
        self.regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self._last_sync = time.monotonic()
        self._overwrite = overwrite

    def start(self) -> None:
        """The crawl has started: an overwritten output is emptied now, not when
        opened, so that a failed start (a usage error, Redis refusing) leaves it as it was."""
        if self._overwrite and self.regular:
            os.ftruncate(self._fd, 0)
        self._overwrite = False

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Write a batch of complete lines; OutputError if it cannot be written.

        A batch that fails part-way (a full disk) keeps the lines that were
        written whole and cuts off the torn one, so that resume goes on from there.
        """
        lines = [encode(record).encode("utf-8") for record in records]
        if not lines or self.broken:
            return
        start = os.lseek(self._fd, 0, os.SEEK_END) if self.regular else 0
        try:
            _write_all(self._fd, b"".join(lines))
        except OSError as exc:
            self.broken = True
            if self.regular:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start + _whole_lines(lines, os.fstat(self._fd).st_size - start))
            raise OutputError(self.path, exc) from None
        if time.monotonic() - self._last_sync >= FSYNC_EVERY:
            self.sync()

    def size(self) -> int:
        """Bytes in the file (0 for a pipe or a device)."""
        return os.fstat(self._fd).st_size if self.regular and not self.closed else 0

    def sync(self) -> None:
        """Ask the OS to put what was written on disk (a pipe or device has no disk)."""
        if self.regular and not self.broken:
            os.fsync(self._fd)
        self._last_sync = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.sync()
        finally:
            if self._fd != 1:
                os.close(self._fd)
            self._fd = -1


def _open(path: str, overwrite: bool) -> int:
    try:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if not overwrite and os.path.isfile(path):
            repair_tail(path)  # never glue a new record onto a torn one
        # An overwritten file is emptied by start(); every write goes to its end.
        flags = os.O_WRONLY | os.O_CREAT | (0 if overwrite else os.O_APPEND)
        return os.open(path, flags, 0o666)
    except OSError as exc:
        raise UsageError(f"cannot write the output {path!r}: {exc.strerror or exc}") from None


def _whole_lines(lines: list[bytes], written: int) -> int:
    """Bytes of the leading lines that fit whole in the first `written` bytes."""
    kept = 0
    for line in lines:
        if kept + len(line) > written:
            break
        kept += len(line)
    return kept


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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


def read_records(path: str, offset: int = 0) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file from byte `offset` on (the start of a line);
    lines that are not JSON objects are skipped."""
    try:
        file = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return
    with file:
        file.seek(offset)
        for number, line in enumerate(file, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("url"), str):
                yield record
            elif line.strip():
                log.warning("%s: line %d is not a record; ignored", path, number)
