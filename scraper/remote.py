"""`scraper worker` and `scraper status`: the commands of the redis backend (SPEC 8).

`scraper worker` runs worker processes (backends/redis_worker.py) until the
crawl ends, and exits 130/143 after Ctrl-C/SIGTERM once each has given back
what it had not begun; `scraper status` is the operator's view of each crawl.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from .backends.redis_worker import check_runnable, parent_alive, serve, wait_for_crawl
from .backends.streams import Keys, connect, masked, redis_url
from .callbacks import resolve_callback
from .errors import UsageError
from .options import UsageParser

log = logging.getLogger("scraper")


# -- the commands ---------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    """`scraper worker ...` and `scraper status ...`; the exit status."""
    command, args = argv[0], build_parser(argv[0]).parse_args(argv[1:])
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="scraper: %(levelname)s: %(message)s", stream=sys.stderr)  # fmt: skip
    try:
        url = redis_url(args.url or args.redis)
        return run_worker(url, args) if command == "worker" else print_status(url, args.crawl_id)
    except UsageError as exc:
        print(f"scraper {command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `scraper status | head -1`
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of standard output went away: end quietly with 141, as the crawl
    command does (cli.py); stdout goes to /dev/null, or the flush at exit fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = UsageParser(prog=f"scraper {command}", description=(
        "take part in a distributed crawl (scraper SEEDS --backend redis): fetch and parse the "
        "coordinator's tasks, on as many machines as reach its Redis"
        if command == "worker" else "show each crawl on this Redis: state, pages, workers"))  # fmt: skip
    add = parser.add_argument
    add("url", nargs="?", metavar="URL", help="Redis URL (default: $SCRAPER_REDIS_URL)")
    add("--redis", metavar="URL", help="the same URL, named as the coordinator names it")
    add("--crawl-id", default=None if command == "status" else "default", metavar="ID",
        help="the crawl's name (default: every crawl for status, 'default' for worker)")
    add("-v", "--verbose", action="store_true", help="more logging on stderr")
    if command == "worker":
        add("-w", "--workers", type=int, default=os.cpu_count() or 1, metavar="N",
            help="worker processes on this machine (default: number of CPUs)")
        add("--concurrency", type=int, default=None, metavar="N",
            help="fetch threads per worker process (default: the coordinator's)")
        add("--forever", action="store_true", help="after a crawl ends, wait for the next one")
        add("--parse", metavar="MODULE:FUNCTION",
            help="the parse callback this worker expects: it must import here and be the crawl's "
                 "(the coordinator names it; without --parse the crawl's is checked all the same)")
    return parser


def run_worker(url: str, args: argparse.Namespace) -> int:
    """Worker processes until the crawl ends; 130/143 after SIGINT/SIGTERM."""
    if args.workers < 1 or (args.concurrency is not None and args.concurrency < 1):
        raise UsageError("-w and --concurrency must be at least 1")
    connect(url)  # a bad URL or password: one line, exit 2, before any process starts
    if "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # --parse modules of the current folder, as the coordinator's
    if args.parse is not None:
        try:
            resolve_callback(args.parse)
        except ValueError as exc:
            raise UsageError(f"--parse {args.parse}: {exc}") from None
    received: list[int] = []
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    if args.workers == 1:
        serve(url, args.crawl_id, args.concurrency, args.forever, stop, args.parse)
    else:
        _run_processes(url, args, stop)
    if received:
        return 143 if received[0] == signal.SIGTERM else 130
    return 0


def _run_processes(url: str, args: argparse.Namespace, stop: threading.Event) -> None:
    """`-w N` processes that stand or fall together: this one waits for the crawl and
    checks it can run its tasks first (so each message is said once, not N times);
    a child refused later (a new crawl, --forever) ends them all with its one line."""
    client, keys = connect(url), Keys(args.crawl_id)
    spec = wait_for_crawl(client, keys, url, stop)
    if spec is None:
        return
    check_runnable(spec, args.crawl_id, args.parse)
    print(f"scraper worker: {args.workers} processes join crawl {args.crawl_id!r}", file=sys.stderr,
          flush=True)  # fmt: skip
    context = multiprocessing.get_context("spawn")
    refusals = context.SimpleQueue()
    child_args = (url, args.crawl_id, args.concurrency, args.forever, args.parse, refusals)
    processes = [context.Process(target=_serve_child, args=child_args) for _ in range(args.workers)]
    for process in processes:
        process.start()
    while any(p.is_alive() for p in processes):
        refused = any(p.exitcode == 2 for p in processes)
        if stop.wait(0.1) or refused:
            for process in processes:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)
            break
    for process in processes:
        process.join()
    if not refusals.empty():
        raise UsageError(refusals.get())


def _serve_child(
    url: str, crawl_id: str, concurrency: int | None, forever: bool, parse: str | None, refusals: Any
) -> None:  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent relays a Ctrl-C as SIGTERM
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    watcher = threading.Thread(target=_stop_with_parent, args=(stop,), daemon=True)
    watcher.start()
    try:
        serve(url, crawl_id, concurrency, forever, stop, parse, say=False)
    except UsageError as exc:  # the parent says it, once
        refusals.put(str(exc))
        sys.exit(2)


def _stop_with_parent(stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if not parent_alive():
            stop.set()


def print_status(url: str, crawl_id: str | None) -> int:
    """One block per crawl: state, pages done, in flight, queued, pages/s, then its workers."""
    client = connect(url)
    ids = [crawl_id] if crawl_id else sorted(
        key.decode().split(":")[1] for key in client.scan_iter(match="scraper:*:state"))  # fmt: skip
    if not ids:
        print(f"no crawl at {masked(url)}")
    for name in ids:
        print("\n".join(status_lines(client, Keys(name))))
    return 0


def status_lines(client: Any, keys: Keys) -> list[str]:
    state = (client.get(keys.state) or b"unknown").decode()
    if state == "running" and not client.exists(keys.lock):  # its keys expire STATE_TTL after it
        state = "running, coordinator gone (--resume continues it)"
    stats = {k.decode(): v.decode() for k, v in client.hgetall(keys.stats).items()}
    done = int(stats.get("done", 0))
    started = float(stats.get("started_at", 0) or 0)
    rate = done / max(time.time() - started, 1e-6) if started and state == "running" else 0.0
    in_flight = queued = 0
    if client.exists(keys.tasks):
        groups = client.xinfo_groups(keys.tasks)
        for group in groups:
            in_flight = int(group.get("pending", 0))
            queued = int(group.get("lag") or 0)
    lines = [f"crawl {keys.crawl_id}: {state}, pages done {done}, in flight {in_flight}, queued {queued}, "
             f"{rate:.1f} pages/s (coordinator {stats.get('coordinator', '?')})"]  # fmt: skip
    for member in sorted(client.smembers(keys.workers)):
        raw = client.get(keys.worker(member.decode()))
        if raw is None:
            continue
        beat = json.loads(raw)
        seen = max(0.0, time.time() - float(beat.get("seen", 0)))
        lines.append(f"  worker {beat['host']} pid {beat['pid']}: threads {beat['threads']}, "
                     f"pages {beat['pages']}, last seen {seen:.1f} s ago")  # fmt: skip
    return lines
