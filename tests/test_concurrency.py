"""Fetch threads inside worker processes, the automatic in-flight limit, and
workers that cannot run their task's result or cannot start at all."""

from __future__ import annotations

import pytest
from hostile_server import HostileServer

import scraper
from scraper.scheduler import EXTRA_QUEUED, InFlightLimit


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


def test_in_flight_limit_is_fixed_without_extra_threads_or_with_concurrency():
    assert InFlightLimit(workers=4, slots=4, concurrency=None).value == 4 + EXTRA_QUEUED
    fixed = InFlightLimit(workers=2, slots=64, concurrency=10)
    fixed.adjust(cpu_ms=1, wall_ms=1000, results=10)
    assert fixed.value == 10


def test_in_flight_limit_climbs_while_workers_wait_and_pages_come_faster():
    limit = InFlightLimit(workers=2, slots=64, concurrency=None)
    assert limit.value == 2 + EXTRA_QUEUED  # starts as if parse-bound
    values = [limit.value]
    for _ in range(5):
        # Cores 5% busy (waiting on the network), and the page rate follows the limit.
        limit.adjust(cpu_ms=100, wall_ms=1000, results=10 * limit.value)
        values.append(limit.value)
    # x4 per window up to every fetch thread; the last 2 threads brought <10% and were taken back
    assert values == [4, 16, 64, 66, 64, 64]


def test_in_flight_limit_takes_back_an_increase_that_did_not_pay():
    limit = InFlightLimit(workers=2, slots=64, concurrency=None)
    limit.adjust(cpu_ms=1000, wall_ms=1000, results=100)  # cores half busy: try more
    assert limit.value == 7
    limit.adjust(cpu_ms=1000, wall_ms=1000, results=100)  # same page rate: the parent is the limit
    assert limit.value == 4
    for _ in range(InFlightLimit.HOLD):
        limit.adjust(cpu_ms=1000, wall_ms=1000, results=100)
        assert limit.value == 4  # no new try for a while


def test_in_flight_limit_falls_when_the_cores_are_saturated():
    limit = InFlightLimit(workers=2, slots=64, concurrency=None)
    limit.value = 40
    for _ in range(50):
        limit.adjust(cpu_ms=2000, wall_ms=1000, results=100)  # both cores busy: -10% a window
    assert limit.value == 2 + EXTRA_QUEUED


def test_in_flight_limit_adjusts_after_a_window_of_results():
    now = [0.0]
    limit = InFlightLimit(workers=1, slots=32, concurrency=None, clock=lambda: now[0])
    start = limit.value
    for _ in range(InFlightLimit.MIN_WINDOW - 1):
        limit.observe(cpu_ms=1.0)
    now[0] = 1.0  # long enough, but too few results yet
    assert limit.value == start
    limit.observe(cpu_ms=1.0)  # 4 ms of CPU in one second on one core: waiting
    assert limit.value == 4 * start


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_result_that_cannot_be_sent_becomes_an_error_record(small_site, start_method):
    records = scraper.crawl([small_site.url("/")], parse=unpicklable_field,
                            backend="process", start_method=start_method)  # fmt: skip
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
