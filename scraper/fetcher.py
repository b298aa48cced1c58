"""The fetcher role: the worker loop, and `handle(task) -> Result` for one task.

The same loop runs in a thread, in a process or on another machine, over the
WorkerContext its backend gives it (backends/base.py); nothing here knows
which. A fetcher never raises out of `handle`: every failure becomes a record
with an `error`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import errors
from .callbacks import resolve_callback
from .download import GZIP_MAGIC, RETRY_STATUSES, Download, Limits, download, gunzip
from .linkbatch import LinkBatch, link_batch
from .parse import compile_select, is_html, parse_page, parse_sitemap, split_content_type
from .records import ROBOTS, SITEMAP, SLOW_DOWN_STATUSES, Result, Task, WorkerSpec, failed_record, new_record
from .session import new_session
from .urls import canonicalize
from .warc import WarcFile, close_warc, open_warc, written_at

if TYPE_CHECKING:
    from .backends.base import WorkerContext

GET_TIMEOUT = 0.05  # seconds between two looks at should_stop() while idle
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB (a longer file is cut there)
ROBOTS_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five


def _ignore(active: bool) -> None:
    pass


class Fetcher:
    """Per-fetch-thread state: one requests.Session, compiled selectors, the limits.

    `on_parse(True)` / `on_parse(False)` are called around each parse, so
    that the worker's backend can tell a parse that hangs or crashes.
    """

    def __init__(self, spec: WorkerSpec, name: str, on_parse: Callable[[bool], None] = _ignore) -> None:
        self.spec = spec
        self.name = name
        self.on_parse = on_parse
        self.session = new_session(spec.user_agent, spec.headers, spec.cookies, spec.auth,
                                   spec.private_origins)  # fmt: skip
        self.selects = {field: compile_select(css) for field, css in spec.select}
        self.callback = resolve_callback(spec.parse) if spec.parse else None
        # Pages: each redirect goes back to the scheduler, which checks it like a
        # link (scope, robots.txt), and so does a 429 or 503 (it slows the host down).
        archive = spec.warc is not None
        self.page_limits = Limits(spec.timeout, spec.max_bytes, spec.retries, max_redirects=0,
                                  retry_statuses=RETRY_STATUSES - SLOW_DOWN_STATUSES,
                                  archive=archive)  # fmt: skip
        self.robots_limits = Limits(spec.timeout, ROBOTS_MAX_BYTES, spec.retries,
                                    max_redirects=ROBOTS_REDIRECTS, cut_at_max=True,
                                    archive=archive)  # fmt: skip
        # Sitemaps, like robots.txt, are no pages: their redirects are followed here.
        self.sitemap_limits = Limits(spec.timeout, spec.max_bytes, spec.retries,
                                     max_redirects=ROBOTS_REDIRECTS, archive=archive)  # fmt: skip
        # --warc: this process's file, written here, wherever the worker runs
        self.warc: WarcFile | None = open_warc(spec.warc) if spec.warc else None

    def close(self) -> None:
        self.session.close()
        if self.warc is not None:
            close_warc(self.warc)
            self.warc = None

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
            if task.kind == SITEMAP:
                return self._handle_sitemap(task, record)
            return self._handle_page(task, record)
        except Exception as exc:  # a bug must not cost the crawl: record it
            record["error"] = errors.describe(errors.INTERNAL, f"{type(exc).__name__}: {exc}")
        record["ok"] = record["error"] is None
        return Result(task, record)

    def _handle_page(self, task: Task, record: dict[str, Any]) -> Result:
        limits = self.page_limits
        if task.spent_ms:  # a redirect hop: what is left of the page's deadline
            limits = replace(limits, timeout=max(limits.timeout - task.spent_ms / 1000, 0.001))
        validators = task.validators if task.if_none_match or task.if_modified_since else None
        fetched = download(self.session, task.target, limits, headers=validators)
        fill_from_download(record, fetched, task)
        self._archive(record, fetched)
        links = None
        if record["error"] is None and fetched.redirect_to is None:
            links = self._parse_into(record, fetched)
        record["ok"] = record["error"] is None
        return Result(task, record, redirect_to=fetched.redirect_to, links=links,
                      retry_after=fetched.retry_after)  # fmt: skip

    def _handle_robots(self, task: Task, record: dict[str, Any]) -> Result:
        fetched = download(self.session, task.url, self.robots_limits)
        fill_from_download(record, fetched, task)
        self._archive(record, fetched)
        record["ok"] = record["error"] is None
        return Result(task, record, robots_body=fetched.body)

    def _handle_sitemap(self, task: Task, record: dict[str, Any]) -> Result:
        """A sitemap's <loc>s (gunzipped first when it is gzip, under --max-bytes)."""
        fetched = download(self.session, task.target, self.sitemap_limits)
        fill_from_download(record, fetched, task)
        self._archive(record, fetched)
        entries = None
        if record["error"] is None:
            body = fetched.body
            if body.startswith(GZIP_MAGIC):
                body, record["error"] = gunzip(body, self.spec.max_bytes)
            if record["error"] is None:
                entries = self._sitemap_entries(body, record)
        record["ok"] = record["error"] is None
        return Result(task, record, sitemap=entries)

    def _sitemap_entries(self, body: bytes, record: dict[str, Any]) -> dict[str, list[str]] | None:
        started = time.thread_time()
        try:
            return parse_sitemap(body)
        except Exception as exc:  # XMLSyntaxError, or not XML at all
            record["error"] = errors.describe(errors.PARSE, f"{type(exc).__name__}: {exc}")
            return None
        finally:
            record["parse_ms"] = round((time.thread_time() - started) * 1000, 3)
    def _archive(self, record: dict[str, Any], fetched: Download) -> None:
        """--warc: write every exchange; the record points to the last response."""
        if self.warc is None:
            return
        for exchange in fetched.exchanges:
            record["warc"] = written_at(self.warc, self.warc.write(exchange))

    def _parse_into(self, record: dict[str, Any], fetched: Download) -> LinkBatch | None:
        """Fill the record from an HTML body; its links, parsed for the frontier."""
        started = time.thread_time()  # CPU time of this thread: right for both backends
        self.on_parse(True)
        try:
            if is_html(record["content_type"], fetched.body):
                # Relative links join to the URL that was requested, not its canonical form.
                url = fetched.final_url or fetched.url
                page = parse_page(fetched.body, fetched.content_type, url, self.selects)
                record.update(
                    title=page.title, description=page.description, lang=page.lang,
                    canonical=page.canonical, links=page.links, fields=page.fields,
                )  # fmt: skip
                if self.callback is not None and page.tree is not None:
                    run_parse_callback(self.callback, record, page.tree)
                return link_batch(record["links"], page.link_urls)
        except Exception as exc:
            record["error"] = errors.describe(errors.PARSE, f"{type(exc).__name__}: {exc}")
        finally:
            record["parse_ms"] = round((time.thread_time() - started) * 1000, 3)
            self.on_parse(False)
        return None


def fill_from_download(record: dict[str, Any], fetched: Download, task: Task) -> None:
    media_type, _ = split_content_type(fetched.content_type)
    record.update(
        final_url=_canonical_final_url(fetched.final_url, task), status=fetched.status,
        error=fetched.error, elapsed_ms=round(task.spent_ms + fetched.elapsed_ms, 3),
        content_type=media_type, bytes=len(fetched.body), etag=fetched.etag,
        last_modified=fetched.last_modified, sha256=body_sha256(fetched),
    )  # fmt: skip
    if fetched.status == 304 and fetched.error is None:
        # --since: the scheduler fills in the old record's content (since.py)
        record["unchanged"] = True


def body_sha256(fetched: Download) -> str | None:
    """Hex SHA-256 of the decoded body of a 2xx response; None when there is no body."""
    if fetched.error is not None or fetched.status is None or not 200 <= fetched.status < 300:
        return None
    return hashlib.sha256(fetched.body).hexdigest()


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


def send_result(context: WorkerContext, result: Result) -> None:
    """Send a result; one that cannot be sent (not picklable, not JSON) is
    replaced by an error record (as concurrent.futures' _sendback_result
    does), so the worker lives on."""
    try:
        context.send(result)
    except OSError:
        raise
    except Exception as exc:
        error = errors.describe(errors.INTERNAL, f"result could not be sent: {type(exc).__name__}: {exc}")
        context.send(Result(result.task, failed_record(result.task, context.name, error)))


def worker_main(context: WorkerContext, spec: WorkerSpec) -> None:
    """The worker loop, the same in a thread, a process or on another machine:
    take a task, handle it, send its result, say it is done; until told to stop."""
    errors.configure_logging()  # a worker process logs at the command line's level
    fetcher = Fetcher(spec, context.name, on_parse=context.parsing)
    try:
        while not context.should_stop():
            task = context.next_task(GET_TIMEOUT)
            if task is None:
                continue
            context.began(task)
            try:
                send_result(context, fetcher.handle(task))
            except OSError:  # the result channel is closed: the crawl is gone
                return
            finally:
                context.done(task)
    finally:
        fetcher.close()
