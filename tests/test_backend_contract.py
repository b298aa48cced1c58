"""One contract, every backend (issue 21): thread, process (fork, spawn, and forkserver,
Python 3.14's default on Linux) and redis. What a backend must do when a worker is
killed, when a parse hangs, when the crawl is stopped with a deadline, and, where a
crawl outlives its coordinator (a broker), when a second coordinator or an early
--resume is started: refused with one line, harming nothing."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from typing import Any

import pytest
from conftest import Backend, backend_params, wait_until
from test_faults import assert_exactly_once, line_count
from test_redis_kills import local_workers

HANG = "/page/3.html"  # its parse never returns
FORKSERVER = Backend("process", "forkserver")
CONTRACT = [*backend_params(), pytest.param(FORKSERVER, id="process-forkserver", marks=[
    pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no forkserver")])]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(params=CONTRACT)
def contract(request: pytest.FixtureRequest) -> Backend:
    chosen: Backend = request.param
    return chosen


def args_of(backend: Backend) -> list[str]:
    """The backend's options; a crawl id of its own on the shared Redis."""
    extra = ["--crawl-id", f"contract-{uuid.uuid4().hex[:8]}"] if backend.name == "redis" else []
    return [*backend.cli_args, *extra]


@pytest.fixture
def hanging_parse(cli_cwd) -> str:
    (cli_cwd / "hangs.py").write_text(
        "import time\n\ndef parse(record, tree):\n"
        f"    if record['url'].endswith({HANG!r}):\n        time.sleep(3600)\n    return {{}}\n"
    )
    return "hangs:parse"


def test_a_killed_worker_loses_no_page(contract, serve, start_cli, write_seeds, expected, cli_cwd) -> None:
    if contract.name == "thread":
        pytest.skip("a thread cannot be killed (test_faults covers a thread whose loop dies)")
    site = serve(pages=120, delay=0.03)
    out = cli_cwd / "out.jsonl"
    cli = start_cli(write_seeds(site.url("/")), "-O", out, "--depth", "6", "-w", "2", *args_of(contract))
    assert wait_until(lambda: line_count(out) >= 10 or cli.popen.poll() is not None, 60)
    victims = local_workers(cli)
    assert victims and cli.popen.poll() is None
    os.kill(victims[0], signal.SIGKILL)
    result = cli.wait(90)
    assert result.rc == 0, result
    assert_exactly_once(result.records, set(expected(site, [site.url("/")], 6)))


def test_a_hung_parse_is_recorded_and_the_crawl_ends(
    contract, hanging_parse, serve, start_cli, write_seeds, expected
) -> None:
    site = serve(pages=20)
    result = start_cli(write_seeds(site.url("/")), "-O", "out.jsonl", "--depth", "2", "-w", "2", "--timeout",
                       "1", "--parse", hanging_parse, *args_of(contract)).wait(90)  # fmt: skip
    assert result.rc == 0, result
    counts: dict[str, Any] = {r["url"]: r for r in result.records}
    assert len(counts) == len(result.records)  # each page once
    hung = counts[site.url(HANG)]
    assert hung["error"].startswith("parse: still parsing after 6 s"), hung


def test_stop_with_a_deadline_while_a_parse_hangs(
    contract, hanging_parse, serve, start_cli, write_seeds
) -> None:
    site = serve(pages=200, delay=0.05)
    cli = start_cli(write_seeds(site.url("/")), "-O", "out.jsonl", "--depth", "6", "-w", "2", "--timeout",
                    "20", "--parse", hanging_parse, *args_of(contract))  # fmt: skip
    assert wait_until(lambda: HANG in site.page_paths(), 60)
    time.sleep(0.5)  # its parse has begun
    cli.signal_group(signal.SIGINT)
    stopped = time.monotonic()
    result = cli.wait(60)
    assert result.rc == 130, result
    assert time.monotonic() - stopped < 20  # STOP_GRACE, then 1 s for the workers: not the hang
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("resume", [False, True], ids=["second-coordinator", "resume-too-early"])
def test_a_second_coordinator_is_refused_and_harms_nothing(
    contract, resume, serve, start_cli, run_cli, write_seeds, expected
) -> None:
    if contract.name != "redis":
        pytest.skip("only a broker's crawl has a coordinator another can collide with")
    site = serve(pages=60, delay=0.1)
    seeds = write_seeds(site.url("/"))
    args = [seeds, "--depth", "3", "-w", "2", *args_of(contract)]
    first = start_cli(*args, "-o", "out.jsonl")
    assert wait_until(lambda: len(site.page_paths()) >= 5, 30)
    second = run_cli(*args, "-o", "out.jsonl", *(["--resume"] if resume else []))
    assert second.rc == 2 and second.stderr.count("\n") == 1, second
    result = first.wait(90)
    assert result.rc == 0, result
    assert "lost" not in result.stderr, result.stderr
    assert_exactly_once(result.records, set(expected(site, [site.url("/")], 3)))

