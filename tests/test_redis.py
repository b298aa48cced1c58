"""The redis backend end to end (SPEC 8), against a real redis-server each test starts
on a Unix socket in its temp dir (never a system service, never a fixed port)."""

from __future__ import annotations

import collections
import os
import pickle
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliProcess, wait_until

import scraper
from scraper import wire
from scraper.backends.redis_worker import StreamSource
from scraper.backends.streams import Keys, masked
from scraper.records import Task, WorkerSpec
from scraper.worker import Host

redis = pytest.importorskip("redis", reason="pip install 'scraper[redis]'")
if shutil.which("redis-server") is None:  # CI installs it (.ci/run); never skipped there
    pytest.skip("redis-server is not on PATH (apt-get install redis-server)", allow_module_level=True)


class RedisServer:
    """A private redis-server: `url`, `client()`, `restart()`, `stop()`."""

    def __init__(self, folder: Path, password: str | None = None, appendonly: bool = False) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.password = password
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket}"

    def start(self) -> None:
        args = ["redis-server", "--port", "0", "--unixsocket", str(self.socket), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.folder)]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self.socket.exists, 5), "redis-server did not start"
        assert wait_until(self._answers, 5)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> Any:
        return redis.Redis(unix_socket_path=str(self.socket), password=self.password)

    def stop(self, graceful: bool = False) -> None:
        """SIGKILL (a crash: what was not on disk is lost), or SIGTERM (a clean shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate() if graceful else self.process.kill()
            self.process.wait(10)
        if self.socket.exists():
            self.socket.unlink()

    def restart(self, down_for: float = 0.0, graceful: bool = False) -> None:
        """Without persistence every stream, group and key is gone after it; with
        it (appendonly, or a dump.rdb in the folder) they come back as saved."""
        self.stop(graceful)
        time.sleep(down_for)
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def settings(server: RedisServer, **more: Any) -> dict[str, Any]:
    return {"backend": "redis", "redis": server.url, **more}


def assert_exactly_once(records: list[dict[str, Any]], expected: dict[str, int]) -> None:
    counts = collections.Counter(record["url"] for record in records)
    assert [url for url, n in counts.items() if n > 1] == []
    assert set(counts) == set(expected)


def test_library_crawl_on_local_workers(redis_server, small_site, expected) -> None:
    seeds = [small_site.url("/")]
    records = scraper.crawl(seeds, depth=3, workers=2, **settings(redis_server))
    assert_exactly_once(records, expected(small_site, seeds, 3))
    assert all(":" in record["worker"] and "/" in record["worker"] for record in records)
    left = redis_server.client()
    assert left.get("scraper:default:state") == b"done"
    assert not left.exists("scraper:default:tasks", "scraper:default:lock")


def start_worker(start_cli: Callable[..., CliProcess], server: RedisServer, *args: str) -> CliProcess:
    return start_cli("worker", server.url, "-w", "1", *args)


def test_remote_workers_join_before_and_leave_within_2s(
    redis_server, start_cli, run_cli, small_site, write_seeds, expected
) -> None:
    early = start_worker(start_cli, redis_server)
    time.sleep(1.0)  # it waits for its coordinator, saying so
    seeds = write_seeds(small_site.url("/"))
    result = run_cli(seeds, "--backend", "redis", "--redis", redis_server.url, "-w", "0",
                     "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    ended = time.monotonic()
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(small_site, [small_site.url("/")], 3))
    early_result = early.wait(10)
    assert early_result.rc == 0
    assert time.monotonic() - ended < 2.5
    assert "waiting for the coordinator of crawl 'default'" in early_result.stderr


def test_worker_sigkill_mid_crawl_loses_nothing(
    redis_server, start_cli, serve, write_seeds, expected
) -> None:
    site = serve(pages=80, delay=0.1)
    workers = [start_worker(start_cli, redis_server, "--concurrency", "4") for _ in range(2)]
    seeds = write_seeds(site.url("/"))
    coordinator = start_cli(seeds, "--backend", "redis", "--redis", redis_server.url, "-w", "0",
                            "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 10, 30)
    workers[0].kill()
    result = coordinator.wait(90)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
    assert "taking over" in result.stderr
    assert workers[1].wait(10).rc == 0


def test_second_coordinator_is_refused(redis_server, start_cli, run_cli, serve, write_seeds) -> None:
    site = serve(pages=30, delay=0.2)
    seeds = write_seeds(site.url("/"))
    first = start_cli(seeds, "--backend", "redis", "--redis", redis_server.url, "-w", "1",
                      "--depth", "2", "-O", "first.jsonl")  # fmt: skip
    assert wait_until(lambda: redis_server.client().exists("scraper:default:lock"), 20)
    second = run_cli(seeds, "--backend", "redis", "--redis", redis_server.url, "-O", "second.jsonl")
    assert second.rc == 2
    assert "already running" in second.stderr and second.stderr.count("\n") == 1
    assert first.wait(60).rc == 0


def test_wrong_password_is_one_line_and_never_printed(tmp_path, run_cli, write_seeds) -> None:
    server = RedisServer(tmp_path, password="s3cret-pw")
    try:
        wrong = f"unix://:wrong-pw@{server.socket}"
        result = run_cli(write_seeds("http://127.0.0.1:9/"), "--backend", "redis", "--redis", wrong)
        assert result.rc == 2, result
        assert "wrong-pw" not in result.stderr and "***" in result.stderr
        worker = run_cli("worker", wrong)
        assert worker.rc == 2 and "wrong-pw" not in worker.stderr
    finally:
        server.stop()


def test_masked_hides_passwords() -> None:
    assert masked("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert masked("rediss://:pw@host") == "rediss://:***@host"
    assert masked("unix:///tmp/r.sock?db=1") == "unix:///tmp/r.sock?db=1"


class Boom:
    def __reduce__(self) -> Any:
        return (os.system, ("touch pwned",))


def test_pickle_and_garbage_in_the_streams_never_run(redis_server, start_cli, small_site, write_seeds,
                                                     expected, cli_cwd) -> None:  # fmt: skip
    keys, client = Keys("default"), redis_server.client()
    worker = start_worker(start_cli, redis_server)
    seeds = write_seeds(small_site.url("/"))
    coordinator = start_cli(seeds, "--backend", "redis", "--redis", redis_server.url, "-w", "0",
                            "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: client.get(keys.state) == b"running", 20)
    for key in (keys.tasks, keys.results):
        client.xadd(key, {"m": pickle.dumps(Boom())})
        client.xadd(key, {"m": b"\x00garbage"})
        client.xadd(key, {"m": b'{"v": 99, "id": 1}'})
        client.xadd(key, {"other": b"field"})
    result = coordinator.wait(60)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(small_site, [small_site.url("/")], 3))
    assert "not ours" in result.stderr
    assert worker.wait(10).rc == 0
    assert not (cli_cwd / "pwned").exists()


def test_status_shows_crawl_and_workers(redis_server, start_cli, run_cli, serve, write_seeds) -> None:
    site = serve(pages=40, delay=0.3)
    worker = start_worker(start_cli, redis_server, "--concurrency", "2")
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "0", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 5, 30)
    time.sleep(1.2)  # a heartbeat
    status = run_cli("status", redis_server.url)
    assert status.rc == 0
    assert "crawl default: running, pages done" in status.stdout
    assert f"pid {worker.pid}: threads " in status.stdout
    result = coordinator.wait(60)
    assert result.rc == 0
    assert worker.wait(10).rc == 0
    after = run_cli("status", redis_server.url, "--crawl-id", "default")
    assert f"crawl default: done, pages done {len(result.records)}," in after.stdout


def test_a_worker_that_cannot_run_the_callback_takes_no_task(
    redis_server, start_cli, cli_cwd, tmp_path, serve, write_seeds, expected
) -> None:
    (cli_cwd / "tagger.py").write_text(
        "def tag(record, tree):\n    return {'tagged': [1]}\n\ndef other(record, tree):\n    return {}\n"
    )
    elsewhere = tmp_path / "elsewhere"  # a machine without the module
    elsewhere.mkdir()
    site = serve(pages=30, delay=0.05)
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "1", "--depth", "3", "--parse", "tagger:tag",
                            "-O", "out.jsonl")  # fmt: skip
    without = CliProcess(("worker", redis_server.url, "-w", "2"), elsewhere)
    mismatched = start_worker(start_cli, redis_server, "--parse", "tagger:other")
    try:
        refused, other = without.wait(30), mismatched.wait(30)
    finally:
        without.kill()
    assert refused.rc == 2
    assert "its parse callback tagger:tag cannot import module 'tagger'" in refused.stderr
    assert other.rc == 2
    assert "crawl 'default' parses with tagger:tag, not with --parse tagger:other" in other.stderr
    for result in (refused, other):
        assert "Traceback" not in result.stderr
    result = coordinator.wait(60)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
    pages = [r for r in result.records if r["ok"] and r["content_type"] == "text/html"]
    assert pages and all(r["fields"].get("tagged") == [1] for r in pages)


def test_sigterm_on_a_worker_of_short_tasks_sends_what_it_put_off_and_leaves(
    redis_server, start_cli, serve, write_seeds, expected
) -> None:
    """Short tasks: a worker puts results off to send them by fours. Stopped in between,
    it sends them as it leaves, at once, not after the crawl's --timeout."""
    site = serve(pages=1500)
    worker = start_worker(start_cli, redis_server, "--concurrency", "1")
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "1", "--depth", "9", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 200, 30)
    worker.signal_group(signal.SIGTERM)
    stopped = time.monotonic()
    assert worker.wait(10).rc == 143
    assert time.monotonic() - stopped < 5  # the default --timeout is 30 s
    result = coordinator.wait(90)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 9))


def test_status_says_stopped_after_ctrl_c(redis_server, start_cli, run_cli, serve, write_seeds) -> None:
    site = serve(pages=40, delay=0.3)
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "1", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 3, 30)
    coordinator.signal_group(signal.SIGINT)
    assert coordinator.wait(30).rc == 130
    after = run_cli("status", redis_server.url)
    assert "crawl default: stopped, pages done" in after.stdout, after.stdout


def test_coordinator_sigkill_then_resume_writes_each_page_once(
    redis_server, start_cli, serve, write_seeds, expected
) -> None:
    site = serve(pages=60, delay=0.05)
    seeds = write_seeds(site.url("/"))
    args = (seeds, "--backend", "redis", "--redis", redis_server.url, "-w", "0", "--depth", "3",
            "-o", "out.jsonl")  # fmt: skip
    worker = start_worker(start_cli, redis_server, "--forever")
    first = start_cli(*args)
    assert wait_until(lambda: len(site.page_paths()) >= 15, 30)
    first.kill()
    first.popen.wait(10)
    # Results the workers sent after the kill wait in the stream for the next coordinator.
    time.sleep(3.5)  # the dead coordinator's lock expires (LOCK_TTL)
    fetched_before = collections.Counter(site.page_paths())
    result = start_cli(*args, "--resume").wait(90)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
    again = collections.Counter(site.page_paths()) - fetched_before
    refetched = [path for path in again if fetched_before[path]]
    # Pages whose results were in Redis are not fetched again; only those in flight at the kill may be.
    assert len(refetched) <= 8, refetched
    worker.signal_group(signal.SIGTERM)
    assert worker.wait(15).rc == 143


def test_redis_restart_without_persistence(redis_server, start_cli, serve, write_seeds, expected) -> None:
    site = serve(pages=60, delay=0.05)
    worker = start_worker(start_cli, redis_server)
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "0", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 10, 30)
    # The worker dies with Redis: what was in flight now lives only in the coordinator.
    worker.kill()
    redis_server.restart(down_for=1.0)
    second = start_worker(start_cli, redis_server)
    result = coordinator.wait(90)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
    assert "sending the pages in flight again" in result.stderr
    assert second.wait(10).rc == 0


def test_redis_restart_with_persistence(tmp_path, start_cli, serve, write_seeds, expected) -> None:
    server = RedisServer(tmp_path / "aof", appendonly=True) if (tmp_path / "aof").mkdir() is None else None
    assert server is not None
    try:
        site = serve(pages=60, delay=0.05)
        worker = start_worker(start_cli, server)
        coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                                server.url, "-w", "0", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
        assert wait_until(lambda: len(site.page_paths()) >= 10, 30)
        server.restart(down_for=2.0, graceful=True)  # streams, group, pending entries: all kept
        result = coordinator.wait(90)
        assert result.rc == 0, result
        assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
        assert "Redis is back after" in result.stderr
        assert "sending the pages in flight again" not in result.stderr  # nothing was lost
        assert worker.wait(10).rc == 0
    finally:
        server.stop()


def test_redis_back_from_an_older_snapshot_loses_nothing(
    redis_server, start_cli, serve, write_seeds, expected
) -> None:
    """A crash of a persistent Redis loses its last writes (appendfsync everysec: up to
    1 s; RDB: since the last save): here, deterministically, everything after a SAVE.
    Tasks added since are gone from the stream, results and acknowledgements too."""
    site = serve(pages=80, delay=0.1)
    worker = start_worker(start_cli, redis_server, "--concurrency", "4")
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "0", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 10, 30)
    redis_server.client().save()  # dump.rdb in the server's folder: loaded when it starts again
    done_at_save = len(site.page_paths())
    assert wait_until(lambda: len(site.page_paths()) >= done_at_save + 8, 30)
    redis_server.restart()  # SIGKILL, then the snapshot: what happened since the SAVE is lost
    result = coordinator.wait(90)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
    assert worker.wait(10).rc == 0


def test_only_short_tasks_are_read_ahead_and_never_by_the_isolation_worker() -> None:
    """A death in the isolation worker is blamed on every task it holds: it holds one."""
    spec = WorkerSpec(timeout=5, max_bytes=1000, retries=0, user_agent="t")
    worker = Host(StreamSource(None, Keys("x")), spec, 4)
    isolation = Host(StreamSource(None, Keys("x"), isolated=True), spec, 1)
    assert not worker.reads_ahead and not isolation.reads_ahead  # tasks count as long at first
    worker.task_seconds = isolation.task_seconds = 0.002
    assert worker.reads_ahead
    assert not isolation.reads_ahead


def test_wire_task_round_trip_keeps_attempt() -> None:
    task = Task(7, "http://a/", attempt=1)
    assert wire.load_task(wire.dump_task(task)) == task


def test_politeness_holds_across_four_workers(redis_server, start_cli, serve, write_seeds) -> None:
    """--per-host and --delay are the coordinator's: measured at the server, whatever the workers."""
    site = serve(pages=24, delay=0.3)
    workers = [start_worker(start_cli, redis_server, "--concurrency", "4") for _ in range(4)]
    result = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis", redis_server.url,
                       "-w", "0", "--depth", "3", "--per-host", "2", "-O", "out.jsonl").wait(90)  # fmt: skip
    assert result.rc == 0, result
    with site._lock:
        arrivals = sorted(request.at for request in site.requests)
    # Each answer takes 0.3 s: no 0.25 s window may see more than 2 requests begin.
    assert max(sum(a <= b < a + 0.25 for b in arrivals) for a in arrivals) <= 2
    assert len({record["worker"].split("/")[0] for record in result.records}) >= 2
    for worker in workers:
        assert worker.wait(10).rc == 0

    site = serve(pages=10)
    workers = [start_worker(start_cli, redis_server) for _ in range(4)]
    result = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis", redis_server.url,
                       "-w", "0", "--depth", "2", "--delay", "0.2", "-O", "delay.jsonl").wait(90)  # fmt: skip
    assert result.rc == 0, result
    with site._lock:  # robots.txt is fetched before, outside the delay
        arrivals = sorted(r.at for r in site.requests if r.path != "/robots.txt")
    assert min(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) >= 0.18
    for worker in workers:
        assert worker.wait(10).rc == 0


def test_slow_tasks_wait_in_the_stream_not_behind_a_busy_thread(
    redis_server, start_cli, serve, write_seeds, expected
) -> None:
    """With long tasks a worker reads no more than its idle threads: the rest wait in the
    shared stream for any worker's idle thread (a worker that hoards them idles the others)."""
    site = serve(pages=30, delay=0.3)
    worker = start_worker(start_cli, redis_server, "--concurrency", "2")
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis",
                            redis_server.url, "-w", "0", "--depth", "3", "--concurrency", "8",
                            "-O", "out.jsonl")  # fmt: skip
    client, tasks = redis_server.client(), Keys("default").tasks
    held, queued = [], []
    while coordinator.popen.poll() is None:
        try:
            summary = client.xpending(tasks, "workers")
            held.extend(consumer["pending"] for consumer in summary["consumers"])
            queued.append(int(client.xinfo_groups(tasks)[0]["lag"] or 0))
        except redis.ResponseError:  # before the crawl made its stream, or after it ended
            pass
        time.sleep(0.02)
    result = coordinator.wait(10)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
    assert held and max(held) <= 2, collections.Counter(held)
    assert max(queued) >= 3  # there were tasks to hoard: they waited in the stream
    assert worker.wait(10).rc == 0


@pytest.mark.slow
def test_worker_stopped_15s_is_taken_over_and_its_late_results_dropped(
    redis_server, start_cli, serve, write_seeds, expected
) -> None:
    site = serve(pages=60, delay=0.2)
    stopped = start_worker(start_cli, redis_server, "--concurrency", "4")
    other = start_worker(start_cli, redis_server, "--concurrency", "4")
    coordinator = start_cli(write_seeds(site.url("/")), "--backend", "redis", "--redis", redis_server.url,
                            "-w", "0", "--depth", "3", "-O", "out.jsonl")  # fmt: skip
    assert wait_until(lambda: len(site.page_paths()) >= 8, 30)
    os.kill(stopped.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        assert wait_until(lambda: "taking over" in _peek_stderr(coordinator), 12)
        assert time.monotonic() - stopped_at < 10
        time.sleep(max(0.0, 15 - (time.monotonic() - stopped_at)))
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    result = coordinator.wait(90)
    assert result.rc == 0, result
    assert_exactly_once(result.records, expected(site, [site.url("/")], 3))
    assert stopped.wait(10).rc == 0 and other.wait(10).rc == 0


def _peek_stderr(process: CliProcess) -> str:
    """What a running CLI wrote to stderr so far (read without blocking)."""
    import fcntl

    stream = process.popen.stderr
    assert stream is not None
    fd = stream.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    chunk = os.read(fd, 1 << 16) if _readable(fd) else b""
    process.__dict__.setdefault("seen", b"")
    process.__dict__["seen"] += chunk
    return process.__dict__["seen"].decode(errors="replace")


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def test_redis_gone_past_the_limit_ends_with_one_line(redis_server, serve, monkeypatch, tmp_path) -> None:
    import scraper.backends.redis as backend

    monkeypatch.setattr(backend, "OUTAGE_LIMIT", 2.0)  # SPEC: 60 s; the logic is the same
    site = serve(pages=60, delay=0.1)
    output = tmp_path / "out.jsonl"
    records = scraper.iter_crawl([site.url("/")], depth=3, workers=1, output=str(output),
                                 **settings(redis_server))  # fmt: skip
    with pytest.raises(scraper.ScraperError, match="unreachable for 2 s; the output is valid"):
        for index, _ in enumerate(records):
            if index == 5:
                redis_server.stop()
    from conftest import read_jsonl

    written = read_jsonl(output)  # valid JSONL, for --resume
    assert len(written) >= 5


def test_without_redis_py_the_backend_says_how_to_get_it(monkeypatch) -> None:
    import scraper.backends.streams as streams

    monkeypatch.setattr(streams, "redis", None)
    with pytest.raises(scraper.UsageError, match=r"pip install 'redis\[hiredis\]>=5'"):
        scraper.crawl(["http://127.0.0.1:9/"], backend="redis", redis="redis://localhost")


def test_demo_on_a_private_redis(run_cli) -> None:
    result = run_cli("--demo", "--backend", "redis", "-O", "demo.jsonl", timeout=120)
    assert result.rc == 0, result
    assert result.stderr.count("a coordinator and 2 workers over Redis") == 2
    assert "150 pages" in result.stdout and "300 pages" in result.stdout


@pytest.mark.timeout(120)
def test_ctrl_c_during_the_redis_demo_stops_it_with_130(start_cli, cli_cwd) -> None:
    """Ctrl-C reaches the terminal's whole process group: the private redis-server
    and the demo's workers must not die of it before the coordinator has stopped
    (the coordinator then waited 60 s for its Redis)."""
    process = start_cli("--demo", "--backend", "redis")
    assert wait_until(lambda: any(cli_cwd.glob("data/demo.redis.*.jsonl")), 60), "the demo did not start"
    time.sleep(0.5)
    process.signal_group(signal.SIGINT)
    result = process.wait(30)
    assert result.rc == 130, result
    assert "unreachable" not in result.stderr and "Traceback" not in result.stderr, result


def test_a_worker_of_another_version_is_refused(redis_server, run_cli) -> None:
    client, keys = redis_server.client(), Keys("default")
    client.set(keys.spec, b'{"v": 99, "timeout": 10}')
    client.set(keys.state, "running")
    result = run_cli("worker", redis_server.url, "-w", "1", timeout=20)
    assert result.rc == 2, result
    assert f"message of version 99; this scraper speaks version {wire.VERSION}" in result.stderr
