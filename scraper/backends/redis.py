"""The redis backend: tasks and results on Redis Streams, workers on any machine (SPEC 8).

    coordinator --XADD--> <prefix>tasks (group "workers") --XREADGROUP COUNT 16--> worker processes
         ^                                                                              |
         +---- XREAD <prefix>results <---- MULTI: XADD result, XACK + XDEL its task <----+

Keys, all under `scraper:<crawl id>:` so that crawls share one Redis:
  tasks     stream of wire.dump_task messages; consumer group `workers`
  results   stream of wire.dump_result messages, read by the coordinator alone
  spec      the WorkerSpec (wire JSON) every worker runs
  state     running | done | stopped: the stop broadcast
  lock      the coordinator's (host:pid), with a TTL it renews: a second one is refused
  wanted    fetch threads each worker should run (the crawl's scale())
  workers   set of worker names; worker:<name> their heartbeats (hash with a TTL)
  stats     pages done, started_at (for `scraper status`)

Who does what:
- A worker renews what it holds every second (XCLAIM <self> 0 ids JUSTID):
  the idle time Redis reports is then the time since the worker was last
  heard of, and a task idle past CLAIM_IDLE belongs to a dead or stopped
  worker. JUSTID counts no delivery, so the attempt travels in the task.
- The coordinator takes such tasks over (XPENDING IDLE, then XACK + XDEL, so
  no one else runs them) and the crawl sends them again (retried once, then
  worker_died); a late result of the first attempt is dropped by the scheduler.
- Its lock vanishing means Redis lost its data (a restart without
  persistence): streams, group and keys are made again and everything in
  flight is sent again. Redis back after an outage, or restarted (its run_id
  changed) from older data (appendfsync everysec loses up to a second): the
  tasks in flight that it has nowhere are sent again.
- Nothing is pickled: a message that does not load (wire.WireError) is logged
  once, acknowledged and skipped, never run.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .. import wire
from ..errors import ScraperError, UsageError
from ..records import Result, Task, WorkerSpec
from .base import Activity, Failure, Reason, Settings, blamed_tasks, hung_after, hung_failures
from .local import Local, LocalProcesses, run_child
from .redis_channels import StreamResults, StreamTasks, entries
from .redis_lock import LOCK_TTL, LOST, STATE_TTL, Lock
from .streams import (
    BATCH,
    CLAIM_IDLE,
    GROUP,
    Keys,
    connect,
    masked,
    need_redis,
    node_name,
    reason,
    redis,
    redis_url,
)

# Tasks per worker that wait in the stream beyond its fetch threads: a worker reads
# a batch ahead when its tasks are short (redis_worker.py), so that neither side pays a
# round trip per task; with long tasks they wait in the stream for any idle thread.
QUEUED = BATCH
LOOK_EVERY = 0.25  # seconds between the coordinator's looks at the lock and the heartbeats
TAKE_OVER_EVERY = 1.0  # seconds between its looks for tasks of silent workers
OUTAGE_LIMIT = 60.0  # seconds Redis may be unreachable before the coordinator gives up (SPEC 8)
RETRY_PAUSE = 0.5  # seconds between two attempts while Redis is unreachable
NO_WORKER_AFTER = 5.0  # seconds without any worker after which the coordinator says how to start one

log = logging.getLogger(__name__)
T = TypeVar("T")


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, crawl_id: str, resume: bool, start_method: str | None) -> None:
        self.url = url
        self.crawl_id = crawl_id
        self.resume = resume
        self.start_method = start_method

    @classmethod
    def from_config(cls, config: Settings) -> RedisBackend:
        need_redis()
        options = config.backend_options
        return cls(redis_url(options["redis"]), options["crawl_id"], config.resume, config.start_method)

    def workers(self, spec: WorkerSpec, count: int) -> RedisGroup:
        return RedisGroup(self, spec, count)


class RedisGroup:
    """The coordinator's side: the streams, the takeovers, and `count` local workers."""

    def __init__(self, backend: RedisBackend, spec: WorkerSpec, count: int) -> None:
        self.backend = backend
        self.url = backend.url
        self.keys = Keys(backend.crawl_id)
        self.spec = spec
        self.count = count
        self.me = node_name()
        self.lock = Lock(self.keys, self.me)
        self.client: Any = None
        self._delivered: list[Result] = []  # results of an earlier coordinator (--resume)
        self._tasks = StreamTasks(self)
        self._results = StreamResults(self)
        context = multiprocessing.get_context(backend.start_method)
        self._local = LocalProcesses(context, count, self._launch)  # -w N, and the isolation worker
        self._heartbeats: list[dict[str, Any]] = []
        self._last_look = self._last_take_over = 0.0
        self._wanted = 0
        self._outage_since: float | None = None
        self._lost_state = False  # Redis lost our keys (a restart without persistence)
        self._run_id = ""  # the Redis server's: it changes when Redis restarts
        self._came_back = False  # Redis was away or restarted: some writes may be lost
        self._started_at = 0.0
        self._last_lost_look = 0.0
        self._taken: set[int] = set()  # task ids taken over from silent workers, to send again
        self._hangs_seen: set[tuple[str, int]] = set()  # (worker, task id) hangs reported
        self._joined_at: float | None = None  # when the first worker was heard of
        self._said_no_worker = False

    @property
    def tasks(self) -> StreamTasks:
        return self._tasks

    @property
    def results(self) -> StreamResults:
        return self._results

    # -- starting -------------------------------------------------------------------

    def start(self) -> None:
        """Refused (UsageError) while another coordinator holds the crawl's lock;
        until the lock is ours nothing is written (a refused start leaves Redis as it was)."""
        self.client = connect(self.url)
        self._take_lock()
        self._started_at = time.monotonic()
        if self.backend.resume:
            self._delivered = self._results.read_all()
        self._prepare_streams()
        self._run_id = self._server_run_id()
        self._start_local_workers()

    def _take_lock(self) -> None:
        if not self.lock.take(self.client):
            holder = (self.client.get(self.keys.lock) or b"?").decode(errors="replace")
            raise UsageError(f"crawl {self.keys.crawl_id!r} is already running at {masked(self.url)} "
                             f"(coordinator {holder}); give another --crawl-id")  # fmt: skip

    def _prepare_streams(self) -> None:
        """A fresh task and result stream, the spec, and the state every worker waits for."""
        k, ttl = self.keys, str(STATE_TTL)
        self.lock.write(
            self.client,
            ("DEL", k.tasks, k.isolated, k.results),
            ("XGROUP", "CREATE", k.tasks, GROUP, "$", "MKSTREAM"),
            ("XGROUP", "CREATE", k.isolated, GROUP, "$", "MKSTREAM"),
            ("SET", k.spec, wire.dump_spec(self.spec), "EX", ttl),
            ("SET", k.wanted, self._wanted or self.spec.threads, "EX", ttl),
            ("DEL", k.stats),
            ("HSET", k.stats, "done", 0, "started_at", time.time(), "coordinator", self.me),
            ("SET", k.state, "running", "EX", ttl),
            ("PEXPIRE", k.lock, int(LOCK_TTL * 1000)),
        )  # fmt: skip
        self.lock.renew(self.client)  # the TTL of the streams and stats too
        self._results.last_id = "0"

    def _start_local_workers(self) -> None:
        self._local.start()

    def _launch(self, context: Any, isolated: bool) -> Local:
        """A local worker: it gets only the URL and the crawl id (any start method works),
        and is named as its consumer is (host:pid)."""
        from .redis_worker import run_local_worker

        process = context.Process(target=run_child, args=(run_local_worker, self.url, self.keys.crawl_id,
                                                          isolated), daemon=True)  # fmt: skip
        process.start()
        return Local(_consumer(process), process)

    def isolate(self) -> bool:
        """Whether a task sent again after a death runs alone in the isolation worker
        (as in the process backend: a death there names its culprit). Only with local
        workers; with remote workers only (-w 0), blame stays per worker."""
        if self.count == 0:
            return False
        self._local.isolation()
        return True

    # -- what the crawl asks ------------------------------------------------------

    def delivered(self) -> list[Result]:
        return self._delivered

    def capacity(self) -> int:
        """What the live workers announce: their fetch threads plus QUEUED each."""
        self._look()
        self._notice_no_worker()
        wanted = self._wanted or self.spec.threads
        announced = sum(min(wanted, int(beat.get("threads", 1))) + QUEUED for beat in self._heartbeats)
        # Local workers count from the start: their first tasks wait in the stream
        # while they start, instead of the crawl waiting for their first heartbeat.
        return max(announced, len(self._local.workers) * (min(wanted, self.spec.threads) + QUEUED))

    def max_concurrency(self) -> int:
        return max(1, self.count) * self.spec.threads

    def waited(self) -> float:
        """Seconds the crawl waited for its first worker (remote only, -w 0)."""
        if self.count or not self._started_at:
            return 0.0
        return (self._joined_at or time.monotonic()) - self._started_at

    def _notice_no_worker(self) -> None:
        """Once, after NO_WORKER_AFTER seconds without a worker: say so, and how to start one."""
        if self._joined_at is not None or self.count:
            return
        now = time.monotonic()
        if self._heartbeats:
            self._joined_at = now
        elif now - self._started_at > NO_WORKER_AFTER and not self._said_no_worker:
            self._said_no_worker = True
            crawl = "" if self.keys.crawl_id == "default" else f" --crawl-id {self.keys.crawl_id}"
            log.warning("no worker has joined crawl %r in %g s: start one on any machine that reaches "
                        "Redis: scraper worker %s%s", self.keys.crawl_id, NO_WORKER_AFTER,
                        masked(self.url), crawl)  # fmt: skip

    def scale(self, threads: int) -> None:
        threads = max(1, min(self.spec.threads, threads))
        if threads != self._wanted:
            self._wanted = threads
            self.write(("SET", self.keys.wanted, threads, "EX", STATE_TTL))

    def activity(self) -> list[Activity]:
        self._look()
        return [Activity(beat["name"], int(task_id), busy, parsing)
                for beat in self._heartbeats
                for task_id, (busy, parsing) in beat.get("holds", {}).items()]  # fmt: skip

    def failed(self) -> list[Failure]:
        """Workers silent past CLAIM_IDLE (their tasks are taken over), dead local
        processes, and hung parses (each reported once: the hung thread goes on
        showing it in its heartbeats while its retry runs elsewhere)."""
        self._look()
        now = time.monotonic()
        if now - self._last_take_over < TAKE_OVER_EVERY:
            return []
        self._last_take_over = now
        return self._take_over(self._dead_local()) + self._new_hangs()

    def _new_hangs(self) -> list[Failure]:
        found = []
        for failure in hung_failures(self.activity(), hung_after(self.spec)):
            fresh = tuple(i for i in failure.task_ids if (failure.worker, i) not in self._hangs_seen)
            self._hangs_seen.update((failure.worker, i) for i in fresh)
            if fresh:
                found.append(Failure(failure.worker, fresh, Reason.HUNG))
        return found

    def recover(self, failures: list[Failure], in_flight: Mapping[int, Task]) -> list[Task]:
        """Dead local processes are replaced, and local ones with a hung parse too (a
        stuck thread is capacity lost for good); every task taken over is sent again
        (those blamed are the failures' own)."""
        self._kill_hung_local({f.worker for f in failures if f.reason == Reason.HUNG})
        self._replace_dead_local()
        again = self._taken | {task_id for failure in failures for task_id in failure.task_ids}
        self._taken = set()
        return [task for task_id, task in in_flight.items() if task_id in again]

    def lost(self, in_flight: Mapping[int, Task]) -> list[Task]:
        """Tasks in flight Redis lost: all of them after it lost our keys (a restart
        without persistence); after an outage or a restart from older data, those it
        has in no stream. Looked at every TAKE_OVER_EVERY seconds."""
        self._look()
        if self._lost_state:
            self._lost_state = False
            return list(in_flight.values())
        now = time.monotonic()
        if now - self._last_lost_look < TAKE_OVER_EVERY:
            return []
        self._last_lost_look = now
        run_id = self._call(self._server_run_id)
        if self._came_back or run_id != self._run_id:
            self._came_back, self._run_id = False, run_id
            return self._missing(in_flight)
        return []

    def _missing(self, in_flight: Mapping[int, Task]) -> list[Task]:
        """Tasks in flight that Redis has nowhere, neither in a task stream (queued, or
        held by a worker) nor answered in the result stream: it came back from older
        data (appendfsync everysec loses up to a second, an RDB snapshot more)."""
        known = {wire.load_task(message).id for message in self._tasks.waiting}
        k, after = self.keys, self._results.last_id
        after = after.decode() if isinstance(after, bytes) else after
        for stream, start in ((k.tasks, "-"), (k.isolated, "-"), (k.results, f"({after}")):
            for fields in self._call(lambda: list(entries(self.client, stream, start))):  # noqa: B023
                try:
                    message = fields.get(b"m", b"")
                    known.add(wire.load_result(message).task.id if stream == k.results
                              else wire.load_task(message).id)  # fmt: skip
                except wire.WireError:
                    continue
        missing = [task for task_id, task in in_flight.items() if task_id not in known]
        if missing:
            log.warning("Redis came back without %d task(s) in flight: sending them again", len(missing))
        return missing

    def _server_run_id(self) -> str:
        return str(self.client.info("server").get("run_id", ""))

    def stop(self, deadline: float, finished: bool = True) -> None:
        """The broadcast (state), then wait for local workers, then kill what is left.
        Only while the lock is ours: a refused coordinator, or one whose lock went to a
        newer one, touches nothing in Redis."""
        ours = self.lock.held
        if ours:
            self._best_effort(lambda: self._end_crawl("done" if finished else "stopped"))
        else:
            deadline = time.monotonic()  # nothing told them to stop: do not wait for them
        self._local.stop(deadline, warn=ours)
        if self.client is not None:
            self.client.close()

    def _end_crawl(self, state: str) -> None:
        k, ttl = self.keys, str(STATE_TTL)
        self.lock.write(
            self.client,
            ("SET", k.state, state, "EX", ttl),
            ("HSET", k.stats, "done", self._results.pages),
            ("EXPIRE", k.stats, ttl),
            ("EXPIRE", k.results, ttl),
            ("DEL", k.tasks, k.isolated, k.spec, k.wanted),
        )  # fmt: skip
        self._results.trim(everything=True)
        # The lock last: until it goes, no second coordinator can start on what we leave.
        self.lock.write(self.client, ("DEL", k.lock))
        self.lock.held = False

    # -- looking at Redis -----------------------------------------------------------

    def _look(self) -> None:
        """Renew the lock and read the heartbeats, at most every LOOK_EVERY seconds (a
        worker that joins is given tasks that soon after its first heartbeat)."""
        now = time.monotonic()
        if now - self._last_look < LOOK_EVERY:
            return
        self._last_look = now
        self._call(self._renew_lock)
        self._heartbeats = self._call(self._read_heartbeats)
        self.write(("HSET", self.keys.stats, "done", self._results.pages))

    def _renew_lock(self) -> None:
        """Renew the lock (and the TTL of the crawl's keys). Gone: taken again, and if
        Redis lost the crawl's keys with it (a restart without persistence) they are
        made again. Held by a newer coordinator: LockLost."""
        if self.lock.renew(self.client):
            return
        if not self.lock.take(self.client):  # a newer coordinator took it meanwhile
            raise self.lock.lost(self.client.get(self.keys.lock))
        if self.client.exists(self.keys.spec):
            log.warning("the crawl's lock had expired (this process paused for %g s?): taken again", LOCK_TTL)
            return
        log.warning("Redis lost the crawl's keys (restarted without persistence?): sending "
                    "the pages in flight again")  # fmt: skip
        self._prepare_streams()
        self._lost_state = True

    def _read_heartbeats(self) -> list[dict[str, Any]]:
        names = sorted(n.decode() for n in self.client.smembers(self.keys.workers))
        pipe = self.client.pipeline()
        for name in names:
            pipe.get(self.keys.worker(name))
        beats = []
        for name, raw in zip(names, pipe.execute(), strict=True):
            if raw is None:
                self.lock.write(self.client, ("SREM", self.keys.workers, name))
                continue
            try:
                beats.append(json.loads(raw))
            except ValueError:
                continue
        return beats

    def _dead_local(self) -> list[str]:
        """Consumer names of local worker processes that died (taken over at once)."""
        return [local.name for local in self._local.dead()]

    def _kill_hung_local(self, hung: set[str]) -> None:
        """Kill the local processes among `hung`; their other tasks are taken over now."""
        killed = [local for local in self._local.all() if local.name in hung]
        self._local.kill(killed)
        if killed:
            self._take_over([local.name for local in killed])

    def _replace_dead_local(self) -> None:
        self._local.replace_dead()

    def _take_over(self, dead: list[str]) -> list[Failure]:
        """Every task of the workers known dead, or silent for CLAIM_IDLE seconds (a live
        worker renews all it holds every second: one entry that old means it is gone).
        All of a consumer's tasks, not only its old ones: those it read after its last
        renewal are younger, and must not stay behind (issue 21, bug 3)."""
        taken: dict[str, list[int]] = {name: [] for name in dead}
        for stream in (self.keys.tasks, self.keys.isolated):
            pending: list[dict[str, Any]] = self._call(functools.partial(
                self.client.xpending_range, stream, GROUP, min="-", max="+", count=10_000,
                idle=int(CLAIM_IDLE * 1000)))  # fmt: skip
            silent = dict.fromkeys([*dead, *(entry["consumer"].decode() for entry in pending)])
            for name in silent:
                taken.setdefault(name, []).extend(self._settle_taken(stream, name))
        return [self._blame(name, task_ids) for name, task_ids in taken.items()]

    def _blame(self, worker: str, task_ids: list[int]) -> Failure:
        """As the other backends: a death while parsing is the parsing pages' fault
        (blamed_tasks, from the worker's last heartbeat); every task taken is sent again."""
        self._taken.update(task_ids)
        held = [a for a in self.activity() if a.worker == worker and a.task_id in task_ids]
        return Failure(worker, blamed_tasks(held) or tuple(task_ids), Reason.DIED)

    def _settle_taken(self, stream: str, consumer: str) -> tuple[int, ...]:
        """Every task `consumer` holds, taken from it in one step: no one else will run them."""
        messages = self._call(lambda: self.lock.take_over(self.client, stream, consumer))
        task_ids = []
        for message in messages:
            try:
                task_ids.append(wire.load_task(message).id)
            except wire.WireError:
                continue
        if task_ids:
            log.warning("worker %s died or was not heard of for %g s: taking over %d task(s)",
                        consumer, CLAIM_IDLE, len(task_ids))  # fmt: skip
        return tuple(task_ids)

    # -- Redis unreachable ------------------------------------------------------------

    def _call(self, operation: Callable[[], T]) -> T:
        """Run `operation`, waiting out an outage of up to OUTAGE_LIMIT seconds."""
        while True:
            try:
                value = operation()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                self._wait_out(exc)
                continue
            except redis.ResponseError as exc:
                if str(exc).startswith(LOST):
                    raise self.lock.lost(str(exc)) from None
                if "NOGROUP" not in str(exc):
                    raise
                self._wait_out(exc)  # a restart without persistence: the lock check recreates
                self._call(self._renew_lock)
                continue
            if self._outage_since is not None:
                log.warning("Redis is back after %.1f s", time.monotonic() - self._outage_since)
                self._outage_since = None
                self._came_back = True
            return value

    def write(self, *commands: tuple[Any, ...]) -> Any:
        """Run `commands` if the lock is still ours (redis_lock.py), outages waited out."""
        return self._call(lambda: self.lock.write(self.client, *commands))

    def _wait_out(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            log.warning("Redis at %s is unreachable (%s); waiting up to %g s",
                        masked(self.url), reason(exc), OUTAGE_LIMIT)  # fmt: skip
        elif now - self._outage_since > OUTAGE_LIMIT:
            raise ScraperError(f"Redis at {masked(self.url)} unreachable for {OUTAGE_LIMIT:g} s; "
                               "the output is valid: rerun with --resume")  # fmt: skip
        time.sleep(RETRY_PAUSE)

    def _best_effort(self, operation: Callable[[], Any]) -> None:
        if self.client is None:
            return
        try:
            operation()
        except Exception as exc:  # closing: Redis may be the reason we are closing
            log.warning("could not tell the workers the crawl ended (%s)", reason(exc))


def _consumer(process: Any) -> str:
    """The consumer name of a local worker process (redis_worker.node_name, seen from here)."""
    return f"{socket.gethostname()}:{process.pid}"
