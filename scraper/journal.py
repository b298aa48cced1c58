"""The JSONL journal: one line per record, flushed in batches, fsynced on a cadence."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from typing import Any

FSYNC_EVERY = 2.0  # seconds: at most this much output is lost on power failure


def encode(record: dict[str, Any]) -> str:
    """One JSON line (UTF-8 text, no ASCII escaping)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


class Journal:
    """Appends (or, with overwrite, truncates first) a JSONL file."""

    def __init__(self, path: str, overwrite: bool = False) -> None:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.path = path
        self._file = open(path, "w" if overwrite else "a", encoding="utf-8", newline="\n")  # noqa: SIM115
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
