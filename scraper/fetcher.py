"""The fetcher role: the worker loop, and `handle(task) -> Result` for one task.

The same loop runs in a thread or in a process; nothing here knows which.
A fetcher never raises out of `handle`: every failure becomes a record with
an `error`, and a worker only stops on its `None` sentinel or when its
parent is gone.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable
from typing import Any

from . import errors
from .config import CrawlConfig
from .download import Download, Limits, download, new_session
from .parse import compile_select, is_html, parse_page, split_content_type
from .records import ROBOTS, Result, Task, failed_record, new_record
from .urls import host_in_scope, host_of

GET_TIMEOUT = 0.5  # seconds between checks that the parent is still alive
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB
IDLE = -1  # the value of `current` when a worker holds no task


class Fetcher:
    """Per-worker state: one requests.Session, compiled selectors, the limits."""

    def __init__(
        self,
        config: CrawlConfig,
        name: str,
        allowed_hosts: tuple[str, ...],
        parse_started: Any = None,
        index: int = 0,
    ) -> None:
        self.config = config
        self.parse_started = parse_started  # shared array: when this thread's parse began
        self.index = index
        self.name = name
        self.allowed_hosts = allowed_hosts
        self.session = new_session(config.user_agent)
        self.selects = {field: compile_select(css) for field, css in config.select}
        self.page_limits = Limits(config.timeout, config.max_bytes, config.retries)
        self.robots_limits = Limits(config.timeout, ROBOTS_MAX_BYTES, config.retries)

    def close(self) -> None:
        self.session.close()

    def in_scope(self, url: str) -> bool:
        return host_in_scope(host_of(url), self.allowed_hosts)

    def handle(self, task: Task) -> Result:
        """Fetch and parse one task; never raises."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        result = self._handle(task)
        result.cpu_ms = (time.thread_time() - cpu_started) * 1000
        result.wall_ms = (time.perf_counter() - started) * 1000
        return result

    def _handle(self, task: Task) -> Result:
        record = new_record(task, self.name)
        record["fields"] = {name: [] for name in self.selects}
        try:
            if task.kind == ROBOTS:
                return self._handle_robots(task, record)
            fetched = download(self.session, task.url, self.page_limits, self.in_scope)
            fill_from_download(record, fetched)
            if record["error"] is None:
                self._parse_into(record, fetched)
        except Exception as exc:  # a bug must not cost the crawl: record it
            record["error"] = f"{errors.INTERNAL}: {type(exc).__name__}: {exc}"[:300]
        record["ok"] = record["error"] is None
        return Result(task, record)

    def _handle_robots(self, task: Task, record: dict[str, Any]) -> Result:
        fetched = download(self.session, task.url, self.robots_limits)
        fill_from_download(record, fetched)
        text = None
        if fetched.error is None and fetched.status is not None and 200 <= fetched.status < 300:
            text = fetched.body.decode("utf-8", errors="replace")
        return Result(task, record, robots_txt=text)

    def _parse_into(self, record: dict[str, Any], fetched: Download) -> None:
        started = time.thread_time()  # CPU time of this thread: right for both backends
        if self.parse_started is not None:
            self.parse_started[self.index] = time.time()
        try:
            if is_html(record["content_type"], fetched.body):
                page = parse_page(fetched.body, fetched.content_type, record["final_url"], self.selects)
                record.update(
                    title=page.title, description=page.description, lang=page.lang,
                    canonical=page.canonical, links=page.links, fields=page.fields,
                )  # fmt: skip
                if self.config.parse is not None and page.tree is not None:
                    run_parse_callback(self.config.parse, record, page.tree)
        except Exception as exc:
            record["error"] = f"{errors.PARSE}: {type(exc).__name__}: {exc}"[:300]
        finally:
            record["parse_ms"] = round((time.thread_time() - started) * 1000, 3)
            if self.parse_started is not None:
                self.parse_started[self.index] = 0.0


def fill_from_download(record: dict[str, Any], fetched: Download) -> None:
    media_type, _ = split_content_type(fetched.content_type)
    record.update(
        final_url=fetched.final_url, status=fetched.status, error=fetched.error,
        elapsed_ms=fetched.elapsed_ms, content_type=media_type, bytes=len(fetched.body),
    )  # fmt: skip


def run_parse_callback(callback: Callable[..., Any], record: dict[str, Any], tree: Any) -> None:
    """Merge a user callback's dict into `fields`; it must be JSON-serializable."""
    extra = callback(record, tree)
    if extra is None:
        return
    if not isinstance(extra, dict):
        raise TypeError(f"parse callback returned {type(extra).__name__}, not dict")
    # Fails here, as a parse error, rather than in the writer (NaN, lone surrogates...).
    json.dumps(extra, allow_nan=False, ensure_ascii=False).encode("utf-8")
    record["fields"] = {**record["fields"], **extra}


def send_result(results: Any, result: Result, worker: str) -> None:
    """Send a result; one that cannot be pickled is replaced by an error record
    (as concurrent.futures' _sendback_result does), so the worker lives on."""
    try:
        results.send(result)
    except OSError:
        raise
    except Exception as exc:
        error = f"{errors.INTERNAL}: result could not be sent: {type(exc).__name__}: {exc}"[:300]
        results.send(Result(result.task, failed_record(result.task, worker, error)))


def worker_main(
    name: str,
    tasks: Any,
    results: Any,
    current: Any,
    parse_started: Any,
    config: CrawlConfig,
    allowed_hosts: tuple[str, ...],
    parent_alive: Callable[[], bool],
    index: int = 0,
) -> None:
    """The worker loop: get a task, handle it, send the result, task_done().

    A process may run several of these loops in threads; loop `index` keeps
    the id of the task in hand in `current[index]` (IDLE otherwise) and the
    time its parse began in `parse_started[index]`, so that the pool can
    retry the task if this worker dies or hangs.
    """
    fetcher = Fetcher(config, name, allowed_hosts, parse_started, index)
    try:
        while True:
            try:
                task = tasks.get(timeout=GET_TIMEOUT)
            except queue.Empty:
                if not parent_alive():
                    return
                continue
            try:
                if task is None:
                    return
                current[index] = task.id
                send_result(results, fetcher.handle(task), name)
            except OSError:  # the result pipe is closed: the parent is gone
                return
            finally:
                current[index] = IDLE
                tasks.task_done()
    finally:
        fetcher.close()
