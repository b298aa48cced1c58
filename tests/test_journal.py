"""The JSONL output (scraper/journal.py) when the disk fills up part-way through a batch."""

from __future__ import annotations

import errno
import os

import pytest

from scraper import journal
from scraper.journal import Journal, OutputError, read_records


def full_disk_after(room: int):
    """A _write_all for a disk with `room` bytes free: it writes what fits, then fails."""

    def write_all(fd: int, data: bytes) -> None:
        os.write(fd, data[:room])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return write_all


def records(count: int) -> list[dict[str, object]]:
    return [{"url": f"http://127.0.0.1/{n}", "status": 200} for n in range(count)]


@pytest.mark.parametrize("room", [0, 1, 40, 75, 150, 10_000])
def test_a_batch_that_fills_the_disk_keeps_its_whole_lines(tmp_path, monkeypatch, room):
    path = tmp_path / "out.jsonl"
    output = Journal(str(path))
    output.write(records(2))
    before = path.stat().st_size
    line = len(journal.encode(records(1)[0]).encode())
    monkeypatch.setattr(journal, "_write_all", full_disk_after(room))
    with pytest.raises(OutputError, match="No space left on device"):
        output.write(records(5))
    output.close()
    kept = list(read_records(str(path)))
    assert path.read_bytes().endswith(b"\n")
    assert len(kept) == 2 + min(5, room // line)
    assert path.stat().st_size == before + min(5, room // line) * line
    assert output.broken


def test_a_broken_output_writes_nothing_more(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    output = Journal(str(path))
    monkeypatch.setattr(journal, "_write_all", full_disk_after(0))
    with pytest.raises(OutputError):
        output.write(records(1))
    monkeypatch.undo()
    output.write(records(3))
    output.close()
    assert path.read_bytes() == b""
