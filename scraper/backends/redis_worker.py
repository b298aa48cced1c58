"""The worker side of the redis backend: a process on any machine (SPEC 8).

A worker process waits for its coordinator, takes the WorkerSpec from Redis
and runs the host loop (worker.py: fetch threads running fetcher.worker_main,
the read-ahead of short tasks, leaving) over a `StreamSource`, the transport
this module adds:

    take:      XREADGROUP COUNT <= what the host asks (16 at most): its idle threads,
               or a batch ahead while tasks are short
    keep:      every 0.05 s read `state` and `wanted`; every second also renew what it
               holds (XCLAIM JUSTID) and send the heartbeat (the board's holds)
    send:      MULTI: XADD results, XACK + XDEL their tasks (one round trip a batch)
    give_back: XADD again what was not begun, XACK + XDEL it

A task counts as held from XREADGROUP until its result is in the result
stream (acknowledged in the same MULTI); if the worker dies in between, the
coordinator takes it over (backends/redis.py). Stopping (Ctrl-C, SIGTERM)
gives back the tasks not begun (re-added to the stream) and lets the running
ones finish. `scraper worker` (remote.py) runs `serve`; the coordinator's own
local workers run `run_local_worker`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

from .. import wire
from ..callbacks import resolve_callback
from ..errors import UsageError
from ..records import Result, Task, WorkerSpec
from ..worker import Board, Host, Leave, Orders
from .local import parent_alive
from .streams import BATCH, GROUP, HEARTBEAT_TTL, RENEW_EVERY, Keys, WarnOnce, connect, masked, node_name

log = logging.getLogger("scraper")

WAIT_POLL = 0.1  # seconds between two looks for a coordinator (two GETs)


class StreamSource:
    """The transport of a worker process's Host (worker.py): the crawl's task stream
    read with a consumer group, results sent with the acknowledgement of their tasks,
    and the heartbeat."""

    def __init__(
        self, client: Any, keys: Keys, isolated: bool = False, is_local: bool = False,
        told: threading.Event | None = None,
    ) -> None:  # fmt: skip
        """`isolated`: the isolation worker (backends/redis.py), reading the stream of
        tasks sent again after a death. `is_local`: started by the coordinator, so it
        leaves when its parent is gone. `told`: set to leave (Ctrl-C, SIGTERM)."""
        self.client = client
        self.keys = keys
        self.stream = keys.isolated if isolated else keys.tasks
        # A death in the isolation worker is blamed on every task it holds: it holds one.
        self.read_ahead = 0 if isolated else BATCH // 2
        self.is_local = is_local
        self.told = told or threading.Event()
        self.name = node_name()
        self.lock = threading.Lock()  # guards the two below
        self.held: set[bytes] = set()  # entry ids read and not yet answered in Redis
        self.pages = 0
        self.warn = WarnOnce()
        self._last_beat = 0.0

    def thread_name(self, index: int) -> str:
        return f"{self.name}/{index + 1}"

    # -- tasks ---------------------------------------------------------------------------

    def take(self, most: int, timeout: float) -> list[tuple[bytes, Task]]:
        try:
            found = self.client.xreadgroup(GROUP, self.name, {self.stream: ">"}, count=min(BATCH, most),
                                           block=max(1, int(timeout * 1000)))  # fmt: skip
        except Exception as exc:
            # The stream deleted (the crawl ended: Redis unblocks the read at once),
            # NOGROUP after a Redis restart (the coordinator mends it), or Redis away.
            log.debug("reading tasks: %s", exc)
            time.sleep(0.01)
            return []
        taken = [(entry_id, task) for _, entries in found or () for entry_id, fields in entries
                 if (task := self._load(entry_id, fields)) is not None]  # fmt: skip
        with self.lock:
            self.held.update(entry_id for entry_id, _ in taken)
        return taken

    def _load(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Task | None:
        try:
            return wire.load_task(fields.get(b"m", b""))
        except wire.WireError as exc:  # never run: acknowledged and dropped
            self.warn("the task stream", exc)
            self.client.xack(self.stream, GROUP, entry_id)
            self.client.xdel(self.stream, entry_id)
            return None

    def give_back(self, taken: list[tuple[bytes, Task]]) -> None:
        if not taken:
            return
        ids = [entry_id for entry_id, _ in taken]
        try:
            pipe = self.client.pipeline(transaction=True)
            for _, task in taken:
                pipe.xadd(self.stream, {"m": wire.dump_task(task)})
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            pipe.execute()
            log.info("gave back %d task(s)", len(taken))
        except Exception as exc:  # the coordinator takes them over after CLAIM_IDLE instead
            log.warning("could not give back %d task(s): %s", len(taken), exc)

    # -- results -------------------------------------------------------------------------

    def pack(self, result: Result) -> bytes:
        return wire.dump_result(result)  # WireError: fetcher sends an error instead

    def send(self, batch: list[tuple[bytes, bytes]]) -> None:
        """Results and the acknowledgement of their tasks in one MULTI: both or neither.
        A task counts as held from XREADGROUP until then."""
        ids = [entry_id for entry_id, _ in batch]
        for attempt in range(60):
            try:
                pipe = self.client.pipeline(transaction=True)
                for _, message in batch:
                    pipe.xadd(self.keys.results, {"m": message})
                pipe.xack(self.stream, GROUP, *ids)
                pipe.xdel(self.stream, *ids)
                pipe.execute(raise_on_error=False)  # NOGROUP after a restart: the results still went
                break
            except Exception as exc:  # Redis away: keep the results and try again
                log.debug("sending results (attempt %d): %s", attempt + 1, exc)
                time.sleep(1.0)
        with self.lock:
            self.held.difference_update(ids)
            self.pages += len(batch)

    # -- what the worker is told, and says -----------------------------------------------

    def keep(self, board: Board, threads: int) -> Orders:
        """Read the broadcast and the threads wanted; every RENEW_EVERY seconds also renew
        the tasks held and send the heartbeat."""
        if self.told.is_set() or self.is_local and not parent_alive():
            return Orders(leave=Leave.GIVE_BACK)
        now = time.monotonic()
        beat = now - self._last_beat >= RENEW_EVERY
        if beat:
            self._last_beat = now
        try:
            state, wanted = self._heartbeat(board, threads, now, beat)
        except Exception as exc:
            log.debug("heartbeat: %s", exc)
            return Orders()
        if state in (b"done", b"stopped"):
            return Orders(leave=Leave.FINISH)
        return Orders(wanted=None if wanted is None else int(wanted))

    def _heartbeat(
        self, board: Board, threads: int, now: float, beat: bool
    ) -> tuple[bytes | None, bytes | None]:
        holds = {a.task_id: [a.busy_for, a.parsing_for] for a in board.read(self.name, now)}
        with self.lock:
            held, pages = list(self.held), self.pages
        message = json.dumps({"name": self.name, "host": self.name.rpartition(":")[0], "pid": os.getpid(),
                              "threads": threads, "pages": pages, "holds": holds,
                              "seen": time.time()})  # fmt: skip
        pipe = self.client.pipeline(transaction=False)
        if beat and held:
            pipe.xclaim(self.stream, GROUP, self.name, 0, held, justid=True)
        if beat:
            pipe.set(self.keys.worker(self.name), message, px=int(HEARTBEAT_TTL * 1000))
            pipe.sadd(self.keys.workers, self.name)
        pipe.get(self.keys.state)
        pipe.get(self.keys.wanted)
        replies = pipe.execute(raise_on_error=False)
        state, wanted = replies[-2], replies[-1]
        return (None if isinstance(state, Exception) else state,
                None if isinstance(wanted, Exception) else wanted)  # fmt: skip

    def goodbye(self) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.keys.worker(self.name))
            pipe.srem(self.keys.workers, self.name)
            pipe.execute()
        except Exception as exc:
            log.debug("goodbye: %s", exc)


# -- joining a crawl ------------------------------------------------------------------------


def wait_for_crawl(
    client: Any, keys: Keys, url: str, stop: threading.Event, say: bool = True
) -> WorkerSpec | None:
    """Wait until the crawl runs; its spec (None if told to stop first). UsageError if not ours."""
    said = False
    while not stop.is_set():
        state, data = client.get(keys.state), client.get(keys.spec)
        if state == b"running" and data is not None:
            try:
                return wire.load_spec(data)
            except wire.WireError as exc:
                raise UsageError(f"refused: the coordinator of crawl {keys.crawl_id!r} is not ours "
                                 f"({exc})") from None  # fmt: skip
        if say and not said:
            print(f"scraper worker: waiting for the coordinator of crawl {keys.crawl_id!r} "
                  f"at {masked(url)}", file=sys.stderr, flush=True)  # fmt: skip
            said = True
        stop.wait(WAIT_POLL)
    return None


def check_runnable(spec: WorkerSpec, crawl_id: str, parse: str | None = None) -> None:
    """UsageError unless the crawl's parse callback imports here and is `parse`, when
    given: a worker that cannot run the crawl's tasks must not take any."""
    if parse is not None and parse != spec.parse:
        theirs = f"with {spec.parse}" if spec.parse else "without a parse callback"
        raise UsageError(f"crawl {crawl_id!r} parses {theirs}, not with --parse {parse}")
    if spec.parse:
        try:
            resolve_callback(spec.parse)
        except ValueError as exc:
            raise UsageError(f"cannot take part in crawl {crawl_id!r}: its parse callback "
                             f"{spec.parse} {exc}") from None  # fmt: skip


def run_local_worker(url: str, crawl_id: str, isolated: bool = False) -> None:
    """A worker process the coordinator started (-w N, or its isolation worker) with
    local.run_child: one crawl."""
    client, keys = connect(url), Keys(crawl_id)
    spec = wait_for_crawl(client, keys, url, threading.Event(), say=False)
    if spec is None:
        return
    try:
        check_runnable(spec, crawl_id)
    except UsageError as exc:  # the coordinator sees this process die, and says why after a few
        print(f"scraper: worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    source = StreamSource(client, keys, isolated=isolated, is_local=True)
    Host(source, spec, 1 if isolated else spec.threads).run()


def serve(
    url: str, crawl_id: str, concurrency: int | None, forever: bool, stop: threading.Event,
    parse: str | None = None, say: bool = True,
) -> None:  # fmt: skip
    """One worker process of `scraper worker`: crawls until the end (or for ever).
    UsageError when it cannot run the crawl's tasks (check_runnable). `say`: print
    what it waits for and what it joined (one of `-w N` processes leaves it to its parent)."""
    client, keys = connect(url), Keys(crawl_id)
    while not stop.is_set():
        spec = wait_for_crawl(client, keys, url, stop, say)
        if spec is None:
            return
        check_runnable(spec, crawl_id, parse)
        if say:
            print(f"scraper worker: {node_name()} joined crawl {crawl_id!r}", file=sys.stderr, flush=True)
        Host(StreamSource(client, keys, told=stop), spec, concurrency or spec.threads).run()
        if not forever or stop.is_set():
            return
