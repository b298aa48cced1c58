"""The host loop: one worker process running fetch threads, the same for the process
backend's workers and the redis backend's (issue 21).

    main thread:  every 0.05 s  source.keep(board) -> threads wanted, or leave
                  source.take(idle threads [+ a batch ahead]) -> local queue -> fetch threads
    fetch thread: fetcher.worker_main over a HostContext: task -> result -> outbox; the
                  thread that finds no send under way sends the outbox: source.send(batch)

A backend brings only its transport, a `Source`: where tasks come from (`take`),
how a result travels (`pack`, `send`), what becomes of the tasks not begun
(`give_back`) and what the host is told (`keep`: the threads wanted, whether to
leave; a broker's heartbeat and renewals go there too). Nothing here knows which
backend runs it: imports go backends -> worker -> fetcher.

What a host shows (which task each fetch thread holds, since when, whether it
parses) is a `Board` over arrays the backend supplies: shared memory its parent
reads, or lists its heartbeat sends.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import MutableSequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from .backends.base import Activity
from .fetcher import worker_main
from .records import Result, Task, WorkerSpec

log = logging.getLogger(__name__)

IDLE = -1  # the task id a fetch thread without a task shows
LISTEN_EVERY = 0.05  # seconds between two calls of source.keep(); bounds how late a host sees a stop
TAKE_WAIT = 0.05  # seconds source.take() may wait for tasks
SHORT_TASK = 0.05  # seconds: tasks shorter than this (moving average) are read ahead
SEND_BY = 4  # results of short tasks are sent by this many, or when their thread has nothing left
SEND_MOST = 16  # results per source.send() at the most
FINISH_POLL = 0.02  # seconds between two looks at the running tasks while leaving

Handle = TypeVar("Handle")  # what a source knows a task it handed out by (a Redis entry id)


class Leave(Enum):
    """Why a host leaves, which decides what becomes of the tasks it holds."""

    GIVE_BACK = "give back"  # told to stop: what was not begun goes back, what runs finishes
    FINISH = "finish"  # the crawl ended: nothing to give back, what runs finishes
    NOW = "now"  # whoever started it takes care of every task it holds: leave at once


class Orders(NamedTuple):
    """What a source tells its host at each keep()."""

    wanted: int | None = None  # fetch threads wanted (None: as before)
    leave: Leave | None = None  # None: go on


@dataclass
class Board:
    """What each fetch thread of a host holds: the task's id (IDLE when none), when it
    took it and when its parse began (0.0 when not parsing), as time.monotonic (one
    clock per machine). Written without a lock, one value at a time, by the thread itself."""

    task: MutableSequence[int]
    took_at: MutableSequence[float]
    parsing_since: MutableSequence[float]

    @classmethod
    def of_lists(cls, threads: int) -> Board:
        return cls([IDLE] * threads, [0.0] * threads, [0.0] * threads)

    def began(self, index: int, task_id: int) -> None:
        self.took_at[index] = time.monotonic()
        self.task[index] = task_id  # last: a reader that sees the id sees its time

    def parsing(self, index: int, active: bool) -> None:
        self.parsing_since[index] = time.monotonic() if active else 0.0

    def done(self, index: int) -> float:
        """Seconds the thread held its task."""
        self.task[index] = IDLE
        return time.monotonic() - self.took_at[index]

    def read(self, worker: str, now: float) -> list[Activity]:
        # Copied once: the fetch threads go on writing them.
        rows = zip(list(self.task), list(self.took_at), list(self.parsing_since), strict=True)
        return [Activity(worker, task_id, now - took, now - parsing if parsing else None)
                for task_id, took, parsing in rows if task_id != IDLE]  # fmt: skip


class Source(Protocol[Handle]):
    """A backend's transport, as the host of one worker process uses it. pack() runs in
    the fetch thread of the result; send() in one thread at a time (a fetch thread, or
    the main thread while leaving); the others in the main thread."""

    read_ahead: int  # tasks read beyond the idle threads while tasks are short (0: never)

    def thread_name(self, index: int) -> str:
        """The name of fetch thread `index` (0-based): its records carry it."""

    def take(self, most: int, timeout: float) -> list[tuple[Handle, Task]]:
        """Up to `most` tasks, waiting up to `timeout` seconds for the first; [] when
        none came (or the source failed: the host then asks keep() at once)."""

    def pack(self, result: Result) -> bytes:
        """The result as it travels; raises if it cannot (the fetch loop then sends an error record)."""

    def send(self, batch: list[tuple[Handle, bytes]]) -> None:
        """Send packed results; their tasks are no longer held. OSError: the results
        can never arrive (the crawl is gone)."""

    def give_back(self, taken: list[tuple[Handle, Task]]) -> None:
        """Tasks taken and not begun, when the host leaves before the crawl ended."""

    def keep(self, board: Board, threads: int) -> Orders:
        """Called every LISTEN_EVERY seconds with what the host shows and runs: renew what
        it holds, say it lives; what the host is told."""

    def goodbye(self) -> None:
        """The host has left."""


class Host(Generic[Handle]):
    """The loop of one worker process: up to `threads` fetch threads over `source`."""

    def __init__(
        self, source: Source[Handle], spec: WorkerSpec, threads: int, board: Board | None = None
    ) -> None:
        self.source = source
        self.spec = spec
        self.limit = max(1, threads)
        self.wanted = self.limit  # until the source says otherwise
        self.board = board if board is not None else Board.of_lists(self.limit)
        self.threads: list[threading.Thread] = []
        # Several fetch threads wait on `local` with a timeout: a queue.Queue, not a
        # SimpleQueue, whose get(timeout) can wait for ever when another thread took
        # the item it was woken for (CPython 3.11: see backends/thread.py).
        self.local: queue.Queue[tuple[Handle, Task]] = queue.Queue()
        self.outbox: queue.SimpleQueue[tuple[Handle, bytes]] = queue.SimpleQueue()  # drained without waits
        self.sending = threading.Lock()  # held by the fetch thread that sends the outbox
        self.lock = threading.Lock()  # guards the three counts below
        self.taken = 0  # tasks taken and not yet done by a fetch thread
        self.refill_at = 0  # take more tasks once `taken` is down to this
        self.task_seconds = 1.0  # a task's time in a fetch thread, moving average (starts long)
        self.freed = threading.Event()  # `taken` is down to `refill_at`
        # An Event of this process only: the broadcast between processes is the source's.
        self.stop = threading.Event()
        self.leaving: Leave | None = None
        self._listen_at = 0.0

    @property
    def reads_ahead(self) -> bool:
        """Whether tasks are short, so a batch is read ahead and results go by fours."""
        return self.source.read_ahead > 0 and self.task_seconds < SHORT_TASK

    # -- the main thread --------------------------------------------------------------

    def run(self) -> None:
        """Take part until the source says to leave; then leave as it says."""
        try:
            while self._listen() is None:  # first: a coordinator may count a worker from its first heartbeat
                self._start_threads()
                self._take_tasks()
        finally:
            self._leave(self.leaving or Leave.GIVE_BACK)

    def _listen(self) -> Leave | None:
        """Every LISTEN_EVERY seconds, what the source says: the threads wanted, whether
        to leave. Why the host leaves, if it does."""
        now = time.monotonic()
        if now >= self._listen_at:
            self._listen_at = now + LISTEN_EVERY
            orders = self.source.keep(self.board, self.wanted)
            if orders.wanted is not None:
                self.wanted = max(1, min(self.limit, orders.wanted))
            if orders.leave is not None:
                self._decide(orders.leave)
        return self.leaving

    def _decide(self, leave: Leave) -> None:
        if self.leaving is None:
            self.leaving = leave
        self.stop.set()

    def _start_threads(self) -> None:
        """Fetch threads start on demand: idle ones only cost memory and GIL hand-offs."""
        while len(self.threads) < self.wanted:
            context = HostContext(self, len(self.threads))
            thread = threading.Thread(target=worker_main, args=(context, self.spec),
                                      name=context.name, daemon=True)  # fmt: skip
            thread.start()
            self.threads.append(thread)

    def _take_tasks(self) -> None:
        """Take tasks for the idle fetch threads.

        Long tasks (a slow server): no more than the idle threads, so that a task
        waits in the shared queue, where any worker's idle thread can take it,
        rather than behind a busy thread here. Short tasks (a fast server, a
        parse-bound crawl), where the source allows: a batch ahead, taken when the
        last batch is nearly done, so that a round trip is neither waited for nor
        paid per task.
        """
        self.freed.clear()
        with self.lock:
            threads = len(self.threads)
            ahead = self.source.read_ahead if self.reads_ahead else 0
            self.refill_at = threads if ahead else threads - 1
            room = threads + ahead - self.taken if self.taken <= self.refill_at else 0
        if room <= 0:
            self.freed.wait(LISTEN_EVERY)
            return
        taken = self.source.take(room, TAKE_WAIT)
        if not taken:
            self._listen_at = 0.0  # nothing came: the crawl may have ended, ask now
            return
        with self.lock:
            self.taken += len(taken)  # before a fetch thread can be done with one
        for item in taken:
            self.local.put(item)

    # -- the fetch threads ---------------------------------------------------------------

    def post(self, handle: Handle, result: Result) -> None:
        """A fetch thread's result into the outbox. Those of short tasks go by fours, or
        when the thread has nothing left to do; the others at once."""
        self.outbox.put((handle, self.source.pack(result)))
        if not self.reads_ahead or self.outbox.qsize() >= SEND_BY or self.local.empty():
            self.flush()

    def flush(self) -> None:
        """Send the outbox unless another thread is sending it. A thread sends its own
        result in the common case of one fetch thread (a parse-bound crawl): no hand-over
        to another thread; with many, the results that wait meanwhile go as one batch.
        The sender looks once more after letting go, so no result is left behind."""
        while not self.outbox.empty() and self.sending.acquire(blocking=False):
            try:
                while batch := _drain(self.outbox, SEND_MOST):
                    self.source.send(batch)
            except OSError as exc:  # the results can never arrive: the crawl is gone
                log.debug("sending results: %s", exc)
                self._decide(Leave.NOW)
                return
            finally:
                self.sending.release()

    def done(self, index: int) -> None:
        seconds = self.board.done(index)
        with self.lock:
            self.task_seconds += 0.1 * (seconds - self.task_seconds)
            self.taken -= 1
            wake = self.taken <= self.refill_at
        if wake:
            self.freed.set()

    # -- leaving -------------------------------------------------------------------------

    def _leave(self, leave: Leave) -> None:
        """Give back what was not begun unless the crawl ended, let the running tasks
        finish and their results go (bounded by the spec's timeout), say goodbye."""
        self.stop.set()
        if leave is not Leave.NOW:
            not_begun = _drain(self.local)
            with self.lock:
                self.taken -= len(not_begun)  # no fetch thread will run them now
            if leave is Leave.GIVE_BACK:
                self.source.give_back(not_begun)
            self._finish_running(time.monotonic() + self.spec.timeout + 1)
        self.source.goodbye()

    def _finish_running(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.flush()  # results put off (short tasks) by threads that stopped since
            if self._idle():
                return
            time.sleep(FINISH_POLL)

    def _idle(self) -> bool:
        with self.lock:  # not sending either: a batch taken from the outbox may be under way
            return self.taken <= 0 and self.outbox.empty() and not self.sending.locked()


class HostContext(Generic[Handle]):
    """The WorkerContext of one fetch thread of a Host."""

    def __init__(self, host: Host[Handle], index: int) -> None:
        self.host = host
        self.index = index
        self.name = host.source.thread_name(index)
        self.handle: Handle  # the source's handle of the task in hand (set by next_task)

    def next_task(self, timeout: float) -> Task | None:
        host = self.host
        if host.local.empty():
            host.flush()  # results put off (short tasks) go before this thread waits
        try:
            self.handle, task = host.local.get(timeout=timeout)
        except queue.Empty:
            return None
        return task

    def send(self, result: Result) -> None:
        self.host.post(self.handle, result)

    def began(self, task: Task) -> None:
        self.host.board.began(self.index, task.id)

    def parsing(self, active: bool) -> None:
        self.host.board.parsing(self.index, active)

    def done(self, task: Task) -> None:
        self.host.done(self.index)

    def should_stop(self) -> bool:
        return self.host.stop.is_set()


def _drain(source: queue.Queue[Any] | queue.SimpleQueue[Any], most: int = sys.maxsize) -> list[Any]:
    items: list[Any] = []
    try:
        while len(items) < most:
            items.append(source.get_nowait())
    except queue.Empty:
        pass
    return items
