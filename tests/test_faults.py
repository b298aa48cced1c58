"""Fault injection with real processes: signals, killed workers, a killed parent, resume.

Every test checks the promise of SPEC section 7 it is named after: nothing
lost, nothing twice, no process left behind.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import backend_params, read_jsonl, wait_until
from siteserver import build_site

import scraper.backends.base
from scraper import crawl

PROCESS_BACKENDS = backend_params("process")
SLOW = 0.03  # seconds per response: long enough to interrupt a crawl in the middle
MARKERS = "SCRAPER_TEST_MARKERS"  # environment variable: directory of the parse callbacks' marker files
INNOCENT, POISON = "/page/3.html", "/page/4.html"  # two pages linked from "/"
# How long a retried page waits for the other one to parse beside it. It only bounds the
# wait when the crawler runs them apart; which page is recorded does not depend on it.
RETRY_WAIT = 3.0
FIRST_WAIT = 60.0  # the first time, the other page comes: this only stops a broken crawl hanging


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for_lines(path: Path, count: int, cli) -> None:
    assert wait_until(lambda: line_count(path) >= count or cli.popen.poll() is not None, 60)
    assert cli.popen.poll() is None, "the crawl ended before it could be interrupted"


def workers_of(cli) -> list[int]:
    """Pids of the CLI's worker processes (not the CLI, not multiprocessing's helpers)."""
    from conftest import _cmdline

    return [pid for pid in cli.processes()
            if pid != cli.pid and "resource_tracker" not in _cmdline(pid)]  # fmt: skip


def assert_exactly_once(records: list[dict], expected_urls: set[str]) -> None:
    counts = Counter(record["url"] for record in records)
    assert [url for url, n in counts.items() if n > 1] == []
    assert set(counts) == expected_urls


@pytest.fixture
def slow_crawl(serve, expected, write_seeds, cli_cwd):
    """(server, seed file, expected URL set, output path) of a 300-page site at SLOW s/page."""
    server = serve(pages=300, delay=SLOW)
    seeds = write_seeds(server.url("/"))
    return server, seeds, set(expected(server, [server.url("/")], depth=10)), cli_cwd / "out.jsonl"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly(slow_crawl, start_cli, backend, signum, status):
    server, seeds, _, out = slow_crawl
    cli = start_cli(seeds, "-o", out, "--depth", "10", "-w", "2", *backend.cli_args)
    wait_for_lines(out, 20, cli)
    signalled = time.monotonic()
    if signum == signal.SIGINT:
        cli.signal_group(signum)  # what Ctrl-C in a terminal does
    else:
        os.kill(cli.pid, signum)
    result = cli.wait(30)
    assert result.rc == status, result
    assert time.monotonic() - signalled < 15
    assert "interrupted" in result.stderr
    urls = [record["url"] for record in result.records]  # read_jsonl: every line complete
    assert len(urls) == len(set(urls)) >= 20
    assert wait_until(lambda: not cli.processes(), 10), cli.processes()


@pytest.mark.timeout(90)
def test_second_ctrl_c_quits_at_once(serve, write_seeds, start_cli, cli_cwd):
    server = serve(pages=50, delay=20)  # every page in flight would take 20 s
    cli = start_cli(write_seeds(server.url("/")), "-o", cli_cwd / "out.jsonl", "--depth", "3",
                    "-w", "2", "--timeout", "60", "--ignore-robots")  # fmt: skip
    assert wait_until(lambda: len(server.paths()) >= 1, 30)
    cli.signal_group(signal.SIGINT)
    time.sleep(0.3)
    cli.signal_group(signal.SIGINT)
    result = cli.wait(30)
    assert result.rc == 130, result
    assert result.duration < 15
    assert wait_until(lambda: not cli.processes(), 10), cli.processes()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
def test_killed_worker_is_replaced_and_nothing_is_lost(slow_crawl, start_cli, backend):
    server, seeds, expected_urls, out = slow_crawl
    cli = start_cli(seeds, "-o", out, "--depth", "10", "-w", "2", *backend.cli_args)
    wait_for_lines(out, 30, cli)
    victims = workers_of(cli)
    assert victims
    os.kill(victims[0], signal.SIGKILL)
    result = cli.wait(90)
    assert result.rc == 0, result
    assert "died" in result.stderr
    assert_exactly_once(result.records, expected_urls)
    assert all(record["error"] in (None, "http_404") for record in result.records)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
def test_workers_exit_when_the_parent_is_killed(slow_crawl, start_cli, backend):
    server, seeds, _, out = slow_crawl
    cli = start_cli(seeds, "-o", out, "--depth", "10", "-w", "2", *backend.cli_args)
    wait_for_lines(out, 10, cli)
    workers = workers_of(cli)
    assert workers
    os.kill(cli.pid, signal.SIGKILL)  # the parent only: the workers must notice by themselves
    cli.popen.wait(10)
    assert wait_until(lambda: not cli.processes(), 15), cli.processes()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
def test_kill_and_resume_cycles_write_every_page_once(slow_crawl, start_cli, run_cli, backend):
    server, seeds, expected_urls, out = slow_crawl
    args = (seeds, "-o", out, "--depth", "10", "-w", "2", "--resume", *backend.cli_args)
    for cycle in range(3):
        cli = start_cli(*args)
        wait_for_lines(out, line_count(out) + 40, cli)
        cli.kill()  # SIGKILL to the whole group: a power cut, no chance to flush
        cli.popen.wait(10)
        if cycle == 1:
            with out.open("ab") as file:  # a crash in the middle of a write
                file.write(b'{"url": "http://127.0.0.1/torn", "final_u')
    result = run_cli(*args, timeout=120)
    assert result.rc == 0, result
    assert "resumed" in result.stderr
    assert_exactly_once(read_jsonl(out), expected_urls)


def test_appending_repairs_a_torn_last_line(small_site, write_seeds, run_cli, cli_cwd):
    out = cli_cwd / "out.jsonl"
    out.write_text('{"url": "http://example.com/", "ok": true}\n{"url": "http://exa')
    result = run_cli(write_seeds(small_site.url("/")), "-o", out, "--ignore-robots")
    assert result.rc == 0, result
    records = read_jsonl(out)  # fails on a torn line
    assert [r["url"] for r in records] == ["http://example.com/", small_site.url("/")]


def crash_on_page_17(record, tree):
    """Kills its worker, like a segfault in a C extension (page 17 is a leaf of the site)."""
    if record["url"].endswith("/page/17.html"):
        os.kill(os.getpid(), signal.SIGKILL)
    return {}


def hang_on_page_17(record, tree):
    if record["url"].endswith("/page/17.html"):
        time.sleep(600)
    return {}


def wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def crash_beside_an_innocent_page(record, tree):
    """The POISON page kills its worker while the INNOCENT page parses in the same process.

    Each leaves a marker named after its process when its parse begins. The
    innocent page then parses until its worker dies; the poison page waits for
    the innocent page's marker of its own process, leaves a `killed` marker and
    kills its worker. The first time (no `killed` marker yet) they wait as long
    as it takes, so the innocent page is parsing beside the poison page when it
    kills; later they wait at most RETRY_WAIT, and the poison page kills its
    worker every time.
    """
    path = urlsplit(record["url"]).path
    if path not in (INNOCENT, POISON):
        return {}
    markers, pid = Path(os.environ[MARKERS]), os.getpid()
    wait = RETRY_WAIT if any(markers.glob("killed-*")) else FIRST_WAIT
    if path == INNOCENT:
        (markers / f"innocent-{pid}").touch()
        time.sleep(wait)
        return {}
    wait_for_file(markers / f"innocent-{pid}", wait)
    (markers / f"killed-{pid}").touch()
    os.kill(pid, signal.SIGKILL)
    return {}


def pids_of(markers: Path, name: str) -> set[str]:
    return {path.name.partition("-")[2] for path in markers.glob(f"{name}-*")}


@pytest.mark.timeout(180)
def test_only_the_page_that_kills_its_worker_is_recorded_as_worker_died(
    serve, expected, backend, tmp_path, monkeypatch
):
    if backend.name == "thread":
        pytest.skip("a worker thread cannot die: a parse callback's SIGKILL would end the test run")
    monkeypatch.setenv(MARKERS, str(tmp_path))
    site = build_site(30)
    site[POISON] = b"<html><title>poison</title></html>"  # a leaf: its record has no links to follow
    server = serve(site=site)
    seeds = [server.url("/")]
    # One worker running four fetch threads: the two pages parse in the same process.
    records = crawl(seeds, depth=2, workers=1, concurrency=4, parse=crash_beside_an_innocent_page,
                    **backend.kwargs)  # fmt: skip
    failed = {r["url"]: r["error"] for r in records if r["error"] not in (None, "http_404")}
    assert failed == {server.url(POISON): "worker_died"}
    assert_exactly_once(records, set(expected(server, seeds, depth=2)))
    # The case this test is about happened: a worker died while the innocent page parsed in it.
    assert pids_of(tmp_path, "innocent") & pids_of(tmp_path, "killed")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
def test_worker_that_keeps_dying_is_recorded_once(small_site, expected, backend):
    """Whichever pages happen to parse beside page 17 when it kills its worker (four fetch
    threads per worker), they are retried alone and succeed; page 17 then dies alone."""
    seeds = [small_site.url("/")]
    records = crawl(seeds, depth=3, workers=2, concurrency=8, parse=crash_on_page_17, **backend.kwargs)
    assert_exactly_once(records, set(expected(small_site, seeds, depth=3)))
    failed = {r["url"]: r["error"] for r in records if r["error"] not in (None, "http_404")}
    assert failed == {small_site.url("/page/17.html"): "worker_died"}


@pytest.mark.timeout(120)
def test_hanging_parse_callback_does_not_stop_the_crawl(small_site, expected, monkeypatch):
    monkeypatch.setattr(scraper.backends.base, "PARSE_GRACE", 0.5)
    seeds = [small_site.url("/")]
    records = crawl(seeds, depth=3, workers=2, timeout=1, parse=hang_on_page_17,
                    backend="process", start_method="fork")  # fmt: skip
    assert_exactly_once(records, set(expected(small_site, seeds, depth=3)))
    failed = {r["url"]: r["error"] for r in records if r["error"] not in (None, "http_404")}
    assert list(failed) == [small_site.url("/page/17.html")]
    assert failed[small_site.url("/page/17.html")].startswith("parse:")
