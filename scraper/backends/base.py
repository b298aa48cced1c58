"""The seam between the crawl and its workers: roles, not transport parts.

The crawl (scheduler + aggregator, one process) sees a backend as three ports:

    TaskChannel   put(task, alone), close()      tasks to the workers
    ResultChannel receive(timeout) -> [Result]   what the workers send back
    WorkerGroup   start(), capacity(), scale(threads), activity(), failed(),
                  recover(failures, in_flight) -> tasks to send again,
                  lost(in_flight) -> tasks a broker lost, waited(), stop(deadline)

and a worker sees one port, its WorkerContext (next_task, send, done,
should_stop, and progress: began/parsing/ended), over which the one worker
loop, fetcher.worker_main(context, spec), runs wherever the worker is.

Everything a port reports is a count or a duration ("task 42 has been parsing
for 3.1 s"), never a clock reading of another process, so that it can come
from another machine. A backend implements these over multiprocessing
(process.py), over threads of this process (thread.py), or over a broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from ..records import Result, Task, WorkerSpec

# Tasks queued per worker beyond its fetch threads: a thread that finishes a
# task finds the next one waiting instead of waiting for the parent, and the
# queue stays short, so politeness decisions stay fresh (the idea of
# concurrent.futures' EXTRA_QUEUED_CALLS).
PREFETCH = 4
# A parse (user callback included) running this much longer than --timeout is hung.
PARSE_GRACE = 5.0


@dataclass(frozen=True)
class Activity:
    """What one fetch thread holds: a task, for how long, and how long it has been parsing."""

    worker: str
    task_id: int
    busy_for: float  # seconds since it took the task
    parsing_for: float | None  # seconds since its parse began; None when not parsing


class Reason(str, Enum):
    """Why a worker failed. A broker losing data is no worker's failure (see `lost`)."""

    DIED = "died"  # exited, was killed, or went silent
    HUNG = "hung"  # a parse ran past hung_after()

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Failure:
    """A worker that died or hung, and the tasks that can have caused it."""

    worker: str
    task_ids: tuple[int, ...]
    reason: Reason


def blamed_tasks(held: list[Activity]) -> tuple[int, ...]:
    """The tasks a dead worker's death is put down to: a crash while parsing (a
    segfault in a C extension) is the parsing pages' fault; any other death
    (SIGKILL, out of memory) can be any task it held."""
    parsing = tuple(a.task_id for a in held if a.parsing_for is not None)
    return parsing or tuple(a.task_id for a in held)


def hung_after(spec: WorkerSpec) -> float:
    """Seconds after which a parse (user callback included) counts as hung."""
    return spec.timeout + PARSE_GRACE


def hung_failures(activity: list[Activity], hung_after: float) -> list[Failure]:
    """One failure per worker with a parse running longer than `hung_after` seconds."""
    hung: dict[str, list[int]] = {}
    for a in activity:
        if a.parsing_for is not None and a.parsing_for > hung_after:
            hung.setdefault(a.worker, []).append(a.task_id)
    return [Failure(worker, tuple(ids), Reason.HUNG) for worker, ids in hung.items()]


class TaskChannel(Protocol):
    def put(self, task: Task, alone: bool = False) -> None:
        """Hand a task to the workers. `alone`: the crawl sends it again after a
        failure it can have caused; it runs alone where the backend can tell which
        task killed a worker (the isolation worker, see process.py)."""

    def close(self) -> None: ...


class ResultChannel(Protocol):
    def receive(self, timeout: float) -> list[Result]:
        """Whatever arrived, waiting up to `timeout` seconds for the first result."""

    def close(self) -> None: ...


class WorkerGroup(Protocol):
    """The workers of one crawl. Owns its channels: take them from `tasks` and
    `results` each time (a recovery may replace them), never keep them."""

    @property
    def tasks(self) -> TaskChannel: ...

    @property
    def results(self) -> ResultChannel: ...

    def start(self) -> None: ...

    def delivered(self) -> list[Result]:
        """Results an earlier coordinator of this crawl left unwritten (a broker
        keeps them; --resume writes them instead of fetching them again)."""

    def capacity(self) -> int:
        """Tasks that may be handed out at once: what the live workers can run
        (fetch threads wanted, up to what each one runs) plus a few each that
        wait for a free thread (PREFETCH; the redis backend a batch)."""

    def max_concurrency(self) -> int:
        """Requests the workers could run at once with all their fetch threads."""

    def waited(self) -> float:
        """Seconds the crawl waited for its first worker to join (workers on other
        machines, started by hand): left out of the crawl's pages/s."""

    def scale(self, threads: int) -> None:
        """Ask each worker to run `threads` fetch threads (up to its own limit)."""

    def activity(self) -> list[Activity]: ...

    def failed(self) -> list[Failure]:
        """Workers that died, and workers with a parse that hung."""

    def recover(self, failures: list[Failure], in_flight: Mapping[int, Task]) -> list[Task]:
        """Replace what failed; the tasks of `in_flight` that must be sent again."""

    def lost(self, in_flight: Mapping[int, Task]) -> list[Task]:
        """The tasks of `in_flight` a broker lost (a restart without persistence, or
        from older data): sent again as they are. No worker failed: nothing is
        blamed, nothing counts toward the crawl's restarts."""

    def stop(self, deadline: float, finished: bool = True) -> None:
        """Tell every worker to stop (a broadcast), wait for them until the
        monotonic `deadline`, then kill what is left. Never leaves one behind.
        `finished`: the crawl ran to its end, rather than being stopped (a
        broker that outlives the crawl shows which)."""


class WorkerContext(Protocol):
    """A fetch thread's view of its backend."""

    name: str

    def next_task(self, timeout: float) -> Task | None:
        """The next task, or None after `timeout` seconds without one."""

    def send(self, result: Result) -> None: ...

    def done(self, task: Task) -> None:
        """The task's result was sent: the thread is free again."""

    def should_stop(self) -> bool: ...

    def began(self, task: Task) -> None: ...

    def parsing(self, active: bool) -> None: ...


class Settings(Protocol):
    """What the backends read of a crawl's settings (a CrawlConfig has them): a
    protocol, so that no backend imports config.py (which imports their registry)."""

    @property
    def start_method(self) -> str | None: ...

    @property
    def resume(self) -> bool: ...

    @property
    def backend_options(self) -> Mapping[str, Any]:
        """The settings the backend declares for itself (its registry entry), defaults filled in."""


class Backend(Protocol):
    """A factory of worker groups (registered in backends/__init__.py)."""

    name: str

    @classmethod
    def from_config(cls, config: Settings) -> Backend:
        """The backend set up from what it needs of the crawl's settings."""

    def workers(self, spec: WorkerSpec, count: int) -> WorkerGroup:
        """A group of `count` workers (not started yet) that run `spec`."""
