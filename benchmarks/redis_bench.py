"""Benchmarks of the redis backend (issue 13); not tests, nothing here is timed in CI.

    python benchmarks/run.py --redis              # 1. redis vs process backend, local workers only
    python benchmarks/redis_bench.py coordinator  # 2. pages/s and CPU per page of one coordinator
    python benchmarks/redis_bench.py scaling      # 3. 1, 2, 4 worker machines (network namespaces; root)

2 runs the coordinator in this process against synthetic workers: real `scraper
worker` processes (the Redis protocol and wire format unchanged) whose fetcher
makes a record with 40 links up instead of fetching, so that fetching is nearly
free and the coordinator is the limit.

3 runs each worker machine in a network namespace (as tests/test_redis_hosts.py
makes them), redis-server with a password on the veth addresses, and 4 site
servers answering in 200 ms from a process of their own.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import scraper
from scraper.redis_demo import private_redis

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))  # siteserver


def timed_crawl(url: str, **settings: Any) -> tuple[int, float, float]:
    """(pages, wall seconds, CPU seconds of this process: the coordinator's) of one crawl."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    records = scraper.crawl([url], depth=1000, **settings)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return len(records), wall, cpu


SCALING_DELAY = 0.2  # seconds per response of the scaling benchmark's site
SYNTHETIC_PAGES = 20_000  # pages of the synthetic site of the coordinator benchmark
SYNTHETIC_ROOT = "http://127.0.0.1:9/"  # never fetched: the synthetic workers make the records up


def synthetic_links(url: str) -> list[str]:
    """40 links, as on the lab's site A: page n links to its 6 children (a tree of
    SYNTHETIC_PAGES), to 10 pages of a navigation bar every page repeats and to 24
    pages spread over the site (mostly seen already: duplicates to drop)."""
    tail = url.rsplit("/", 1)[1]
    n = int(tail) if tail.isdigit() else 0
    children = [c for c in range(n * 6 + 1, n * 6 + 7) if c < SYNTHETIC_PAGES]
    spread = [(n * 7919 + k * 104729) % SYNTHETIC_PAGES for k in range(24)]
    return [f"{SYNTHETIC_ROOT}p/{c}" for c in [*children, *range(10), *spread]]


def run_synthetic_worker(url: str, threads: int) -> None:
    """A `scraper worker` whose fetcher makes a ~2 KB record up instead of fetching:
    the real Redis protocol and wire format, with fetching nearly free."""
    import threading

    from scraper import fetcher
    from scraper.backends import redis_worker
    from scraper.records import Result, new_record

    class SyntheticFetcher(fetcher.Fetcher):
        def handle(self, task: Any) -> Any:
            record = new_record(task, self.name)
            links = synthetic_links(task.url) if task.kind == "page" else []
            record.update(final_url=task.url, status=200 if links else 404, ok=True, content_type="text/html",
                          bytes=20_000, title=f"Page {task.url}", description="x" * 150, lang="en",
                          links=links, sha256="0" * 64, elapsed_ms=1.0, parse_ms=1.0)  # fmt: skip
            return Result(task, record, robots_body=b"" if task.kind == "robots" else None)

    fetcher.Fetcher = SyntheticFetcher  # type: ignore[misc]
    redis_worker.serve(url, "default", threads, False, threading.Event())


def bench_coordinator(workers: int) -> None:
    """2. The coordinator alone in this process; synthetic workers (fetching nearly free)."""
    with private_redis() as redis_url:
        command = [sys.executable, os.path.abspath(__file__), "synthetic-worker", redis_url]
        procs = [subprocess.Popen(command, stderr=subprocess.DEVNULL) for _ in range(workers)]
        try:
            pages, wall, cpu = timed_crawl(SYNTHETIC_ROOT, backend="redis", redis=redis_url, workers=0,
                                           per_host=10_000, concurrency=256, ignore_robots=True)  # fmt: skip
        finally:
            for proc in procs:
                proc.wait(10)
        print(f"coordinator: {pages} pages in {wall:.2f} s = {pages / wall:.0f} pages/s; "
              f"its CPU {cpu * 1e6 / pages:.0f} us per page ({workers} synthetic workers)")  # fmt: skip


def serve_sites(host: str, pages: int, origins: int, delay: float) -> None:
    """`site-servers`: `origins` copies of a generated site on `host`, one URL a line on
    stdout; they serve until stdin closes (a process apart: no GIL shared with the crawl)."""
    from siteserver import SiteServer, build_site

    site = build_site(pages // origins)
    servers = [SiteServer(site, delay=delay, host=host).start() for _ in range(origins)]
    print(" ".join(server.url("/") for server in servers), flush=True)
    sys.stdin.read()
    for server in servers:
        server.close()


def bench_scaling(counts: list[int], pages: int, threads: int = 16) -> None:
    """3. 1, 2, 4 worker machines (network namespaces, as the multi-machine tests make
    them) on an I/O-bound site of 4 origins answering in 200 ms, `threads` per worker."""
    from test_redis_hosts import Machines  # the namespaces of the multi-machine tests

    import scraper.backends.redis  # noqa: F401  (imported before the clock starts, as on every later run)

    first: float | None = None
    for count in counts:
        machines = Machines()
        sites = redis = None
        try:
            hosts = [machines.add() for _ in range(count)]
            port, address = 16379, hosts[0][1]
            redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", *[a for _, a in hosts],
                                      "--requirepass", "bench", "--save", "", "--dir", tempfile.mkdtemp()],
                                     stdout=subprocess.DEVNULL)  # fmt: skip
            sites = subprocess.Popen([sys.executable, os.path.abspath(__file__), "site-servers", address,
                                      "--pages", str(pages)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)  # fmt: skip
            seeds = sites.stdout.readline().split()  # type: ignore[union-attr]
            for name, here in hosts:
                machines.run(name, sys.executable, "-m", "scraper", "worker",
                             f"redis://:bench@{here}:{port}", "-w", "1", "--concurrency", str(threads))
            time.sleep(2.0)  # the workers start (imports) and wait for the coordinator, as on real machines
            started = time.perf_counter()
            records = scraper.crawl(seeds, depth=1000, backend="redis", workers=0, per_host=1000,
                                    redis=f"redis://:bench@{address}:{port}",
                                    concurrency=count * threads)  # fmt: skip
            rate = len(records) / (time.perf_counter() - started)
            first = first or rate
            ideal = count * threads / SCALING_DELAY
            print(f"{count} worker machine(s) x {threads} threads: {len(records)} pages, {rate:.0f} pages/s "
                  f"({rate / ideal:.0%} of {ideal:.0f}), {rate / first:.2f}x of one", flush=True)  # fmt: skip
        finally:
            for process in (sites, redis):
                if process is not None:
                    process.kill()
                    process.wait()
            machines.close()


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    choices = ("coordinator", "scaling", "synthetic-worker", "site-servers")
    parser.add_argument("which", choices=choices)
    parser.add_argument("address", nargs="?", help="synthetic-worker: the Redis URL; site-servers: the host")
    parser.add_argument("--pages", type=int, default=6400, help="scaling: pages of the site (4 origins)")
    parser.add_argument("-w", "--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.which == "coordinator":
        bench_coordinator(args.workers)
    elif args.which == "synthetic-worker":
        run_synthetic_worker(args.address, threads=64)
    elif args.which == "site-servers":
        serve_sites(args.address, args.pages, origins=4, delay=SCALING_DELAY)
    else:
        bench_scaling([1, 2, 4], args.pages)


if __name__ == "__main__":
    main()
