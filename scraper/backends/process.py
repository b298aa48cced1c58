"""The process backend: worker processes of one multiprocessing context, each
running fetch threads (fork, spawn or forkserver: the context decides).

    crawl --put--> shared task queue --relay thread--> local queue --> fetch threads
      ^                                                                   |
      +------------------- one result pipe per worker process <-----------+

- Tasks: one shared queue. In each process only its relay thread reads it,
  and only when a fetch thread is idle (it holds an idle token), so a process
  never holds a task another one could run. It starts fetch threads on
  demand, up to the number the crawl wants (`scale`), since idle threads
  only cost memory and GIL hand-offs on a parse-bound crawl.
- Results travel on one pipe per process: a process killed in the middle of
  sending a large result breaks only its own pipe, which reads as
  end-of-file, instead of leaving a torn message in a shared queue.
- Activity: each fetch thread writes the id of the task in hand and when it
  took it and began parsing it (time.monotonic, which is the same clock in
  every process of the machine) into shared arrays; the group reads them as
  durations.
- Stop: a flag in shared memory, the broadcast every relay and fetch thread
  polls. Not a multiprocessing.Event: its lock would be taken by every poll,
  and a process that exits while one of its daemon threads holds it leaves it
  locked for ever, and the next set() with it.
- A death: the queue's lock may have died with it (an idle relay waits inside
  get() holding it), so `recover` does what CPython's ProcessPoolExecutor
  does with a broken pool, but goes on: it kills every worker, abandons the
  queues and starts a fresh set; every task in flight is sent again.
- Blame: a process runs several tasks at once, so when it dies it cannot be
  told which one killed it. A task the crawl sends again after a death
  (`put(task, alone=True)`) runs in the isolation worker, a process of one
  fetch thread with a queue of its own, one task at a time: a death there
  names its culprit for sure.
- Starting, replacing and stopping the processes: local.py (shared with the
  redis backend's local workers); a fresh set and the isolation worker start
  from a forkserver when the crawl forks.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import queue
import selectors
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..fetcher import Fetcher, worker_main
from ..records import Result, Task, WorkerSpec
from .base import PREFETCH, Activity, Failure, Reason, Settings, blamed_tasks, hung_after, hung_failures
from .local import Local, LocalProcesses, parent_alive, run_child

log = logging.getLogger(__name__)

IDLE = -1  # the task id a fetch thread without a task shows
POLL = 0.05  # seconds between two looks at the stop broadcast and the parent while idle
MAX_PER_READ = 64  # results taken from one worker's pipe per receive(): keeps workers fair
JOIN_POLL = 0.01  # seconds between liveness checks while stopping


class ProcessBackend:
    name = "process"

    def __init__(self, start_method: str | None = None) -> None:
        self.context = multiprocessing.get_context(start_method)

    @classmethod
    def from_config(cls, config: Settings) -> ProcessBackend:
        return cls(config.start_method)

    def workers(self, spec: WorkerSpec, count: int) -> ProcessGroup:
        return ProcessGroup(self.context, spec, count)


@dataclass
class _Board:
    """What the fetch threads of one process show the parent (shared memory)."""

    task: Any  # RawArray of task ids, one per fetch thread (IDLE when idle)
    took_at: Any  # RawArray: monotonic time each thread took its task
    parsing_since: Any  # RawArray: monotonic time its parse began, 0 when not parsing

    @classmethod
    def new(cls, context: Any, threads: int) -> _Board:
        return cls(context.RawArray("q", [IDLE] * threads), context.RawArray("d", threads),
                   context.RawArray("d", threads))  # fmt: skip

    def read(self, worker: str, now: float) -> list[Activity]:
        # Copied once: the worker goes on writing them.
        rows = zip(list(self.task), list(self.took_at), list(self.parsing_since), strict=True)
        return [Activity(worker, task_id, now - took, now - parsing if parsing else None)
                for task_id, took, parsing in rows if task_id != IDLE]  # fmt: skip


class ProcessGroup:
    """`count` worker processes on one shared queue, plus the isolation worker
    (their supervision: local.py)."""

    def __init__(self, context: Any, spec: WorkerSpec, count: int) -> None:
        self.context = context
        self.spec = spec
        self.count = count
        self._wanted = context.RawValue("i", 1)  # fetch threads wanted in each worker
        self._serial = 0
        self._local = LocalProcesses(context, count, self._launch)
        self._open_channels(context)

    def _open_channels(self, context: Any) -> None:
        """Channels whose queue the processes to come can take: the first set's are made
        in the crawl's context (a fork costs nothing more), those of a fresh set after a
        recovery, and the isolation queue, in the context they start with (local.py)."""
        self._stop = context.RawValue("b", 0)  # 1: stop (a byte: written and read whole)
        self._tasks = _Tasks(context, self)
        self._results = _PipeResults(context)

    @property
    def tasks(self) -> _Tasks:
        return self._tasks

    @property
    def results(self) -> _PipeResults:
        return self._results

    def start(self) -> None:
        self._local.start()

    def _launch(self, context: Any, isolated: bool) -> Local:
        self._serial += 1
        name = f"process-{self._serial}"
        threads = 1 if isolated else self.spec.threads
        board = _Board.new(context, threads)
        sender = self._results.open(name)
        tasks = self._tasks.isolation_queue() if isolated else self._tasks.shared
        process = context.Process(
            target=run_child, name=name, daemon=True,
            args=(_process_main, name, self.spec, threads, tasks, sender, board, self._stop, self._wanted),
        )  # fmt: skip
        process.start()
        self._results.started(sender)
        return Local(name, process, board)

    def _isolate(self, task: Task) -> None:
        self._local.isolation()
        self._tasks.isolation_queue().put(task)

    def delivered(self) -> list[Result]:
        return []  # nothing outlives a crawl here

    def capacity(self) -> int:
        # Counted from the workers started, not asked of each process (a system call
        # per look, and the crawl looks after every batch of results): a dead one
        # is replaced at the next failed() / recover().
        threads = min(self._wanted.value, self.spec.threads)
        return len(self._local.workers) * (threads + PREFETCH)

    def max_concurrency(self) -> int:
        return self.count * self.spec.threads

    def lost(self, in_flight: Mapping[int, Task]) -> list[Task]:
        return []  # no broker: nothing outlives a worker's death but what recover() sends

    def waited(self) -> float:
        return 0.0  # the workers start with the crawl

    def scale(self, threads: int) -> None:
        self._wanted.value = max(1, min(self.spec.threads, threads))

    def activity(self) -> list[Activity]:
        now = time.monotonic()
        return [a for local in self._local.all() for a in local.data.read(local.name, now)]

    def failed(self) -> list[Failure]:
        now, found = time.monotonic(), []
        for local in self._local.all():
            held = local.data.read(local.name, now)
            if not local.process.is_alive():
                found.append(Failure(local.name, blamed_tasks(held), Reason.DIED))
            else:
                found += hung_failures(held, hung_after(self.spec))
        return found

    def recover(self, failures: list[Failure], in_flight: Mapping[int, Task]) -> list[Task]:
        """Kill every worker, abandon the channels, start a fresh set: all in flight is sent again."""
        self._stop.value = 1
        self._local.kill_all()
        self._close_channels()
        self._open_channels(self._local.later)
        self._local.start()
        return list(in_flight.values())

    def stop(self, deadline: float, finished: bool = True) -> None:
        self._stop.value = 1
        # A worker blocked on a full result pipe can only finish if we read. What
        # arrives now is dropped: those tasks were abandoned, and --resume fetches
        # them again, so nothing is lost or written twice.
        self._local.stop(deadline, wait=lambda: self._results.receive(JOIN_POLL))
        self._close_channels()

    def _close_channels(self) -> None:
        self._tasks.close()
        self._results.close()


class _Tasks:
    """The task channel: the shared queue, and the isolation worker's for tasks sent alone."""

    def __init__(self, context: Any, group: ProcessGroup) -> None:
        self.shared = context.Queue()
        self.group = group
        self.isolated: Any = None  # its queue, made when first needed

    def put(self, task: Task, alone: bool = False) -> None:
        if alone:
            self.group._isolate(task)
        else:
            self.shared.put(task)

    def isolation_queue(self) -> Any:
        """Made in the isolation worker's context (local.py: it starts while threads run)."""
        if self.isolated is None:
            self.isolated = self.group._local.later.Queue()
        return self.isolated

    def close(self) -> None:
        for q in (self.shared, self.isolated):
            if q is not None:
                q.cancel_join_thread()  # do not block exit on tasks no one will read
                q.close()


class _PipeResults:
    """The result channel: one pipe per worker process, read with one selector."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.readers: list[Any] = []
        self.selector = selectors.DefaultSelector()  # kept: one per receive() would cost more

    def open(self, name: str) -> _LockedSender:
        reader, sender = self.context.Pipe(duplex=False)
        self.readers.append(reader)
        self.selector.register(reader, selectors.EVENT_READ)
        # A forked child inherits the read ends; it must not hold them, or a worker
        # whose parent was killed would block on a full pipe instead of seeing EPIPE.
        multiprocessing.util.register_after_fork(reader, _close_connection)
        return _LockedSender(sender)

    def started(self, sender: _LockedSender) -> None:
        # Only the worker may hold the write end, so that its death reads as EOF.
        sender.connection.close()

    def receive(self, timeout: float) -> list[Result]:
        received: list[Result] = []
        if not self.readers:
            time.sleep(timeout)
            return received
        for key, _ in self.selector.select(timeout):
            reader: Any = key.fileobj
            try:
                for _ in range(MAX_PER_READ):
                    if not reader.poll():
                        break
                    received.append(reader.recv())
            except (EOFError, OSError):  # the worker exited or died, maybe mid-message
                self._forget(reader)
        return received

    def _forget(self, reader: Any) -> None:
        self.readers.remove(reader)
        self.selector.unregister(reader)
        reader.close()

    def close(self) -> None:
        for reader in self.readers:
            self.selector.unregister(reader)
            reader.close()
        self.readers.clear()
        self.selector.close()


class _LockedSender:
    """The write end of a worker's pipe, shared by the fetch threads of that process."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.lock = threading.Lock()

    def send(self, obj: Any) -> None:
        with self.lock:  # one message at a time on the pipe
            self.connection.send(obj)

    def __getstate__(self) -> Any:  # spawn pickles it; a lock does not pickle
        return self.connection

    def __setstate__(self, connection: Any) -> None:
        self.__init__(connection)  # type: ignore[misc]


def _close_connection(connection: Any) -> None:
    connection.close()


# -- inside a worker process --------------------------------------------------------


def _process_main(
    name: str, spec: WorkerSpec, threads: int, tasks: Any, sender: _LockedSender,
    board: _Board, stop: Any, wanted: Any,
) -> None:  # fmt: skip
    """A worker process (started by local.run_child): this thread relays tasks to
    fetch threads it starts on demand."""
    Fetcher(spec, name).close()  # a spec this process cannot run (a callback it cannot import) ends it
    relay = _Relay(name, tasks, sender, board, stop)
    started = 0
    while not relay.should_stop():
        goal = max(1, min(threads, int(wanted.value)))
        for index in range(started, goal):
            context = _ThreadContext(relay, index)
            threading.Thread(target=worker_main, args=(context, spec), daemon=True).start()
            relay.idle.put(None)
        started = max(started, goal)
        relay.hand_out_one()


class _Relay:
    """The shared task queue as the fetch threads of one process see it."""

    def __init__(self, name: str, shared: Any, sender: _LockedSender, board: _Board, stop: Any) -> None:
        self.name = name
        self.shared = shared
        self.sender = sender
        self.board = board
        self.stop = stop
        self.local: queue.SimpleQueue = queue.SimpleQueue()
        self.idle: queue.SimpleQueue = queue.SimpleQueue()  # a token per fetch thread waiting for a task
        self.parent_gone = False

    def hand_out_one(self) -> None:
        """Wait for an idle fetch thread, then for a task for it."""
        try:
            self.idle.get(timeout=POLL)
        except queue.Empty:  # every fetch thread is busy
            self._check_parent()
            return
        try:
            self.local.put(self.shared.get(timeout=POLL))
        except queue.Empty:
            self.idle.put(None)
            self._check_parent()

    def _check_parent(self) -> None:
        self.parent_gone = not parent_alive()

    def should_stop(self) -> bool:
        return self.parent_gone or bool(self.stop.value)


class _ThreadContext:
    """The WorkerContext of one fetch thread of a worker process."""

    def __init__(self, relay: _Relay, index: int) -> None:
        self.relay = relay
        self.index = index
        self.name = relay.name

    def next_task(self, timeout: float) -> Task | None:
        try:
            return self.relay.local.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, result: Result) -> None:
        self.relay.sender.send(result)

    def began(self, task: Task) -> None:
        self.relay.board.took_at[self.index] = time.monotonic()
        self.relay.board.task[self.index] = task.id

    def parsing(self, active: bool) -> None:
        self.relay.board.parsing_since[self.index] = time.monotonic() if active else 0.0

    def done(self, task: Task) -> None:
        self.relay.board.task[self.index] = IDLE
        self.relay.idle.put(None)

    def should_stop(self) -> bool:
        return self.relay.should_stop()
