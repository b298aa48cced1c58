"""The backend: the one place that chooses processes or threads.

Like `concurrent.futures` (process.py / thread.py) and `multiprocessing.dummy`,
a backend hands out the queue, shared-value and worker types; every other
module uses them without knowing which kind it got.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol


class Worker(Protocol):
    name: str

    @property
    def exitcode(self) -> int | None: ...
    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...
    def kill(self) -> None: ...


class Backend(Protocol):
    name: str

    def JoinableQueue(self) -> Any: ...  # noqa: N802 - mirrors multiprocessing
    def Queue(self) -> Any: ...  # noqa: N802
    def Value(self) -> Any: ...  # noqa: N802 - a shared int, initially -1
    def start_worker(self, target: Callable[..., None], args: tuple, name: str) -> Worker: ...
    def parent_alive_check(self) -> Callable[[], bool]: ...
    def close_queue(self, q: Any) -> None: ...


class ProcessBackend:
    """Workers are processes of one multiprocessing context (fork, spawn, forkserver)."""

    name = "process"

    def __init__(self, start_method: str | None = None) -> None:
        self.context = multiprocessing.get_context(start_method)

    def JoinableQueue(self) -> Any:  # noqa: N802
        return self.context.JoinableQueue()

    def Queue(self) -> Any:  # noqa: N802
        return self.context.Queue()

    def Value(self) -> Any:  # noqa: N802
        return self.context.RawValue("q", -1)

    def start_worker(self, target: Callable[..., None], args: tuple, name: str) -> Worker:
        process = self.context.Process(
            target=_process_entry, args=(target, *args), name=name, daemon=True
        )
        process.start()
        return process

    def parent_alive_check(self) -> Callable[[], bool]:
        return _parent_process_alive

    def close_queue(self, q: Any) -> None:
        # Do not block exit on data that no one will read any more.
        q.cancel_join_thread()
        q.close()


def _process_entry(target: Callable[..., None], *args: Any) -> None:
    # The parent alone decides when to stop: a Ctrl-C sent to the whole process
    # group must not kill a worker in the middle of a task.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    target(*args)


def _parent_process_alive() -> bool:
    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


class ThreadBackend:
    """Workers are daemon threads of this process, sharing its GIL."""

    name = "thread"

    def JoinableQueue(self) -> Any:  # noqa: N802 - queue.Queue has task_done()
        return queue.Queue()

    def Queue(self) -> Any:  # noqa: N802
        return queue.Queue()

    def Value(self) -> Any:  # noqa: N802
        return _Value(-1)

    def start_worker(self, target: Callable[..., None], args: tuple, name: str) -> Worker:
        worker = _ThreadWorker(target, args, name)
        worker.start()
        return worker

    def parent_alive_check(self) -> Callable[[], bool]:
        return _always_alive

    def close_queue(self, q: Any) -> None:
        pass


class _Value:
    """What multiprocessing.dummy.Value is: a plain holder."""

    def __init__(self, value: int) -> None:
        self.value = value


class _ThreadWorker(threading.Thread):
    def __init__(self, target: Callable[..., None], args: tuple, name: str) -> None:
        super().__init__(target=target, args=args, name=name, daemon=True)

    @property
    def exitcode(self) -> int | None:
        return None if self.is_alive() or self.ident is None else 0

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
