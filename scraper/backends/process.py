"""The process backend: worker processes of one multiprocessing context, each
running fetch threads (fork, spawn or forkserver: the context decides).

    crawl --put--> shared task queue --host loop--> local queue --> fetch threads
      ^                                                                   |
      +------------------- one result pipe per worker process <-----------+

Each worker process runs the host loop (worker.py: fetch threads started on
demand, the board, leaving) over `_QueueSource`, which is all this module
adds inside a worker: the queue, the pipe, the stop flag and the threads wanted.

- Tasks: one shared queue. In each process only the host's main thread reads
  it, and only for an idle fetch thread, one task each (no read-ahead), so a
  process never holds a task another one could run. It starts fetch threads
  on demand, up to the number the crawl wants (`scale`), since idle threads
  only cost memory and GIL hand-offs on a parse-bound crawl.
- Results travel on one pipe per process: a process killed in the middle of
  sending a large result breaks only its own pipe, which reads as
  end-of-file, instead of leaving a torn message in a shared queue.
- Activity: each fetch thread writes the id of the task in hand and when it
  took it and began parsing it (time.monotonic, which is the same clock in
  every process of the machine) on its host's board, here over shared arrays;
  the group reads them as durations.
- Stop: a flag in shared memory, the broadcast every host polls (and with it
  whether its parent lives); a stopped host leaves at once. Not a
  multiprocessing.Event: its lock would be taken by every poll, and a process
  that exits while one of its daemon threads holds it leaves it locked for
  ever, and the next set() with it.
- A death: the queue's lock may have died with it (an idle host waits inside
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
import pickle
import queue
import selectors
import time
from collections.abc import Mapping
from typing import Any

from ..fetcher import Fetcher
from ..records import Result, Task, WorkerSpec
from ..worker import IDLE, Board, Host, Leave, Orders
from .base import PREFETCH, Activity, Failure, Reason, Settings, blamed_tasks, hung_after, hung_failures
from .local import Local, LocalProcesses, parent_alive, run_child

log = logging.getLogger(__name__)

MAX_PER_READ = 64  # results taken from one worker's pipe per receive(), at most
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


def _shared_board(context: Any, threads: int) -> Board:
    """A worker's board in shared memory: the process writes it, the group reads it."""
    return Board(context.RawArray("q", [IDLE] * threads), context.RawArray("d", threads),
                 context.RawArray("d", threads))  # fmt: skip


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
        board = _shared_board(context, threads)
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

    def open(self, name: str) -> Any:
        """The write end of a new worker's pipe; only its Host sends on it, one thread at a time."""
        reader, sender = self.context.Pipe(duplex=False)
        self.readers.append(reader)
        self.selector.register(reader, selectors.EVENT_READ)
        # A forked child inherits the read ends; it must not hold them, or a worker
        # whose parent was killed would block on a full pipe instead of seeing EPIPE.
        multiprocessing.util.register_after_fork(reader, _close_connection)
        return sender

    def started(self, sender: Any) -> None:
        # Only the worker may hold the write end, so that its death reads as EOF.
        sender.close()

    def receive(self, timeout: float) -> list[Result]:
        received: list[Result] = []
        if not self.readers:
            time.sleep(timeout)
            return received
        # One result from each ready pipe a round, and one select of all pipes
        # between rounds (Connection.poll() would build a selector per call).
        ready = self.selector.select(timeout)
        for _ in range(MAX_PER_READ):
            for key, _ in ready:
                reader: Any = key.fileobj
                try:
                    received.append(reader.recv())
                except (EOFError, OSError):  # the worker exited or died, maybe mid-message
                    self._forget(reader)
            if not ready:
                break
            ready = self.selector.select(0)
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


def _close_connection(connection: Any) -> None:
    connection.close()


# -- inside a worker process --------------------------------------------------------


def _process_main(
    name: str, spec: WorkerSpec, threads: int, tasks: Any, sender: Any, board: Board, stop: Any, wanted: Any,
) -> None:  # fmt: skip
    """A worker process (started by local.run_child): the host loop (worker.py) over
    the shared queue and this process's pipe."""
    Fetcher(spec, name).close()  # a spec this process cannot run (a callback it cannot import) ends it
    Host(_QueueSource(name, tasks, sender, stop, wanted), spec, threads, board).run()


class _QueueSource:
    """The transport of a worker process's Host: the shared task queue (or the isolation
    worker's), the write end of this process's result pipe, the stop broadcast and the
    threads wanted. It takes exactly one task per idle fetch thread, never more: a task
    waits in the shared queue, where any process's idle thread can take it."""

    read_ahead = 0

    def __init__(self, name: str, tasks: Any, sender: Any, stop: Any, wanted: Any) -> None:
        self.name = name
        self.tasks = tasks
        self.sender = sender
        self.stop = stop
        self.wanted = wanted

    def thread_name(self, index: int) -> str:
        return self.name  # the group knows the process, not its threads

    def take(self, most: int, timeout: float) -> list[tuple[None, Task]]:
        try:
            return [(None, self.tasks.get(timeout=timeout))]
        except queue.Empty:
            return []

    def pack(self, result: Result) -> bytes:
        return pickle.dumps(result)  # what Connection.send() would do, here in the fetch thread

    def send(self, batch: list[tuple[None, bytes]]) -> None:
        for _, message in batch:
            self.sender.send_bytes(message)  # OSError when the parent is gone

    def give_back(self, taken: list[tuple[None, Task]]) -> None:
        pass  # the parent sends again every task in flight when it recovers from a death

    def keep(self, board: Board, threads: int) -> Orders:
        # The parent reads the board from shared memory, sends again what it needs after
        # a stop, and reads no result after it: a stop means leave at once.
        if self.stop.value or not parent_alive():
            return Orders(leave=Leave.NOW)
        return Orders(wanted=int(self.wanted.value))

    def goodbye(self) -> None:
        pass
