"""Fetch threads inside worker processes, the automatic in-flight limit, and
workers that cannot run their task's result or cannot start at all."""

from __future__ import annotations

import time

import pytest
from conftest import backend_params
from hostile_server import HostileServer

import scraper
from scraper.backends.base import PREFETCH
from scraper.backends.process import ProcessBackend
from scraper.crawl import queue_ahead, worker_spec
from scraper.scheduler import FetchThreads


class Unpicklable(str):
    """JSON-serializable (a str) but refuses to be pickled, so it cannot reach the parent."""

    def __reduce__(self):
        raise TypeError("not picklable")


def unpicklable_field(record, tree):
    return {"odd": Unpicklable("x")}


@pytest.mark.timeout(60)
def test_one_process_runs_several_fetches_at_once():
    with HostileServer() as server:
        urls = [server.url(f"/slow/{i}") for i in range(16)]
        records = scraper.crawl(urls, workers=1, concurrency=8, backend="process", start_method="fork")
    assert sorted(r["url"] for r in records) == sorted(urls)
    assert all(r["ok"] and r["worker"] == "process-1" for r in records)
    assert 2 <= server.httpd.max_in_flight <= 8


@pytest.mark.timeout(60)
def test_concurrency_caps_requests_in_flight():
    with HostileServer() as server:
        urls = [server.url(f"/slow/{i}") for i in range(12)]
        records = scraper.crawl(urls, workers=2, concurrency=3, backend="process", start_method="fork")
    assert len(records) == 12
    assert server.httpd.max_in_flight <= 3


@pytest.mark.parametrize(("per_host", "ahead"), [(64, 2 * PREFETCH), (63, 0), (8, 0)])
def test_tasks_queue_ahead_only_when_the_threads_cannot_exceed_the_per_host_cap(per_host, ahead):
    assert queue_ahead(workers=2, max_concurrency=2 * 32, per_host=per_host) == ahead


@pytest.mark.timeout(60)
@pytest.mark.parametrize("per_host", [4, 6])
def test_tasks_queued_ahead_never_raise_requests_in_flight_above_the_cap(per_host, monkeypatch):
    # 2 workers x 3 threads: with --per-host 6 tasks wait in the queue, with 4 they do not.
    monkeypatch.setattr(scraper.config, "AUTO_THREADS_PER_WORKER", 3)
    with HostileServer() as server:
        urls = [server.url(f"/slow/{i}") for i in range(24)]
        records = scraper.crawl(urls, workers=2, per_host=per_host, backend="process", start_method="fork")
    assert sorted(r["url"] for r in records) == sorted(urls)
    assert server.httpd.max_in_flight <= per_host


def feed(limit: FetchThreads, cpu_ms: float, wall_ms: float, results: int) -> None:
    for _ in range(results):
        limit.observe(cpu_ms=cpu_ms, wall_ms=wall_ms)


def test_fetch_threads_are_fixed_with_one_thread_per_worker_or_with_concurrency():
    one = FetchThreads(workers=4, max_threads=1, concurrency=None)
    feed(one, cpu_ms=1, wall_ms=100, results=100)
    assert one.threads == 1
    fixed = FetchThreads(workers=2, max_threads=5, concurrency=10)
    feed(fixed, cpu_ms=1, wall_ms=1000, results=100)
    assert fixed.threads == 5


def test_fetch_threads_start_as_if_parse_bound():
    assert FetchThreads(workers=2, max_threads=32, concurrency=None).threads == 1


def test_capacity_comes_from_the_workers_and_concurrency_caps_it():
    from scraper.backends.thread import ThreadBackend
    from scraper.scheduler import Scheduler

    config = scraper.CrawlConfig(workers=3, backend="thread", per_host=50)
    group = ThreadBackend().workers(worker_spec(config), 3)
    assert group.capacity() == 0  # nothing started: nothing may be handed out
    group.start()
    try:
        assert group.capacity() == 3 * (1 + PREFETCH)
    finally:
        group.stop(time.monotonic() + 5)
    for concurrency, handed_out in ((None, 12), (5, 5)):
        scheduler = Scheduler(config.replace(concurrency=concurrency), ("example.com",))
        scheduler.add_seeds([f"http://example.com/{i}" for i in range(20)])
        robots = scheduler.fill(12)
        assert [task.kind for task in robots] == ["robots"]
        scheduler.frontier.robots_arrived(robots[0], 404, b"")
        assert len(scheduler.fill(12)) == handed_out - 1  # the robots.txt task is still in flight


def test_threads_cover_the_wait_for_the_network():
    limit = FetchThreads(workers=2, max_threads=32, concurrency=None)
    feed(limit, cpu_ms=2.0, wall_ms=12.0, results=1)  # 10 ms waiting for 2 ms of CPU: 1 + 10/2
    assert limit.threads == 6
    feed(limit, cpu_ms=1.0, wall_ms=101.0, results=64)  # a 100 ms server: as many as allowed
    assert limit.threads == 32


def test_a_parse_bound_crawl_keeps_one_thread_per_process():
    limit = FetchThreads(workers=2, max_threads=32, concurrency=None)
    feed(limit, cpu_ms=2.5, wall_ms=2.8, results=200)  # a fast server: the CPU is the limit
    assert limit.threads == 1


def test_waits_for_the_gil_do_not_feed_the_estimate():
    limit = FetchThreads(workers=1, max_threads=32, concurrency=None)
    # Most tasks waited for other threads' parsing; a quarter shows the real network wait.
    for i in range(64):
        limit.observe(cpu_ms=2.0, wall_ms=2.4 if i % 3 == 0 else 30.0)
    assert limit.threads == 1


def test_free_tasks_do_not_ask_for_hundreds_of_threads():
    limit = FetchThreads(workers=2, max_threads=32, concurrency=None)
    feed(limit, cpu_ms=0.0, wall_ms=3.0, results=64)  # e.g. errors: no CPU at all
    assert limit.threads == round(1 + 3.0 / FetchThreads.MIN_CPU_MS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", backend_params("process"))
def test_a_result_that_cannot_be_sent_becomes_an_error_record(small_site, backend):
    records = scraper.crawl([small_site.url("/")], parse=unpicklable_field,
                            **backend.kwargs)  # fmt: skip
    assert len(records) == 1
    assert records[0]["error"].startswith("internal: result could not be sent")


@pytest.mark.timeout(60)
def test_workers_that_cannot_start_end_the_crawl_with_an_error(small_site):
    # Imported here: spawned workers import this test module, and must be able to.
    from child_import_fails import parse as parse_that_workers_cannot_import

    with pytest.raises(scraper.ScraperError, match="importable"):
        scraper.crawl([small_site.url("/")], parse=parse_that_workers_cannot_import,
                      backend="process", start_method="spawn", workers=1)  # fmt: skip


def test_a_parse_callback_that_does_not_pickle_is_a_usage_error():
    with pytest.raises(scraper.UsageError, match="top-level"):
        scraper.CrawlConfig(parse=lambda record, tree: {})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", backend_params("process"))
def test_workers_with_many_fetch_threads_end_on_the_stop_broadcast(backend):
    spec = worker_spec(scraper.CrawlConfig(workers=2, concurrency=64))
    group = ProcessBackend(backend.start_method).workers(spec, 2)
    group.scale(32)
    group.start()
    time.sleep(1.0)  # let every fetch thread start and wait for a task
    processes = [worker.process for worker in group._local.workers]
    started = time.monotonic()
    group.stop(started + 20)
    took = time.monotonic() - started
    # Exit code 0: each ended on the broadcast, none was killed at the deadline.
    assert [process.exitcode for process in processes] == [0, 0]
    assert took < 10
