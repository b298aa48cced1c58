"""Ctrl-C on the command line (interrupts.py): the first signal stops the crawl
under way and any that has not started yet; the second stops at once; none is lost."""

from __future__ import annotations

import os
import signal

import pytest

from scraper import CrawlConfig
from scraper.crawl import Crawl
from scraper.errors import CrawlInterrupted
from scraper.interrupts import Interrupts, stop_on_signals

pytestmark = pytest.mark.timeout(60)


class FakeCrawl:
    def __init__(self) -> None:
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1


def test_the_first_signal_stops_the_running_crawl_and_the_second_raises():
    interrupts, crawl = Interrupts(), FakeCrawl()
    with interrupts.running(crawl):
        interrupts.handle(signal.SIGTERM)
        assert crawl.stops == 1 and interrupts.exit_status == 143
        with pytest.raises(CrawlInterrupted):
            interrupts.handle(signal.SIGINT)
    assert interrupts.exit_status == 143  # the first one decides


def test_a_signal_before_a_crawl_starts_stops_it_as_it_starts():
    interrupts, later = Interrupts(), FakeCrawl()
    interrupts.handle(signal.SIGINT)  # e.g. between two runs of the demo
    with interrupts.running(later):
        assert later.stops == 1
    assert interrupts.exit_status == 130


def test_a_signal_inside_a_finalizer_is_not_lost():
    """A KeyboardInterrupt raised in a __del__ is printed and forgotten by Python;
    the handler records the signal instead."""

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between two bytecodes of this method
                pass

    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals() as interrupts:
        Finalized()
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a system call: pending handlers have run
    assert interrupts.received == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_crawl_stopped_before_it_started_fetches_nothing(serve):
    server = serve(pages=5)
    crawl = Crawl(CrawlConfig(backend="thread", workers=1, depth=2), [server.url("/")])
    crawl.stop()
    with crawl:
        assert list(crawl.run()) == []
    assert server.paths() == []


def test_a_comparison_after_a_signal_starts_no_run(serve, tmp_path):
    from scraper.compare import run_comparison

    server = serve(pages=3)
    interrupts = Interrupts()
    interrupts.handle(signal.SIGINT)
    config = CrawlConfig(workers=2, depth=1)
    assert run_comparison(config, [server.url("/")], str(tmp_path / "out.jsonl"), interrupts) == []
    assert server.paths() == []
