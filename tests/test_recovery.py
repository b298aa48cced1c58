"""Failed workers without processes: who is blamed (backends/base.py), where a task
sent again goes (the process backend's isolation lane), and what the crawl records
(crawl.Crawl._recover_failed_workers over a fake WorkerGroup)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping

import pytest

from scraper.backends.base import Activity, Failure, blamed_tasks, hung_failures
from scraper.backends.process import ProcessGroup
from scraper.config import CrawlConfig
from scraper.crawl import Crawl, worker_spec
from scraper.records import Task


def task(task_id: int, attempt: int = 0) -> Task:
    return Task(task_id, f"http://example.com/{task_id}", attempt=attempt)


def held(*rows: tuple[int, float | None]) -> list[Activity]:
    return [Activity("process-1", task_id, 10.0, parsing_for) for task_id, parsing_for in rows]


# -- who is blamed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "activity, blamed",
    [
        pytest.param(held((1, 1.0), (2, None), (3, 2.0)), (1, 3), id="the parsing tasks"),
        pytest.param(held((1, None), (2, None)), (1, 2), id="all it held when none was parsing"),
        pytest.param(held((1, 1.0)), (1,), id="its one task"),
        pytest.param([], (), id="nothing when it held nothing"),
    ],
)
def test_a_death_is_blamed_on_the_tasks_that_can_have_caused_it(activity, blamed):
    assert blamed_tasks(activity) == blamed


def test_a_hang_is_blamed_on_the_parse_that_overran_only():
    assert hung_failures(held((1, 20.0), (2, 1.0), (3, None)), hung_after=15) == [
        Failure("process-1", (1,), "hung")
    ]
    assert hung_failures(held((2, 1.0), (3, None)), hung_after=15) == []


# -- the isolation lane of the process backend -------------------------------------------


def test_a_task_sent_again_runs_in_the_isolation_worker_alone(monkeypatch):
    from scraper.backends.local import Local

    class Running:
        def is_alive(self) -> bool:
            return True

    group = ProcessGroup(multiprocessing.get_context("fork"), worker_spec(CrawlConfig()), 2)
    started: list[tuple[str, bool]] = []

    def launch(context: object, isolated: bool) -> Local:
        started.append((context.get_start_method(), isolated))  # type: ignore[attr-defined]
        return Local("isolation", Running())

    monkeypatch.setattr(group._local, "launch", launch)
    try:
        group.tasks.put(task(1, attempt=1))
        assert started == []  # not `alone`: the shared queue, whatever its attempt
        group.tasks.put(task(2, attempt=1), alone=True)
        group.tasks.put(task(3, attempt=1), alone=True)
        # One isolation worker, started once, and not forked from a process whose threads run.
        assert started == [("forkserver", True)]
        assert [group.tasks.isolated.get(timeout=5).id for _ in range(2)] == [2, 3]
        assert group.tasks.shared.get(timeout=5).id == 1
    finally:
        group.tasks.close()
        group.results.close()


# -- what the crawl does after a failure ----------------------------------------------------


class FakeGroup:
    """A WorkerGroup whose failures are scripted; it records what it is given."""

    def __init__(self) -> None:
        self.failures: list[Failure] = []
        self.sent: list[Task] = []
        self.alone: list[int] = []
        self.recovered = 0

    def put(self, task: Task, alone: bool = False) -> None:
        self.sent.append(task)
        if alone:
            self.alone.append(task.id)

    def lost(self, in_flight: Mapping[int, Task]) -> list[Task]:
        return []

    @property
    def tasks(self) -> FakeGroup:
        return self

    def failed(self) -> list[Failure]:
        failures, self.failures = self.failures, []
        return failures

    def recover(self, failures: list[Failure], in_flight: Mapping[int, Task]) -> list[Task]:
        self.recovered += 1
        return list(in_flight.values())  # as the process backend: everything again


class Recovery:
    """A crawl with tasks in flight and a fake group: what a failure leads to."""

    def __init__(self, *in_flight: Task) -> None:
        self.group = FakeGroup()
        self.crawl = Crawl(CrawlConfig(workers=1, backend="thread"), ["http://example.com/"])
        self.crawl.spec = worker_spec(self.crawl.config)
        self.crawl.workers = self.group  # type: ignore[assignment]
        from scraper.aggregator import Aggregator
        from scraper.scheduler import Scheduler

        self.crawl.scheduler = Scheduler(self.crawl.config, ("example.com",))
        self.crawl.aggregator = Aggregator(self.crawl.stats)
        for t in in_flight:
            self.crawl.scheduler.frontier.offer(t.url, 0)
            self.crawl.scheduler.in_flight[t.id] = t

    def fail(self, *failures: Failure) -> tuple[list[Task], list[dict]]:
        """(tasks sent again, records written) after these failures."""
        self.group.failures, self.group.sent = list(failures), []
        self.crawl._last_check = 0.0
        records = self.crawl._recover_failed_workers()
        records += self.crawl.aggregator.flush()
        return self.group.sent, records


def died(*task_ids: int) -> Failure:
    return Failure("process-1", task_ids, "died")


def test_blamed_tasks_are_sent_again_once_and_the_others_as_they_were():
    recovery = Recovery(task(1), task(2), task(3))
    sent, records = recovery.fail(died(1, 2))
    assert sorted(sent, key=lambda t: t.id) == [task(1, attempt=1), task(2, attempt=1), task(3)]
    assert sorted(recovery.group.alone) == [1, 2]  # the crawl says which run alone
    assert records == []
    assert recovery.crawl.scheduler.in_flight[1].attempt == 1  # still in flight, retried once


def test_a_task_blamed_again_is_recorded_and_not_sent_again():
    recovery = Recovery(task(1, attempt=1), task(2))
    sent, records = recovery.fail(died(1))
    assert sent == [task(2)]
    assert [(r["url"], r["error"]) for r in records] == [(task(1).url, "worker_died")]
    assert 1 not in recovery.crawl.scheduler.in_flight


def test_a_hung_parse_blamed_again_is_recorded_as_a_parse_error():
    recovery = Recovery(task(1, attempt=1))
    _, records = recovery.fail(Failure("process-1", (1,), "hung"))
    assert records[0]["error"].startswith("parse: still parsing after")


def test_only_the_page_that_kills_its_worker_alone_fails():
    """A poison page parsing beside an innocent one, then each alone."""
    recovery = Recovery(task(1), task(2))  # 1 innocent, 2 poison
    sent, records = recovery.fail(died(1, 2))
    assert (sorted(t.id for t in sent), records) == ([1, 2], [])
    recovery.crawl.scheduler.in_flight.pop(1)  # the innocent page's result came back
    sent, records = recovery.fail(died(2))
    assert sent == [] and [r["url"] for r in records] == [task(2).url]
    assert recovery.group.recovered == 2
