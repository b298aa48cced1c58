"""Fixtures of the end-to-end tests: a real site on 127.0.0.1, the backend matrix,
a leak check for child processes and threads, and a runner for the real CLI."""

from __future__ import annotations

import atexit
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from siteserver import SiteServer, build_site, expected_crawl

TOKEN_VARIABLE = "SCRAPER_E2E_TOKEN"
LEAK_GRACE = 5.0  # seconds processes and threads get to go away after a test
HAVE_PROC = os.path.isdir("/proc/self")


# -- sites ----------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Callable[..., SiteServer]]:
    """Factory: `serve(pages=30, delay=0.0, site=None, **options)` starts a SiteServer
    (options: redirects, body_pauses), stopped after the test."""
    servers: list[SiteServer] = []

    def start(
        pages: int = 30, delay: float = 0.0, site: dict[str, bytes] | None = None, **options: Any
    ) -> SiteServer:
        server = SiteServer(site if site is not None else build_site(pages), delay=delay, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def site(serve: Callable[..., SiteServer]) -> SiteServer:
    """A generated 300-page site (plus a 404 link and a redirect) on 127.0.0.1:<free port>."""
    return serve(pages=300)


@pytest.fixture
def small_site(serve: Callable[..., SiteServer]) -> SiteServer:
    """A generated 30-page site, for tests that do not need the big one."""
    return serve(pages=30)


@pytest.fixture
def expected() -> Callable[..., dict[str, int]]:
    """`expected(server, seeds, depth, obey_robots=True)` -> {url: BFS depth}."""
    return expected_crawl


# -- the backend matrix ---------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str  # "process", "thread" or "redis"
    start_method: str | None

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of scraper.crawl() / CrawlConfig."""
        extra = {"redis": session_redis()} if self.name == "redis" else {}
        return {"backend": self.name, "start_method": self.start_method, **extra}

    @property
    def cli_args(self) -> list[str]:
        args = ["--backend", self.name]
        if self.start_method:
            args += ["--start-method", self.start_method]
        if self.name == "redis":
            args += ["--redis", session_redis()]
        return args

    @property
    def worker_pattern(self) -> re.Pattern[str]:
        if self.name == "redis":  # host:pid/thread
            return re.compile(r"[^:/]+:\d+/\d+")
        return re.compile(rf"{self.name}-(\d+)")


BACKENDS = {
    "thread": Backend("thread", None),
    "process-fork": Backend("process", "fork"),
    "process-spawn": Backend("process", "spawn"),
    "redis": Backend("redis", None),  # local workers over a private redis-server (session_redis)
}

_redis_socket: list[str] = []


def session_redis() -> str:
    """The URL of a redis-server for the whole run: a Unix socket in a temp dir, no
    persistence, daemonized (so that it is not a child the leak check counts), shut
    down at exit. Each crawl leaves its keys behind expired or deleted."""
    if not _redis_socket:
        folder = tempfile.mkdtemp(prefix="scraper-tests-redis-")
        path = os.path.join(folder, "redis.sock")
        subprocess.run(["redis-server", "--port", "0", "--unixsocket", path, "--save", "", "--appendonly",
                        "no", "--dir", folder, "--daemonize", "yes", "--pidfile", path + ".pid"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        assert wait_until(lambda: os.path.exists(path), 5)
        _redis_socket.append(path)
        atexit.register(_stop_session_redis, path)
    return f"unix://{_redis_socket[0]}"


def _stop_session_redis(path: str) -> None:
    with contextlib.suppress(OSError, ValueError), open(path + ".pid") as file:
        os.kill(int(file.read().strip()), signal.SIGTERM)


def backend_params(name: str | None = None) -> list[Any]:
    """The matrix as pytest params, every backend or those called `name` ("process"):
    `@pytest.mark.parametrize("backend", backend_params("process"))` narrows the fixture."""
    params = []
    for label, chosen in BACKENDS.items():
        if name is not None and chosen.name != name:
            continue
        missing = chosen.start_method and chosen.start_method not in multiprocessing.get_all_start_methods()
        why = f"start method {chosen.start_method!r} is not available"
        if chosen.name == "redis" and shutil.which("redis-server") is None:  # CI installs it (.ci/run)
            missing, why = True, "redis-server is not on PATH (apt-get install redis-server)"
        marks = [pytest.mark.skip(reason=why)] if missing else []
        params.append(pytest.param(chosen, id=label, marks=marks))
    return params


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> Backend:
    """thread, process-fork and process-spawn, as in CPython's concurrent.futures tests:
    the one matrix every module uses (a new backend is one entry of BACKENDS)."""
    chosen: Backend = request.param
    return chosen


# -- the fast lane ----------------------------------------------------------------

# Fixtures that start servers, worker processes or the real command: a test using
# one is `slow`, and `pytest -m "not slow"` leaves it out (a lane of seconds).
SLOW_FIXTURES = {"backend", "serve", "site", "small_site", "run_cli", "start_cli", "hostile_crawl",
                 "slow_crawl"}  # fmt: skip
SLOW_MODULES = {"test_concurrency", "test_compare", "test_faults", "test_hostile", "test_politeness"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if getattr(item, "module", None) else ""
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# -- leak checks ----------------------------------------------------------------

_cli_tokens: list[str] = []  # tokens of CLI runs of the current test


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            fields = file.read().rpartition(")")[2].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def live_pids() -> list[int]:
    """Pids of processes that are not zombies."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(entry)
            if stat is not None and stat[0] not in ("Z", "X"):
                pids.append(int(entry))
    return pids


def processes_with_token(token: str) -> list[int]:
    """Live processes whose environment carries this CLI run's token (the CLI and its children)."""
    if not HAVE_PROC:
        return []
    needle = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    for pid in live_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                environ = file.read().split(b"\0")
        except OSError:
            continue
        if needle in environ:
            found.append(pid)
    return found


def children_of(pid: int) -> list[int]:
    """Live direct children of `pid`."""
    return [child for child in live_pids() if (_stat(child) or ("", 0))[1] == pid]


_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _own_children() -> set[int]:
    """Our live child processes, except multiprocessing's long-lived helpers."""
    if not HAVE_PROC:
        return set()
    return {pid for pid in children_of(os.getpid()) if not any(h in _cmdline(pid) for h in _HELPERS)}


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if re.fullmatch(r"thread-\d+", t.name) and t.is_alive()]


def where_threads_are(threads: list[threading.Thread]) -> str:
    """The innermost frames of each thread: where a leaked one is stuck."""
    frames = sys._current_frames()
    lines = []
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        stack = traceback.format_stack(frame, limit=-8) if frame is not None else ["(ended)\n"]
        lines.append(f"{thread.name}:\n" + "".join(stack))
    return "\n".join(lines)


def release_worker_threads() -> None:
    """Tell leaked worker threads to stop, as their group's stop broadcast would.

    Threads cannot be killed; without this, one leaked worker would fail every
    later test. The worker's context is its first argument (see
    scraper.fetcher.worker_main); Thread keeps its arguments in `_args`.
    """
    for thread in _worker_threads():
        args = getattr(thread, "_args", ())
        if args and hasattr(args[0], "abandoned"):
            args[0].abandoned = True


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves worker processes, worker threads or CLI children behind."""
    _cli_tokens.clear()
    before = _own_children()
    # A thread leaked by an earlier test failed that test; it must not fail every later one.
    threads_before = set(_worker_threads())
    yield
    tokens = list(_cli_tokens)
    _cli_tokens.clear()

    def leftovers() -> dict[str, Any]:
        found: dict[str, Any] = {}
        active = multiprocessing.active_children()  # also joins the finished ones
        if active:
            found["multiprocessing children"] = active
        children = _own_children() - before
        if children:
            found["child processes"] = {pid: _cmdline(pid) for pid in children}
        strays = {pid: _cmdline(pid) for token in tokens for pid in processes_with_token(token)}
        if strays:
            found["processes of a CLI run"] = strays
        threads = [thread for thread in _worker_threads() if thread not in threads_before]
        if threads:
            found["worker threads"] = [thread.name for thread in threads]
        return found

    if not wait_until(lambda: not leftovers(), LEAK_GRACE):
        left = leftovers()
        if left:
            for token in tokens:  # do not let them leak into the next test
                for pid in processes_with_token(token):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            for process in multiprocessing.active_children():
                process.kill()
            stuck = [thread for thread in _worker_threads() if thread not in threads_before]
            where = where_threads_are(stuck)
            release_worker_threads()
            pytest.fail(f"left behind after the test: {left}\n{where}", pytrace=False)


# -- the CLI ----------------------------------------------------------------------


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    records: list[dict[str, Any]]
    output: Path | None
    duration: float

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (f"Result(rc={self.rc}, records={len(self.records)}, duration={self.duration:.1f}s,\n"
                f"stdout={self.stdout[-2000:]!r},\nstderr={self.stderr[-4000:]!r})")  # fmt: skip


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; fails on any line that is not one complete JSON object."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"{path}: last line is not terminated"
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{path}:{number}: not JSON ({exc}): {line[:200]!r}") from None
        assert isinstance(record, dict), f"{path}:{number}: not an object"
        records.append(record)
    return records


def output_path(args: tuple[str, ...], cwd: Path) -> Path:
    """The JSONL file a CLI run writes, from its arguments (as the CLI documents it)."""
    path: str | None = None
    for index, arg in enumerate(args):
        for option in ("-o", "--output", "-O", "--overwrite-output"):
            if arg == option and index + 1 < len(args):
                path = args[index + 1]
            elif arg.startswith(option + "=") and option.startswith("--"):
                path = arg.partition("=")[2]
    if path is None:
        path = os.path.join("data", "demo.jsonl" if "--demo" in args else "records.jsonl")
    return cwd / path


class CliProcess:
    """A running `python -m scraper ...` in its own session, with a unique environment token."""

    def __init__(self, args: tuple[str, ...], cwd: Path, stdin: str | None = None) -> None:
        self.args = args
        self.cwd = cwd
        self.token = uuid.uuid4().hex
        _cli_tokens.append(self.token)
        env = dict(os.environ, **{TOKEN_VARIABLE: self.token, "PYTHONUNBUFFERED": "1"})
        env.pop("COLUMNS", None)
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "scraper", *args], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self._stdin = stdin

    @property
    def pid(self) -> int:
        return self.popen.pid

    def processes(self) -> list[int]:
        """The CLI and every process it started, that are alive now."""
        return processes_with_token(self.token)

    def signal_group(self, signum: int) -> None:
        """What a terminal's Ctrl-C does: the signal to the whole process group."""
        os.killpg(self.popen.pid, signum)

    def wait(self, timeout: float) -> Result:
        try:
            stdout, stderr = self.popen.communicate(self._stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            stdout, stderr = self.popen.communicate()
            pytest.fail(f"scraper {' '.join(self.args)} did not finish within {timeout} s; "
                        f"stderr:\n{stderr[-4000:]}", pytrace=False)  # fmt: skip
        self._stdin = None
        duration = time.monotonic() - self.started
        output = output_path(self.args, self.cwd)
        return Result(self.popen.returncode, stdout, stderr, read_jsonl(output), output, duration)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        for pid in self.processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cli_cwd(tmp_path: Path) -> Path:
    """The working directory of CLI runs (relative output paths land here)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd


@pytest.fixture
def start_cli(cli_cwd: Path) -> Iterator[Callable[..., CliProcess]]:
    """Factory: `start_cli(*args, stdin=None)` -> a running CliProcess (killed if left running)."""
    started: list[CliProcess] = []

    def start(*args: str, stdin: str | None = None) -> CliProcess:
        process = CliProcess(tuple(str(arg) for arg in args), cli_cwd, stdin)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.popen.poll() is None:
            process.kill()
            process.popen.wait(10)


@pytest.fixture
def run_cli(start_cli: Callable[..., CliProcess]) -> Callable[..., Result]:
    """`run_cli(*args, timeout=60, stdin=None)` -> Result(rc, stdout, stderr, records, ...).

    Runs `python -m scraper ARGS` with the test's cwd, waits at most `timeout`
    seconds (then kills the process group and fails), and reads the JSONL output.
    """

    def run(*args: Any, timeout: float = 60, stdin: str | None = None) -> Result:
        return start_cli(*args, stdin=stdin).wait(timeout)

    return run


@pytest.fixture
def write_seeds(tmp_path: Path) -> Callable[..., Path]:
    """`write_seeds(*lines)` -> path of a seed file with these lines."""
    counter = iter(range(1_000_000))

    def write(*lines: str) -> Path:
        path = tmp_path / f"seeds-{next(counter)}.txt"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write
