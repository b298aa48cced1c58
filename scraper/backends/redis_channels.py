"""The channels of the redis backend's coordinator (backends/redis.py): tasks out
through `scraper:<id>:tasks`, results in from `scraper:<id>:results`.

Tasks wait until the crawl asks for results, then go out with the read of the
results in one pipeline: one round trip per turn of the crawl's loop. Results
are read from where the last read left off and trimmed TRIM_AFTER seconds
later, when the journal has them: what is left in the stream when the
coordinator dies is what `--resume` writes without fetching it again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from .. import wire
from ..records import PAGE, Result, Task
from .streams import BATCH, WarnOnce

TRIM_AFTER = 2.0  # seconds a result stays in its stream after it was read: the journal has it by then
READ_COUNT = 256  # results per XREAD
POLL = 0.002  # seconds between two reads of the results during a short wait (see receive)
BLOCK_FROM = 0.5  # seconds: a longer wait blocks in Redis (its 100 ms clock is then close enough)


class StreamTasks:
    """The task channel: XADD, pipelined by the batch the crawl puts at once."""

    def __init__(self, group: Any) -> None:  # the RedisGroup (redis.py), which owns the channels
        self.group = group
        self.waiting: list[bytes] = []

    def put(self, task: Task, alone: bool = False) -> None:
        message = wire.dump_task(task)
        if alone and self.group.isolate():
            self.group.write(("XADD", self.group.keys.isolated, "*", "m", message))
            return
        self.waiting.append(message)
        if len(self.waiting) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.waiting:
            self.group._call(lambda: self.queue_on(self.group.client.pipeline(transaction=False)).execute())
            self.sent()

    def queue_on(self, pipe: Any) -> Any:
        """The waiting tasks' XADDs on `pipe`, in one script that checks the lock is
        ours (redis_lock.py); the caller calls sent() once it ran (until then they
        stay, to go again after an outage)."""
        if self.waiting:
            key = self.group.keys.tasks
            self.group.lock.write(pipe, *(("XADD", key, "*", "m", message) for message in self.waiting))
        return pipe

    def sent(self) -> None:
        self.waiting = []

    def close(self) -> None:
        self.waiting = []


class StreamResults:
    """The result channel: XREAD from where it left off; entries trimmed TRIM_AFTER later."""

    def __init__(self, group: Any) -> None:  # the RedisGroup (redis.py), which owns the channels
        self.group = group
        self.last_id: bytes | str = "0"
        self.warn = WarnOnce()
        self.pages = 0  # page results received (for `scraper status`)
        self._read: deque[tuple[float, bytes | str]] = deque()  # (when, last id read then), for trimming
        self._trimmed = 0.0

    def receive(self, timeout: float) -> list[Result]:
        """The tasks the crawl put since the last call go out, and the results come
        back, in one round trip (XADDs, then an XREAD, in one pipeline).

        Redis ends a blocked XREAD on its own clock (`hz` 10: every 100 ms), so a
        BLOCK of 50 ms lasts 100: a short wait is a poll every POLL seconds instead,
        or the crawl would see a host become ready (--delay) up to 100 ms late."""
        deadline = time.monotonic() + timeout
        block = int(timeout * 1000) if timeout >= BLOCK_FROM else None
        found = self.group._call(lambda: self._exchange(block))
        self.group.tasks.sent()
        while not found and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(POLL, left))
            found = self.group._call(lambda: self._exchange(None))
        received = self._take(found)
        self.trim()
        return received

    def _exchange(self, block: int | None) -> Any:
        pipe = self.group.tasks.queue_on(self.group.client.pipeline(transaction=False))
        pipe.xread({self.group.keys.results: self.last_id}, count=READ_COUNT, block=block)
        return pipe.execute()[-1]

    def _take(self, found: Any) -> list[Result]:
        received = []
        for _, batch in found or ():
            for entry_id, fields in batch:
                self.last_id = entry_id
                result = self._load(fields)
                if result is not None:
                    received.append(result)
                    self.pages += result.task.kind == PAGE and result.redirect_to is None
        if found:
            self._read.append((time.monotonic(), self.last_id))
        return received

    def _load(self, fields: Mapping[bytes, bytes]) -> Result | None:
        try:
            return wire.load_result(fields[b"m"])
        except (wire.WireError, KeyError) as exc:
            self.warn("the result stream", exc if isinstance(exc, wire.WireError) else wire.WireError("no m"))
            return None

    def trim(self, everything: bool = False) -> None:
        """Drop results the journal has written (read TRIM_AFTER ago), once a second."""
        now = time.monotonic()
        if now - self._trimmed < 1.0 and not everything:
            return
        self._trimmed = now
        cutoff, upto = now - TRIM_AFTER, None
        while self._read and (everything or self._read[0][0] < cutoff):
            upto = self._read.popleft()[1]
        if upto is not None:
            minid = _next_id(upto)
            self.group.write(("XTRIM", self.group.keys.results, "MINID", minid))

    def read_all(self) -> list[Result]:
        """Every result still in the stream (an earlier coordinator's, for --resume)."""
        found = (self._load(fields) for fields in entries(self.group.client, self.group.keys.results, "-"))
        return [result for result in found if result is not None]

    def close(self) -> None:
        pass


def entries(client: Any, stream: str, start: str) -> Iterator[dict[bytes, bytes]]:
    """The fields of every entry of `stream` from `start` on, a thousand a read."""
    while True:
        page = client.xrange(stream, min=start, count=1000)
        for _, fields in page:
            yield fields
        if len(page) < 1000:
            return
        start = "(" + page[-1][0].decode()


def _next_id(entry_id: bytes | str) -> str:
    """The stream id just after `entry_id` (XTRIM MINID keeps ids >= it)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"
