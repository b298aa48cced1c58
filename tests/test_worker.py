"""The host loop (scraper/worker.py) over a fake Source: no backend, no network."""

from __future__ import annotations

import contextlib
import pickle
import queue
import threading
import time

import pytest

from scraper.records import Result, Task, WorkerSpec
from scraper.worker import IDLE, Board, Host, Leave, Orders

SPEC = WorkerSpec(timeout=2, max_bytes=1000, retries=0, user_agent="t")
REFUSED = "http://127.0.0.1:9/"  # nothing listens: each task fails at once


class FakeSource:
    """Hands out `tasks` by handle; says the crawl ended once every result came."""

    def __init__(self, tasks: int, read_ahead: int = 0, leave_at_once: Leave | None = None) -> None:
        self.waiting = [(f"h{i}", Task(i, f"{REFUSED}{i}")) for i in range(tasks)]
        self.total = tasks
        self.read_ahead = read_ahead
        self.leave_at_once = leave_at_once
        self.asked: list[int] = []  # `most` of every take()
        self.sent: list[tuple[str, int]] = []  # (handle, task id) of every result sent
        self.given_back: list[tuple[str, Task]] = []
        self.said_goodbye = False
        self.lock = threading.Lock()

    def thread_name(self, index: int) -> str:
        return f"fake/{index + 1}"

    def take(self, most: int, timeout: float) -> list[tuple[str, Task]]:
        self.asked.append(most)
        taken, self.waiting = self.waiting[:most], self.waiting[most:]
        if not taken:
            time.sleep(timeout)
        return taken

    def pack(self, result: Result) -> bytes:
        return pickle.dumps(result)

    def send(self, batch: list[tuple[str, bytes]]) -> None:
        with self.lock:
            self.sent += [(handle, pickle.loads(message).task.id) for handle, message in batch]

    def give_back(self, taken: list[tuple[str, Task]]) -> None:
        self.given_back += taken

    def keep(self, board: Board, threads: int) -> Orders:
        if self.leave_at_once is not None:
            return Orders(leave=self.leave_at_once)
        with self.lock:
            ended = len(self.sent) == self.total
        return Orders(wanted=2, leave=Leave.FINISH if ended else None)

    def goodbye(self) -> None:
        self.said_goodbye = True


def test_a_host_takes_one_task_per_idle_thread_and_sends_each_result_with_its_handle():
    source = FakeSource(tasks=7)
    host = Host(source, SPEC, threads=4)
    host.run()
    assert sorted(source.sent) == [(f"h{i}", i) for i in range(7)]
    assert len(host.threads) == 2  # as many as wanted, under the limit of 4
    assert max(source.asked) <= 2  # no read-ahead: never more than the idle threads
    assert source.said_goodbye and not source.given_back
    assert list(host.board.task) == [IDLE] * 4 and host.taken == 0


def test_a_host_told_to_stop_gives_back_what_it_did_not_begin():
    source = FakeSource(tasks=3, leave_at_once=Leave.GIVE_BACK)
    host = Host(source, SPEC, threads=2)
    host.local.put(("h9", Task(9, REFUSED)))  # taken, and no thread has begun it
    host.taken = 1
    host.run()
    assert [handle for handle, _ in source.given_back] == ["h9"]
    assert source.said_goodbye and host.taken == 0


def test_a_host_reads_ahead_only_for_short_tasks_where_its_source_allows():
    assert not Host(FakeSource(0, read_ahead=8), SPEC, 4).reads_ahead  # tasks count as long at first
    short, never = Host(FakeSource(0, read_ahead=8), SPEC, 4), Host(FakeSource(0), SPEC, 4)
    short.task_seconds = never.task_seconds = 0.002
    assert short.reads_ahead and not never.reads_ahead


def _host_queue():
    return Host(FakeSource(tasks=0), SPEC, threads=1).local


def _thread_backend_queue():
    from scraper.backends.thread import _QueueTasks

    return _QueueTasks().queue


@pytest.mark.timeout(30)
@pytest.mark.parametrize("make_queue", [_host_queue, _thread_backend_queue], ids=["host", "thread-backend"])
def test_threads_polling_one_task_queue_all_come_back_once_the_puts_stop(make_queue):
    """Fetch threads wait on their task queue with a short timeout, between looks at
    the stop broadcast. CPython 3.11's SimpleQueue.get(timeout) can wait for ever when
    another thread took the item it was woken for (seen in CI: a worker thread that
    never ended). This stress caught it in 1 of 16 runs on SimpleQueues; a Queue has no such wait."""
    tasks = make_queue()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                tasks.get(timeout=0.001)

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        for _ in range(3):
            tasks.put(("handle", Task(1, REFUSED)))
        time.sleep(0.0005)
    stop.set()
    for thread in threads:
        thread.join(2.0)
    assert not [thread for thread in threads if thread.is_alive()]
