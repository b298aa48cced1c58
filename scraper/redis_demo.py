"""`scraper --demo --backend redis`: the demo on a private redis-server, a coordinator
and two `scraper worker` processes, all on this machine (SPEC 8)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from .config import CrawlConfig
from .crawl import Crawl
from .demo import FLAVOURS, serve_in_process
from .errors import CrawlInterrupted, UsageError
from .interrupts import Interrupts, stop_on_signals

DEMO_WORKERS = 2
SERVER_START = 5.0  # seconds redis-server gets to open its socket


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server from PATH on a Unix socket in a temp dir, no persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise UsageError("the redis demo needs redis-server on PATH (e.g. apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="scraper-redis-") as folder:
        socket_path = os.path.join(folder, "redis.sock")
        # Its own session: a Ctrl-C is the coordinator's to handle, the server stays till the end.
        server = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", socket_path, "--save", "", "--appendonly", "no",
             "--dir", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + SERVER_START
            while not os.path.exists(socket_path):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise UsageError("redis-server did not start")
                time.sleep(0.02)
            yield f"unix://{socket_path}"
        finally:
            server.terminate()
            server.wait(5)


def start_workers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    """`scraper worker URL -w 1` processes, as another machine would run them (so
    a Ctrl-C does not reach them: they finish their pages and leave with the crawl)."""
    command = [sys.executable, "-m", "scraper", "worker", url, "-w", "1"]
    return [subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
            for _ in range(count)]  # fmt: skip


def run_redis_demo(config: CrawlConfig) -> int:
    """Each demo site crawled by a coordinator and two workers over a private Redis."""
    output = config.output_path or os.path.join("data", "demo.jsonl")
    stem = os.path.splitext(output)[0]
    with stop_on_signals() as interrupts, private_redis() as url:
        try:
            for index, (title, site, delay, _) in enumerate(FLAVOURS):
                if interrupts.received:
                    break
                print(f"demo {index + 1}/{len(FLAVOURS)}: {title}: a coordinator and {DEMO_WORKERS} workers "
                      f"over Redis ({url}) ...", file=sys.stderr)  # fmt: skip
                run_config = config.replace(
                    backend="redis", redis=url, workers=0, depth=max(config.depth, 20), allow_domain=(),
                    output=None, overwrite_output=f"{stem}.redis.{('io', 'cpu')[index]}.jsonl", resume=False,
                )  # fmt: skip
                with serve_in_process(site, delay) as start_url:
                    crawl = crawl_with_workers(run_config, start_url, url, interrupts)
                summary = crawl.stats.summary().replace("\n", "\n  ")
                print(f"{title}\n  {summary}\n  records: {run_config.output_path}\n")
        except CrawlInterrupted:
            pass  # a second signal: the crawl under way was closed at once
    return interrupts.exit_status or 0


def crawl_with_workers(config: CrawlConfig, start_url: str, redis_url: str, interrupts: Interrupts) -> Crawl:
    """One crawl by this coordinator and DEMO_WORKERS `scraper worker` processes."""
    workers = start_workers(redis_url, DEMO_WORKERS)
    try:
        crawl = Crawl(config, [start_url])
        with interrupts.running(crawl), crawl:
            for _ in crawl.run():
                pass
        return crawl
    finally:
        for worker in workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
