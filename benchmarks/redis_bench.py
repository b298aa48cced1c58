"""Benchmarks of the redis backend (issue 13); not tests, nothing here is timed in CI.

    python benchmarks/redis_bench.py local        # 1. redis vs process backend, local workers only
    python benchmarks/redis_bench.py coordinator  # 2. pages/s and CPU per page of one coordinator
    python benchmarks/redis_bench.py scaling      # 3. 1, 2, 4 worker machines (network namespaces; root)

Each starts a private redis-server on a Unix socket (TCP on veth addresses for
`scaling`) and serves generated sites from a separate process (scraper.demo):
  A: CPU-bound, 1500 heavy pages, no delay, --per-host 16 (the lab's site A in shape)
  B: I/O-bound, 1000 light pages, 100 ms per response, --per-host 64 (the lab's site B in shape)
Runs alternate between the backends; the median of REPEAT runs is printed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import scraper
from scraper.demo import serve_in_process
from scraper.redis_demo import private_redis

# site -> (generated site, seconds per response, --per-host as the lab gives Scrapy)
SITES = {"A": ({"pages": 1500, "padding": 400}, 0.0, 16), "B": ({"pages": 1000}, 0.1, 64)}
REPEAT = int(os.environ.get("REPEAT", "3"))


def timed_crawl(url: str, **settings: Any) -> tuple[int, float, float]:
    """(pages, wall seconds, CPU seconds of this process: the coordinator's) of one crawl."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    records = scraper.crawl([url], depth=1000, **settings)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return len(records), wall, cpu


def bench_local(workers: int) -> None:
    """1. One machine: the redis backend's local workers against the process backend."""
    with private_redis() as redis_url:
        for name, (site, delay, per_host) in SITES.items():
            with serve_in_process(site, delay) as url:
                rates: dict[str, list[float]] = {"process": [], "redis": []}
                for _ in range(REPEAT):
                    for backend in rates:
                        extra: dict[str, Any] = {"per_host": per_host}
                        if backend == "redis":
                            extra["redis"] = redis_url
                        pages, wall, _ = timed_crawl(url, backend=backend, workers=workers, **extra)
                        rates[backend].append(pages / wall)
                process, redis = (statistics.median(rates[b]) for b in ("process", "redis"))
                print(f"site {name}: process {process:.0f} pages/s, redis {redis:.0f} pages/s, "
                      f"ratio {redis / process:.2f}", flush=True)  # fmt: skip


def bench_coordinator(workers: int) -> None:
    """2. The coordinator alone in this process, remote workers on a static site."""
    with private_redis() as redis_url, serve_in_process({"pages": 3000, "fanout": 6}, 0.0) as url:
        command = [sys.executable, "-m", "scraper", "worker", redis_url, "-w", "1"]
        procs = [subprocess.Popen(command, stderr=subprocess.DEVNULL) for _ in range(workers)]
        try:
            pages, wall, cpu = timed_crawl(url, backend="redis", redis=redis_url, workers=0,
                                           per_host=10_000, ignore_robots=True)  # fmt: skip
        finally:
            for proc in procs:
                proc.wait(10)
        print(f"coordinator: {pages} pages in {wall:.2f} s = {pages / wall:.0f} pages/s; "
              f"its CPU {cpu * 1e6 / pages:.0f} us per page ({workers} workers)")  # fmt: skip


def bench_scaling(counts: list[int], pages: int = 1600, threads: int = 16) -> None:
    """3. 1, 2, 4 worker machines (network namespaces, as the multi-machine tests make
    them) on an I/O-bound site of 4 origins answering in 200 ms, `threads` per worker."""
    tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
    sys.path.insert(0, tests)
    from siteserver import SiteServer, build_site
    from test_redis_hosts import Machines  # the namespaces of the multi-machine tests

    first: float | None = None
    for count in counts:
        machines, servers = Machines(), []
        try:
            hosts = [machines.add() for _ in range(count)]
            folder = tempfile.mkdtemp()
            port = 16379
            redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", *[a for _, a in hosts],
                                      "--requirepass", "bench", "--save", "", "--dir", folder],
                                     stdout=subprocess.DEVNULL)  # fmt: skip
            time.sleep(0.3)
            site = build_site(pages // 4)
            servers = [SiteServer(site, delay=0.2, host=hosts[0][1]).start() for _ in range(4)]
            for name, address in hosts:
                machines.run(name, sys.executable, "-m", "scraper", "worker",
                             f"redis://:bench@{address}:{port}", "-w", "1", "--concurrency", str(threads))
            time.sleep(2.0)  # the workers start (imports) and wait for the coordinator, as on real machines
            started = time.perf_counter()
            records = scraper.crawl([s.url("/") for s in servers], depth=1000, backend="redis", workers=0,
                                    redis=f"redis://:bench@{hosts[0][1]}:{port}", per_host=1000,
                                    concurrency=count * threads)  # fmt: skip
            rate = len(records) / (time.perf_counter() - started)
            first = first or rate
            print(f"{count} worker machine(s) x {threads} threads: {len(records)} pages, {rate:.0f} pages/s, "
                  f"{rate / first:.2f}x of one", flush=True)  # fmt: skip
            redis.kill()
        finally:
            for server in servers:
                server.close()
            machines.close()


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("which", choices=("local", "coordinator", "scaling"))
    parser.add_argument("-w", "--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.which == "local":
        bench_local(args.workers)
    elif args.which == "coordinator":
        bench_coordinator(args.workers)
    else:
        bench_scaling([1, 2, 4])


if __name__ == "__main__":
    main()
