"""The backend: the one place that chooses processes or threads.

Like `concurrent.futures` (process.py / thread.py) and `multiprocessing.dummy`,
a backend hands out the task queue, the result channel, shared values and
workers; every other module uses them without knowing which kind it got.

Results travel on one pipe per process worker (one queue for threads): a
process killed in the middle of sending a large result then breaks only its
own pipe, which reads as end-of-file, instead of leaving a torn message in a
shared queue that the aggregator would block on for ever.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import queue
import selectors
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

MAX_PER_READ = 64  # results taken from one worker's pipe per receive(): keeps workers fair
GROW_CHECK = 0.1  # seconds between two looks at how many fetch threads the parent wants


class Worker(Protocol):
    name: str

    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...
    def kill(self) -> None: ...


class ResultChannel(Protocol):
    def open(self, name: str) -> Any:
        """A sender (with `.send(obj)`) for the worker called `name`."""

    def started(self, name: str, sender: Any) -> None:
        """The worker has started: drop the parent's copy of its sender."""

    def receive(self, timeout: float) -> list[Any]:
        """Whatever arrived, waiting up to `timeout` for the first item."""

    def close(self) -> None: ...


class Backend(Protocol):
    name: str

    def JoinableQueue(self) -> Any: ...  # noqa: N802 - mirrors multiprocessing
    def ResultChannel(self) -> ResultChannel: ...  # noqa: N802
    def Array(self, typecode: str, size: int, value: float) -> Any: ...  # noqa: N802
    def fetch_threads(self, wanted: int) -> int: ...
    def start_worker(
        self, target: Callable[..., None], name: str, tasks: Any, args: tuple,
        threads: int = 1, wanted: Any = None,
    ) -> Worker:
        """Run `target(name, tasks, *args, index=i)` in `threads` fetch threads."""  # fmt: skip
    def parent_alive_check(self) -> Callable[[], bool]: ...
    def close_queue(self, q: Any) -> None: ...


class ProcessBackend:
    """Workers are processes of one multiprocessing context (fork, spawn, forkserver)."""

    name = "process"

    def __init__(self, start_method: str | None = None) -> None:
        self.context = multiprocessing.get_context(start_method)

    def JoinableQueue(self) -> Any:  # noqa: N802
        return self.context.JoinableQueue()

    def ResultChannel(self) -> ResultChannel:  # noqa: N802
        return _PipeResults(self.context)

    def Array(self, typecode: str, size: int, value: float) -> Any:  # noqa: N802
        return self.context.RawArray(typecode, [value] * size)

    def fetch_threads(self, wanted: int) -> int:
        return wanted  # a process runs several fetch threads: I/O waits overlap, cheaply

    def start_worker(
        self, target: Callable[..., None], name: str, tasks: Any, args: tuple,
        threads: int = 1, wanted: Any = None,
    ) -> Worker:  # fmt: skip
        process = self.context.Process(
            target=_process_entry, args=(target, name, tasks, args, threads, wanted), name=name, daemon=True
        )
        process.start()
        return process

    def parent_alive_check(self) -> Callable[[], bool]:
        return _parent_process_alive

    def close_queue(self, q: Any) -> None:
        q.cancel_join_thread()  # do not block exit on tasks no one will read
        q.close()


class _PipeResults:
    def __init__(self, context: Any) -> None:
        self.context = context
        self.readers: dict[str, Any] = {}
        self.selector = selectors.DefaultSelector()  # kept: one per receive() would cost more

    def open(self, name: str) -> Any:
        reader, sender = self.context.Pipe(duplex=False)
        self.readers[name] = reader
        self.selector.register(reader, selectors.EVENT_READ)
        # A forked child inherits the read ends; it must not hold them, or a worker
        # whose parent was killed would block on a full pipe instead of seeing EPIPE.
        multiprocessing.util.register_after_fork(reader, _close_connection)
        return _LockedSender(sender)

    def started(self, name: str, sender: Any) -> None:
        # Only the worker may hold the write end, so that its death reads as EOF.
        sender.connection.close()

    def receive(self, timeout: float) -> list[Any]:
        received: list[Any] = []
        if not self.readers:
            time.sleep(timeout)
            return received
        for key, _ in self.selector.select(timeout):
            reader = key.fileobj
            try:
                for _ in range(MAX_PER_READ):
                    if not reader.poll():
                        break
                    received.append(reader.recv())
            except (EOFError, OSError):  # the worker exited or died, maybe mid-message
                self._forget(reader)
        return received

    def _forget(self, reader: Any) -> None:
        for name, known in list(self.readers.items()):
            if known is reader:
                del self.readers[name]
        self.selector.unregister(reader)
        reader.close()

    def close(self) -> None:
        for reader in self.readers.values():
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
        self.__init__(connection)


def _close_connection(connection: Any) -> None:
    connection.close()


def _process_entry(
    target: Callable[..., None], name: str, tasks: Any, args: tuple, threads: int, wanted: Any
) -> None:
    """A worker process: fetch threads, and this thread handing them tasks.

    Only this thread reads the shared task queue, and only when a fetch
    thread is idle, so a process never holds tasks another one could run.
    The fetch threads (`target(name, relay, *args, index=i)`) get their tasks
    from a local queue. It starts one and adds more, up to `threads`, while the
    parent asks for more (`wanted[0]`): idle threads would only cost memory
    and GIL hand-offs on a parse-bound crawl.

    The `None` sentinel ends the process at once: at the end of a crawl the
    fetch threads are idle, and none of them holds the shared queue's lock
    (after an early stop the parent drops whatever they were doing).
    """
    # The parent alone decides when to stop: a Ctrl-C sent to the whole process
    # group must not kill a worker in the middle of a task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    relay = _RelayedTasks(tasks)
    started = 0
    while True:
        goal = threads if wanted is None else max(1, min(threads, int(wanted[0])))
        for index in range(started, goal):
            threading.Thread(target=target, args=(name, relay, *args), kwargs={"index": index},
                             daemon=True).start()  # fmt: skip
            relay.idle.put(None)
        started = max(started, goal)
        try:
            relay.idle.get(timeout=GROW_CHECK)
        except queue.Empty:  # every fetch thread is busy
            if not _parent_process_alive():
                return
            continue
        try:
            task = tasks.get(timeout=GROW_CHECK)
        except queue.Empty:
            relay.idle.put(None)
            if not _parent_process_alive():
                return
            continue
        if task is None:
            tasks.task_done()
            return
        relay.local.put(task)


class _RelayedTasks:
    """The task queue as the fetch threads of one process see it."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared
        self.local: queue.SimpleQueue = queue.SimpleQueue()
        self.idle: queue.SimpleQueue = queue.SimpleQueue()  # a token per fetch thread waiting for a task

    def get(self, timeout: float | None = None) -> Any:
        return self.local.get(timeout=timeout)

    def task_done(self) -> None:
        self.shared.task_done()
        self.idle.put(None)


def _parent_process_alive() -> bool:
    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


class ThreadBackend:
    """Workers are daemon threads of this process, sharing its GIL."""

    name = "thread"

    def JoinableQueue(self) -> Any:  # noqa: N802 - queue.Queue has task_done()
        return queue.Queue()

    def ResultChannel(self) -> ResultChannel:  # noqa: N802
        return _QueueResults()

    def Array(self, typecode: str, size: int, value: float) -> Any:  # noqa: N802
        return [value] * size

    def fetch_threads(self, wanted: int) -> int:
        return 1  # each worker is already a thread

    def start_worker(
        self, target: Callable[..., None], name: str, tasks: Any, args: tuple,
        threads: int = 1, wanted: Any = None,
    ) -> Worker:  # fmt: skip
        worker = _ThreadWorker(target, (name, tasks, *args), name)
        worker.start()
        return worker

    def parent_alive_check(self) -> Callable[[], bool]:
        return _always_alive

    def close_queue(self, q: Any) -> None:
        pass


class _QueueResults:
    """All threads send to one queue.Queue (a thread cannot die mid-message)."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self.send = self.queue.put

    def open(self, name: str) -> Any:
        return self

    def started(self, name: str, sender: Any) -> None:
        pass

    def receive(self, timeout: float) -> list[Any]:
        received = []
        try:
            received.append(self.queue.get(timeout=timeout))
            while True:
                received.append(self.queue.get_nowait())
        except queue.Empty:
            return received

    def close(self) -> None:
        pass


class _ThreadWorker(threading.Thread):
    def __init__(self, target: Callable[..., None], args: tuple, name: str) -> None:
        super().__init__(target=target, args=args, name=name, daemon=True)

    def kill(self) -> None:
        """Threads cannot be killed; a daemon thread ends with the process."""


def _always_alive() -> bool:
    return True


def get_backend(name: str, start_method: str | None = None) -> Backend:
    """The backend called `name` ("process" or "thread")."""
    if name == "process":
        return ProcessBackend(start_method)
    if name == "thread":
        return ThreadBackend()
    raise ValueError(f"unknown backend {name!r}")
