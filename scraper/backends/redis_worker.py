"""The worker side of the redis backend: a process on any machine (SPEC 8).

A worker process (a Node) waits for its coordinator, takes the WorkerSpec
from Redis and runs the one worker loop (fetcher.worker_main) in fetch
threads over a Redis WorkerContext:

    main thread: XREADGROUP COUNT <= idle threads (16 at most) -> local queue -> fetch threads
                 every second: renew what it holds (XCLAIM JUSTID), heartbeat, read `state`
    fetch thread: task -> result -> outbox; the thread that finds no send under way sends
                  the outbox: MULTI: XADD results, XACK + XDEL their tasks (one round trip a batch)

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
import queue
import sys
import threading
import time
from typing import Any

from .. import wire
from ..callbacks import resolve_callback
from ..errors import UsageError
from ..fetcher import worker_main
from ..records import Result, Task, WorkerSpec
from .local import parent_alive
from .streams import BATCH, GROUP, HEARTBEAT_TTL, RENEW_EVERY, Keys, WarnOnce, connect, masked, node_name

log = logging.getLogger("scraper")

READ_BLOCK_MS = 50  # longest wait for tasks: bounds how late the worker sees `state`
LISTEN_EVERY = 0.05  # seconds between two reads of `state` and `wanted` (cheap: one GET each)
WAIT_POLL = 0.1  # seconds between two looks for a coordinator (two GETs)
SHORT_TASK = 0.05  # seconds: tasks shorter than this are read a batch ahead
EXIT_AFTER = 2.0  # SPEC 8: workers are gone within 2 s of the end of the crawl


class Node:
    """One worker process taking part in one crawl."""

    def __init__(
        self, client: Any, keys: Keys, spec: WorkerSpec, threads: int, is_local: bool = False,
        isolated: bool = False,
    ) -> None:  # fmt: skip
        """`isolated`: the isolation worker (backends/redis.py): one thread, one task at a
        time, from the stream of tasks sent again after a death."""
        self.client = client
        self.keys = keys
        self.stream = keys.isolated if isolated else keys.tasks
        self.isolated = isolated
        self.spec = spec
        self.limit = max(1, threads)
        self.is_local = is_local
        self.name = node_name()
        self.local: queue.SimpleQueue[tuple[bytes, Task]] = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue[tuple[bytes, bytes]] = queue.SimpleQueue()
        self.sending = threading.Lock()  # held by the fetch thread that sends the outbox
        self.held: set[bytes] = set()  # entry ids read and not yet answered in Redis
        self.taken = 0  # tasks read and not yet done by a fetch thread
        self.refill_at = 0  # read more tasks once `taken` is down to this
        self.freed = threading.Event()  # `taken` is down to `refill_at`
        self.task_seconds = 1.0  # a task's time in a fetch thread, moving average (starts long)
        self.board: dict[int, list[Any]] = {}  # thread index -> [task id, took at, parsing since]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ended = False  # the crawl ended (state done/stopped): nothing to give back
        self.pages = 0
        self.wanted = self.limit
        self.threads: list[threading.Thread] = []
        self.warn = WarnOnce()
        self._last_keep = 0.0
        self._last_listen = 0.0

    @property
    def reads_ahead(self) -> bool:
        """Whether tasks are short, so read a batch ahead and results go by fours. Never in
        the isolation worker: a death there is blamed on every task it holds, so it holds one."""
        return self.task_seconds < SHORT_TASK and not self.isolated

    # -- the main thread --------------------------------------------------------------

    def run(self) -> None:
        """Take part until the crawl ends or `stop` is set; then leave cleanly."""
        try:
            while not self.stop.is_set():
                self._keep()  # first: the coordinator counts this worker from its first heartbeat
                self._start_threads()
                self._read_tasks()
        finally:
            self._leave()

    def _start_threads(self) -> None:
        while len(self.threads) < min(self.wanted, self.limit):
            context = _Context(self, len(self.threads))
            thread = threading.Thread(target=worker_main, args=(context, self.spec),
                                      name=context.name, daemon=True)  # fmt: skip
            thread.start()
            self.threads.append(thread)

    def _read_tasks(self) -> None:
        """Read tasks for the idle fetch threads.

        Long tasks (a slow server): no more than the idle threads, so that a task
        waits in the shared stream, where any worker's idle thread can take it,
        rather than behind a busy thread here. Short tasks (a fast server, a
        parse-bound crawl): a batch ahead, read when the last batch is nearly
        done, so that a round trip to Redis is neither waited for nor paid per task.
        """
        self.freed.clear()
        with self.lock:
            threads = len(self.threads)
            ahead = BATCH // 2 if self.reads_ahead else 0
            self.refill_at = threads if ahead else threads - 1
            room = min(BATCH, threads + ahead - self.taken) if self.taken <= self.refill_at else 0
        if room <= 0:
            self.freed.wait(LISTEN_EVERY)
            return
        try:
            found = self.client.xreadgroup(GROUP, self.name, {self.stream: ">"},
                                           count=room, block=READ_BLOCK_MS)  # fmt: skip
        except Exception as exc:
            # The stream deleted (the crawl ended: Redis unblocks the read at once),
            # NOGROUP after a Redis restart (the coordinator mends it), or Redis away.
            log.debug("reading tasks: %s", exc)
            self._last_listen = 0.0  # read `state` now
            time.sleep(0.01)
            return
        for _, entries in found or ():
            for entry_id, fields in entries:
                self._accept(entry_id, fields)

    def _accept(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            task = wire.load_task(fields.get(b"m", b""))
        except wire.WireError as exc:  # never run: acknowledged and dropped
            self.warn("the task stream", exc)
            self.client.xack(self.stream, GROUP, entry_id)
            self.client.xdel(self.stream, entry_id)
            return
        with self.lock:
            self.held.add(entry_id)
            self.taken += 1
        self.local.put((entry_id, task))

    def _keep(self) -> None:
        """Read the broadcast and the threads wanted every LISTEN_EVERY seconds; every
        RENEW_EVERY seconds also renew the tasks held and send the heartbeat."""
        now = time.monotonic()
        if now - self._last_listen < LISTEN_EVERY:
            return
        self._last_listen = now
        if self.is_local and not parent_alive():
            self.stop.set()
            return
        beat = now - self._last_keep >= RENEW_EVERY
        if beat:
            self._last_keep = now
        try:
            state, wanted = self._heartbeat(now, beat)
        except Exception as exc:
            log.debug("heartbeat: %s", exc)
            return
        if state in (b"done", b"stopped"):
            self.ended = True
            self.stop.set()
        if wanted is not None:
            self.wanted = max(1, int(wanted))

    def _heartbeat(self, now: float, beat: bool) -> tuple[bytes | None, bytes | None]:
        with self.lock:
            held = list(self.held)
            holds = {task_id: [now - took, None if parsing is None else now - parsing]
                     for task_id, took, parsing in self.board.values()}  # fmt: skip
        message = json.dumps({"name": self.name, "host": self.name.rpartition(":")[0], "pid": os.getpid(),
                              "threads": min(self.wanted, self.limit), "pages": self.pages,
                              "holds": holds, "seen": time.time()})  # fmt: skip
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

    # -- sending results (from the fetch threads) -------------------------------------

    def flush(self) -> None:
        """Send the outbox unless another thread is sending it. A thread sends its own
        result in the common case of one fetch thread (a parse-bound crawl): no hand-over
        to another thread; with many, the results that wait meanwhile go as one batch.
        The sender looks once more after letting go, so no result is left behind."""
        while not self.outbox.empty() and self.sending.acquire(blocking=False):
            try:
                while batch := _drain(self.outbox, BATCH, timeout=0):
                    self._send(batch)
            finally:
                self.sending.release()

    def _idle(self) -> bool:
        with self.lock:
            return not self.board and self.outbox.empty()

    def _send(self, batch: list[tuple[bytes, bytes]]) -> None:
        """Results and the acknowledgement of their tasks in one MULTI: both or neither."""
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

    # -- leaving -------------------------------------------------------------------------

    def _leave(self) -> None:
        """Give back what was not begun, let the running tasks finish, say goodbye."""
        if not self.ended:
            self._give_back(_drain(self.local, 1_000_000, timeout=0))
        deadline = time.monotonic() + self.spec.timeout + 1
        while time.monotonic() < deadline:
            self.flush()  # results put off (short tasks) by threads that stopped since
            if self._idle():
                break
            time.sleep(0.02)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.keys.worker(self.name))
            pipe.srem(self.keys.workers, self.name)
            pipe.execute()
        except Exception as exc:
            log.debug("goodbye: %s", exc)

    def _give_back(self, taken: list[tuple[bytes, Task]]) -> None:
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


class _Context:
    """The WorkerContext of one fetch thread of a Node."""

    def __init__(self, node: Node, index: int) -> None:
        self.node = node
        self.index = index
        self.name = f"{node.name}/{index + 1}"
        self.entry = b""

    def next_task(self, timeout: float) -> Task | None:
        if self.node.local.empty():
            self.node.flush()  # results put off (short tasks) go before this thread waits
        try:
            self.entry, task = self.node.local.get(timeout=timeout)
        except queue.Empty:
            return None
        return task

    def send(self, result: Result) -> None:
        node = self.node
        node.outbox.put((self.entry, wire.dump_result(result)))  # WireError: fetcher sends an error
        # Short tasks: results go by fours, or when this thread has nothing left to do.
        if not node.reads_ahead or node.outbox.qsize() >= BATCH // 4 or node.local.empty():
            node.flush()

    def began(self, task: Task) -> None:
        with self.node.lock:
            self.node.board[self.index] = [task.id, time.monotonic(), None]

    def parsing(self, active: bool) -> None:
        with self.node.lock:
            row = self.node.board.get(self.index)
            if row is not None:
                row[2] = time.monotonic() if active else None

    def done(self, task: Task) -> None:
        node = self.node
        with node.lock:
            row = node.board.pop(self.index, None)
            if row is not None:
                node.task_seconds += 0.1 * (time.monotonic() - row[1] - node.task_seconds)
            node.taken -= 1
            wake = node.taken <= node.refill_at
        if wake:
            node.freed.set()

    def should_stop(self) -> bool:
        return self.node.stop.is_set()


def _drain(source: queue.SimpleQueue[Any], most: int, timeout: float) -> list[Any]:
    items: list[Any] = []
    try:
        items.append(source.get(timeout=timeout) if timeout else source.get_nowait())
        while len(items) < most:
            items.append(source.get_nowait())
    except queue.Empty:
        pass
    return items


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
    Node(client, keys, spec, 1 if isolated else spec.threads, is_local=True, isolated=isolated).run()


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
        node = Node(client, keys, spec, concurrency or spec.threads)
        watcher = threading.Thread(target=_relay_stop, args=(stop, node), daemon=True)
        watcher.start()
        node.run()
        if not forever or stop.is_set():
            return


def _relay_stop(stop: threading.Event, node: Node) -> None:
    while not node.stop.is_set():
        if stop.wait(0.1):
            node.stop.set()
