"""Reproduce the README's performance figures: this crawler (and Scrapy, if asked)
on two local sites, in alternating pairs, with pages/s, CPU seconds and the ratio.

    python benchmarks/run.py                 # scraper only
    python benchmarks/run.py --scrapy        # and Scrapy, installed into benchmarks/.venv-scrapy
    python benchmarks/run.py --pairs 5 --sites B
    python benchmarks/run.py --redis         # and the redis backend's local workers (issue 13)

Needs: this project installed in the running Python (`pip install -e .`);
nginx on PATH for site A (`apt-get install nginx`; without it A is skipped);
with --scrapy, network access once to install Scrapy into its own venv; with
--redis, `pip install -e '.[redis]'` and redis-server on PATH (a private one
is started on a Unix socket). All traffic stays on 127.0.0.1. Sites:

  A  2,000 pages of 80 KB served by nginx: parsing is the work (CPU-bound)
  B  1,000 pages of 10 KB, each answered 100 ms late: waiting is the work (I/O-bound)

Both crawlers follow every link from `/`, obey robots.txt, write JSONL and get
the same per-host allowance (16 requests in flight on A, 64 on B). Each run's
output is checked to hold every page exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRAPY_VENV = Path(os.environ.get("SCRAPY_VENV", HERE / ".venv-scrapy"))  # where Scrapy is (installed)
SCRAPY_VERSION = "2.19.0"  # the README's figures; any recent Scrapy works


@dataclass(frozen=True)
class Site:
    name: str
    pages: int
    kb: int
    delay_ms: float
    concurrency: int  # the per-host allowance both crawlers get


SITES = {
    "A": Site("A", pages=2000, kb=80, delay_ms=0, concurrency=16),
    "B": Site("B", pages=1000, kb=10, delay_ms=100, concurrency=64),
}


@dataclass
class Run:
    crawler: str
    pages: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.pages / self.wall


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"the server on port {port} did not start")


NGINX_CONF = """daemon off; worker_processes 1; pid {folder}/nginx.pid; error_log stderr error;
events {{ worker_connections 1024; }}
http {{ access_log off; default_type text/html; types {{ text/plain txt; }}
  client_body_temp_path {folder}; proxy_temp_path {folder}; fastcgi_temp_path {folder};
  uwsgi_temp_path {folder}; scgi_temp_path {folder};
  server {{ listen 127.0.0.1:{port}; root {root}; index index.html; keepalive_requests 100000; }} }}
"""


@contextmanager
def serving(site: Site, root: Path, work: Path):  # noqa: ANN201
    """Start the site's server; yield its start URL."""
    port = free_port()
    if site.delay_ms:
        command = [sys.executable, str(HERE / "sites.py"), "serve", str(root), str(port),
                   "--delay-ms", str(site.delay_ms)]  # fmt: skip
    else:
        conf = work / f"nginx-{site.name}.conf"
        conf.write_text(NGINX_CONF.format(folder=work, port=port, root=root))
        command = ["nginx", "-c", str(conf), "-p", str(work)]
    server = subprocess.Popen(command)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(10)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], output: Path, crawler: str, expected: int) -> Run:
    """Run `command`; its wall and CPU seconds; check `output` holds every page once."""
    cpu, started = children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu
    urls = [json.loads(line)["url"] for line in output.read_text().splitlines() if line.strip()]
    if len(urls) != expected or len(set(urls)) != expected:
        raise SystemExit(f"{crawler}: {len(urls)} records, {len(set(urls))} distinct; expected {expected}")
    return Run(crawler, len(urls), wall, cpu)


def scraper_command(start: str, seeds: Path, output: Path, site: Site) -> list[str]:
    seeds.write_text(start + "\n")
    return [sys.executable, "-m", "scraper", str(seeds), "-O", str(output), "--depth", "1000", "-q",
            "--per-host", str(site.concurrency)]  # fmt: skip


def redis_command(start: str, seeds: Path, output: Path, site: Site, redis_url: str) -> list[str]:
    """The same crawl on the redis backend: its local workers (-w: CPUs, as the process backend's)."""
    return [*scraper_command(start, seeds, output, site), "--backend", "redis", "--redis", redis_url]


def scrapy_command(start: str, output: Path, site: Site) -> list[str]:
    return [str(SCRAPY_VENV / "bin" / "scrapy"), "runspider", str(HERE / "scrapy_spider.py"), "-a",
            f"start={start}", "-O", f"{output}:jsonlines", "-L", "WARNING",
            "-s", f"CONCURRENT_REQUESTS={site.concurrency}",
            "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={site.concurrency}"]  # fmt: skip


def install_scrapy() -> None:
    if (SCRAPY_VENV / "bin" / "scrapy").exists():
        return
    print(f"installing Scrapy {SCRAPY_VERSION} into {SCRAPY_VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(SCRAPY_VENV)], check=True)
    subprocess.run([str(SCRAPY_VENV / "bin" / "pip"), "install", "-q", f"scrapy=={SCRAPY_VERSION}"],
                   check=True)  # fmt: skip


def measure(site: Site, pairs: int, with_scrapy: bool, redis_url: str | None, work: Path) -> list[Run]:
    """`pairs` runs of each crawler, in turn; the order flips from one round to the next."""
    root = work / f"site-{site.name}"
    subprocess.run([sys.executable, str(HERE / "sites.py"), "generate", str(root), "--pages", str(site.pages),
                    "--kb", str(site.kb)], check=True)  # fmt: skip
    runs = []
    with serving(site, root, work) as start:
        for pair in range(pairs):
            seeds = work / "seeds.txt"
            commands = {"scraper": scraper_command(start, seeds, work / "scraper.jsonl", site)}
            if redis_url:
                commands["redis"] = redis_command(start, seeds, work / "redis.jsonl", site, redis_url)
            if with_scrapy:
                commands["scrapy"] = scrapy_command(start, work / "scrapy.jsonl", site)
            order = list(commands) if pair % 2 == 0 else list(reversed(commands))
            for crawler in order:
                runs.append(timed(commands[crawler], work / f"{crawler}.jsonl", crawler, site.pages))
    return runs


def median_ratio(runs: list[Run], crawler: str, reference: str) -> float:
    """Median over the rounds of crawler's pages/s over reference's."""
    ours = [run for run in runs if run.crawler == crawler]
    theirs = [run for run in runs if run.crawler == reference]
    return statistics.median(a.rate / b.rate for a, b in zip(ours, theirs, strict=True))


def report(site: Site, runs: list[Run]) -> str:
    lines = [f"site {site.name}: {site.pages} pages x {site.kb} KB, {site.delay_ms:g} ms per answer, "
             f"{site.concurrency} requests per host"]  # fmt: skip
    for crawler in ("scraper", "redis", "scrapy"):
        own = [run for run in runs if run.crawler == crawler]
        if own:
            rates = ", ".join(f"{run.rate:.0f}" for run in own)
            lines.append(f"  {crawler:8} pages/s {statistics.median(r.rate for r in own):6.0f} "
                         f"(runs: {rates}); CPU {statistics.median(r.cpu for r in own):.1f} s")  # fmt: skip
    crawlers = {run.crawler for run in runs}
    if "scrapy" in crawlers:
        ratio = median_ratio(runs, "scraper", "scrapy")
        lines.append(f"  ratio scraper/scrapy pages/s (median of rounds): {ratio:.2f}")
    if "redis" in crawlers:
        ratio = median_ratio(runs, "redis", "scraper")
        lines.append(f"  ratio redis/process backend pages/s (median of rounds): {ratio:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapy", action="store_true", help="also run Scrapy (installed on first use)")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each crawler per site (default 3)")
    parser.add_argument("--sites", default="AB", help="which sites: A, B or AB (default)")
    parser.add_argument("--redis", action="store_true",
                        help="also run the redis backend's local workers (a private redis-server)")
    args = parser.parse_args()
    if args.scrapy:
        install_scrapy()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scraper-bench-")))
        redis_url = None
        if args.redis:
            from scraper.redis_demo import private_redis

            redis_url = stack.enter_context(private_redis())
        for name in args.sites.upper():
            site = SITES[name]
            if not site.delay_ms and shutil.which("nginx") is None:
                print(f"site {name}: skipped (nginx is not on PATH)", file=sys.stderr)
                continue
            print(report(site, measure(site, args.pairs, args.scrapy, redis_url, work)), flush=True)
    print(f"({os.cpu_count()} CPUs; Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
