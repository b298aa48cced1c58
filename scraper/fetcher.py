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
from dataclasses import replace
from typing import Any

from . import errors
from .config import CrawlConfig
from .download import RETRY_STATUSES, Download, Limits, download, new_session
from .parse import compile_select, is_html, parse_page, split_content_type
from .records import ROBOTS, SLOW_DOWN_STATUSES, Result, Task, failed_record, new_record
from .urls import canonicalize

GET_TIMEOUT = 0.5  # seconds between checks that the parent is still alive
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB (a longer file is cut there)
ROBOTS_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five
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
        # Pages: each redirect goes back to the scheduler, which checks it like a
        # link (scope, robots.txt), and so does a 429 or 503 (it slows the host down).
        self.page_limits = Limits(config.timeout, config.max_bytes, config.retries, max_redirects=0,
                                  retry_statuses=RETRY_STATUSES - SLOW_DOWN_STATUSES)  # fmt: skip
        self.robots_limits = Limits(config.timeout, ROBOTS_MAX_BYTES, config.retries,
                                    max_redirects=ROBOTS_REDIRECTS, cut_at_max=True)  # fmt: skip

    def close(self) -> None:
        self.session.close()

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
            return self._handle_page(task, record)
        except Exception as exc:  # a bug must not cost the crawl: record it
            record["error"] = f"{errors.INTERNAL}: {type(exc).__name__}: {exc}"[:300]
        record["ok"] = record["error"] is None
        return Result(task, record)

    def _handle_page(self, task: Task, record: dict[str, Any]) -> Result:
        limits = self.page_limits
        if task.spent_ms:  # a redirect hop: what is left of the page's deadline
            limits = replace(limits, timeout=max(limits.timeout - task.spent_ms / 1000, 0.001))
        fetched = download(self.session, task.target, limits)
        fill_from_download(record, fetched, task)
        link_urls = None
        if record["error"] is None and fetched.redirect_to is None:
            link_urls = self._parse_into(record, fetched)
        record["ok"] = record["error"] is None
        return Result(task, record, redirect_to=fetched.redirect_to, link_urls=link_urls,
                      retry_after=fetched.retry_after)  # fmt: skip

    def _handle_robots(self, task: Task, record: dict[str, Any]) -> Result:
        fetched = download(self.session, task.url, self.robots_limits)
        fill_from_download(record, fetched, task)
        record["ok"] = record["error"] is None
        return Result(task, record, robots_body=fetched.body)

    def _parse_into(self, record: dict[str, Any], fetched: Download) -> dict[str, str] | None:
        """Fill the record from an HTML body; the links' URLs as linked, where they differ."""
        started = time.thread_time()  # CPU time of this thread: right for both backends
        if self.parse_started is not None:
            self.parse_started[self.index] = time.time()
        try:
            if is_html(record["content_type"], fetched.body):
                # Relative links join to the URL that was requested, not its canonical form.
                page = parse_page(fetched.body, fetched.content_type, fetched.final_url, self.selects)
                record.update(
                    title=page.title, description=page.description, lang=page.lang,
                    canonical=page.canonical, links=page.links, fields=page.fields,
                )  # fmt: skip
                if self.config.parse is not None and page.tree is not None:
                    run_parse_callback(self.config.parse, record, page.tree)
                return page.link_urls or None
        except Exception as exc:
            record["error"] = f"{errors.PARSE}: {type(exc).__name__}: {exc}"[:300]
        finally:
            record["parse_ms"] = round((time.thread_time() - started) * 1000, 3)
            if self.parse_started is not None:
                self.parse_started[self.index] = 0.0


def fill_from_download(record: dict[str, Any], fetched: Download, task: Task) -> None:
    media_type, _ = split_content_type(fetched.content_type)
    record.update(
        final_url=_canonical_final_url(fetched.final_url, task), status=fetched.status,
        error=fetched.error, elapsed_ms=round(task.spent_ms + fetched.elapsed_ms, 3),
        content_type=media_type, bytes=len(fetched.body),
    )  # fmt: skip


def _canonical_final_url(url: str | None, task: Task) -> str | None:
    """The record's `final_url`: canonical, like `url` and `links`."""
    if url is None or url == task.target and not task.hops:
        return task.url if url is not None else None
    try:
        return canonicalize(url)
    except ValueError:
        return url


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
