"""The redis backend as an operator meets it (issue 21): mistakes that happen every day
must harm nothing, and every refusal is one line. Each test runs a private redis-server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from conftest import wait_until
from test_redis import RedisServer, assert_exactly_once, redis_server, start_worker  # noqa: F401

from scraper import wire
from scraper.backends.streams import Keys
from scraper.records import WorkerSpec

KEYS = Keys("default")


def _fake_running_crawl(client: Any, parse: str | None = None, holder: str = "elsewhere:1") -> None:
    """What a running coordinator leaves in Redis: its lock, state, spec and streams."""
    spec = WorkerSpec(timeout=5, max_bytes=100_000, retries=0, user_agent="t", parse=parse)
    client.set(KEYS.lock, holder, px=60_000)
    client.set(KEYS.state, "running")
    client.set(KEYS.spec, wire.dump_spec(spec))
    client.xgroup_create(KEYS.tasks, "workers", id="$", mkstream=True)
    client.xadd(KEYS.tasks, {"m": b"a task"})
    client.xadd(KEYS.results, {"m": b"a result"})
    client.hset(KEYS.stats, mapping={"done": 3, "started_at": 1.0})


def _snapshot(client: Any) -> dict[bytes, Any]:
    """Every key with its serialized value (TTLs left out: time moves on)."""
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


@pytest.mark.parametrize("resume", [False, True], ids=["second-coordinator", "resume-too-early"])
def test_a_refused_coordinator_leaves_redis_exactly_as_it_found_it(
    redis_server, run_cli, write_seeds, resume  # noqa: F811
) -> None:
    client = redis_server.client()
    _fake_running_crawl(client)
    before = _snapshot(client)
    extra = ["--resume", "-o", "out.jsonl"] if resume else ["-O", "out.jsonl"]
    result = run_cli(write_seeds("http://127.0.0.1:9/"), "--backend", "redis", "--redis",
                     redis_server.url, "-w", "1", *extra, timeout=30)  # fmt: skip
    assert result.rc == 2, result
    assert "already running" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert _snapshot(client) == before
    assert client.get(KEYS.lock) == b"elsewhere:1"


def test_second_coordinator_harms_nothing_end_to_end(
    redis_server, start_cli, run_cli, serve, write_seeds, expected  # noqa: F811
) -> None:
    site = serve(pages=60, delay=0.1)
    seeds = write_seeds(site.url("/"))
    first = start_cli(seeds, "--backend", "redis", "--redis", redis_server.url, "-w", "2",
                      "--depth", "3", "-O", "first.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 5, 30)
    # The same command again, -O included: refused before it opens (truncates) the output.
    second = run_cli(seeds, "--backend", "redis", "--redis", redis_server.url, "-w", "2", "--depth", "3",
                     "-O", "first.jsonl")  # fmt: skip
    assert second.rc == 2 and second.stderr.count("\n") == 1, second
    assert redis_server.client().get(KEYS.state) == b"running"
    result = first.wait(60)
    assert result.rc == 0, result
    assert "lost" not in result.stderr, result.stderr
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))


def test_a_coordinator_that_lost_its_lock_ends_with_one_line_and_deletes_nothing(
    redis_server, start_cli, serve, write_seeds  # noqa: F811
) -> None:
    site = serve(pages=60, delay=0.2)
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "1", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 3, 30)
    client = redis_server.client()
    client.set(KEYS.lock, "newer:2", px=60_000)  # a newer coordinator took over
    result = coordinator.wait(30)
    assert result.rc == 1, result
    assert "newer:2" in result.stderr and "Traceback" not in result.stderr
    assert client.get(KEYS.lock) == b"newer:2"
    assert client.get(KEYS.state) == b"running" and client.exists(KEYS.spec, KEYS.tasks) == 2


def test_a_coordinator_without_workers_says_so_and_its_rate_leaves_the_wait_out(
    redis_server, start_cli, small_site, write_seeds, expected  # noqa: F811
) -> None:
    coordinator = start_cli(write_seeds(small_site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "0", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    from test_redis import _peek_stderr

    assert wait_until(lambda: "no worker" in _peek_stderr(coordinator), 15), _peek_stderr(coordinator)
    said = _peek_stderr(coordinator)
    assert f"scraper worker {redis_server.url}" in said and said.count("no worker") == 1
    time.sleep(1.0)
    worker = start_worker(start_cli, redis_server)
    result = coordinator.wait(60)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(small_site, [small_site.url("/")], 3))
    assert worker.wait(10).rc == 0
    found = re.search(r"(\d+) pages in ([\d.]+) s \(([\d.]+) pages/s\)", result.stderr)
    assert found, result.stderr
    pages, seconds, rate = int(found[1]), float(found[2]), float(found[3])
    assert rate > pages / (seconds - 4.0), result.stderr  # it waited more than 6 s


def test_a_worker_of_two_processes_refuses_with_one_line(redis_server, start_cli, tmp_path) -> None:  # noqa: F811
    from test_redis import _peek_stderr

    worker = start_cli("worker", redis_server.url, "-w", "2")
    assert wait_until(lambda: "waiting for the coordinator" in _peek_stderr(worker), 15)
    time.sleep(1.0)  # both processes wait for the coordinator: said once
    _fake_running_crawl(redis_server.client(), parse="no_such_module_here:parse")
    result = worker.wait(30)
    said = worker.__dict__["seen"].decode() + result.stderr  # what _peek_stderr read, and the rest
    assert result.rc == 2, result
    assert said.count("waiting for the coordinator") == 1, said
    assert said.count("\n") == 2, said
    assert "cannot take part in crawl 'default'" in result.stderr
    assert redis_server.client().xinfo_groups(KEYS.tasks)[0]["pending"] == 0


def test_worker_takes_the_url_as_argument_or_as_redis_option(redis_server, run_cli) -> None:  # noqa: F811
    _fake_running_crawl(redis_server.client(), parse="no_such_module_here:parse")
    for args in (("worker", redis_server.url), ("worker", "--redis", redis_server.url)):
        result = run_cli(*args, "-w", "1", timeout=30)
        assert result.rc == 2 and "cannot take part" in result.stderr, result
    status = run_cli("status", "--redis", redis_server.url)
    assert status.rc == 0 and "crawl default" in status.stdout, status


class _Http(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Http)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_url_that_is_not_redis_is_one_line(http_port, run_cli, write_seeds) -> None:
    url = f"redis://127.0.0.1:{http_port}/0"
    for args in (("worker", url, "-w", "1"), ("status", url),
                 (write_seeds("http://127.0.0.1:9/"), "--backend", "redis", "--redis", url)):  # fmt: skip
        result = run_cli(*args, timeout=30)
        assert result.rc == 2, result
        assert "is not a Redis server" in result.stderr and result.stderr.count("\n") == 1, result


def test_no_password_for_a_server_that_needs_one_says_so(tmp_path, run_cli) -> None:
    server = RedisServer(tmp_path, password="s3cret-pw")
    try:
        result = run_cli("status", f"unix://{server.socket}", timeout=30)
        assert result.rc == 2, result
        assert "needs a password" in result.stderr, result
    finally:
        server.stop()


def test_status_into_a_closed_pipe_is_quiet(redis_server, cli_cwd) -> None:  # noqa: F811
    client = redis_server.client()
    for n in range(3000):  # more than a pipe's buffer of status lines
        client.set(f"scraper:crawl{n}:state", "done", ex=600)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    shell = subprocess.run(["sh", "-c", f'"{sys.executable}" -m scraper status {redis_server.url} | head -1'],
                           cwd=cli_cwd, env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert shell.stdout.startswith("crawl crawl0: done"), shell
    assert "Traceback" not in shell.stderr and "Error" not in shell.stderr, shell.stderr


def test_status_of_a_crawl_whose_coordinator_died_says_so_and_expires(
    redis_server, start_cli, run_cli, serve, write_seeds  # noqa: F811
) -> None:
    site = serve(pages=60, delay=0.2)
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "0", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    client = redis_server.client()
    assert wait_until(lambda: client.get(KEYS.state) == b"running", 20)
    coordinator.kill()
    coordinator.popen.wait(10)
    time.sleep(3.5)  # its lock expires
    status = run_cli("status", redis_server.url)
    assert "coordinator gone" in status.stdout, status
    left = [key for key in client.keys("scraper:default:*") if client.ttl(key) == -1]
    assert left == [], left  # every key of the crawl expires: status does not list it for ever


def test_a_hung_parse_is_reported_once_and_its_retry_decides(
    redis_server, start_cli, cli_cwd, serve, write_seeds  # noqa: F811
) -> None:
    """The hung thread goes on showing its task in its heartbeats: reported again a
    second later, the crawl would record the page failed while its retry still runs.
    The second report must come from the retry, in the isolation worker."""
    (cli_cwd / "hanger.py").write_text(
        "import time\n\ndef parse(record, tree):\n"
        "    if record['url'].endswith('/page/3.html'):\n        time.sleep(3600)\n    return {}\n"
    )
    site = serve(pages=8)
    result = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis", redis_server.url,
                       "-w", "1", "--depth", "2", "--timeout", "1", "--parse", "hanger:parse",
                       "-O", "out.jsonl").wait(60)  # fmt: skip
    assert result.rc == 0, result
    hung = re.findall(r"worker (\S+) hung; replacing it", result.stderr)
    assert len(hung) == 2 and hung[0] != hung[1], result.stderr
    [record] = [r for r in result.records if r["url"].endswith("/page/3.html")]
    assert record["error"].startswith("parse: still parsing after"), record


def test_a_short_receive_returns_when_its_timeout_ends(redis_server) -> None:  # noqa: F811
    """Redis ends a blocked XREAD on its own 100 ms clock: a receive(5 ms) that blocked
    there lasted 100 ms, and the crawl saw a host become ready (--delay) that late."""
    from scraper.backends.redis import RedisBackend

    spec = WorkerSpec(timeout=5, max_bytes=1000, retries=0, user_agent="t")
    group = RedisBackend(redis_server.url, "default", False, None).workers(spec, 0)
    group.start()
    try:
        group.results.receive(0.005)  # the connection is made
        began = time.monotonic()
        for _ in range(5):
            assert group.results.receive(0.005) == []
        assert (time.monotonic() - began) / 5 < 0.06
    finally:
        group.stop(time.monotonic() + 1)
