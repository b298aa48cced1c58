"""The command line: arguments -> CrawlConfig, a crawl, a summary, an exit status.

All mapping of errors to exit statuses happens in `main()`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import Any

from ._version import __version__
from .config import (
    BACKENDS,
    DEFAULT_MAX_BYTES,
    DEFAULT_OUTPUT,
    DEFAULT_PER_HOST,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    START_METHODS,
    CrawlConfig,
    default_workers,
)
from .crawl import Crawl
from .errors import CrawlInterrupted, ScraperError, SeedFileError, UsageError
from .seeds import parse_seeds

log = logging.getLogger("scraper")


class ExitStatus(IntEnum):
    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    SIGINT = 130  # 128 + signal number, as shells report it
    SIGTERM = 143


def entry_point() -> None:
    """The `scraper` command and `python -m scraper`."""
    # What is imported by now lives until the process ends: the garbage collector
    # need not walk it again, here or in the workers forked from here, nor in its
    # last pass at exit (about 30 ms after a crawl).
    gc.freeze()
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose - args.quiet)
    try:
        # The modules of the other modes (and tqdm) are imported only when used:
        # each costs start-up time, and a crawl must reach its first request fast.
        if args.bench_append is not None:
            from .bench import run_append_benchmark

            return run_append_benchmark(args.bench_append, args.workers or default_workers())
        if args.demo:
            from .demo import run_demo

            return run_demo(args, config_from_args(args, output_default=None), args.workers)
        if args.seeds is None:
            parser.error("the following arguments are required: SEEDS (or use --demo)")
        config = config_from_args(args)
        seeds = read_seed_file(args.seeds)
        if args.compare:
            return run_compare(config, seeds)
        return run_crawl(config, seeds, show_progress=not args.quiet, show_summary=not args.quiet)
    except UsageError as exc:
        print(f"scraper: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        return ExitStatus.SIGINT
    except ScraperError as exc:
        print(f"scraper: error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scraper",
        description="Crawl the URLs of a seed file in parallel and write one JSON record per page.",
    )
    add = parser.add_argument
    add("seeds", nargs="?", metavar="SEEDS", help="file of seed URLs, one per line ('-' for stdin)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE",
                     help=f"JSONL output, appended to (default: {DEFAULT_OUTPUT})")
    out.add_argument("-O", "--overwrite-output", metavar="FILE", help="JSONL output, truncated first")
    add("-w", "--workers", type=positive_int, metavar="N",
        help=f"fetcher processes (or threads) (default: number of CPUs, {default_workers()} here)")
    add("--backend", choices=BACKENDS, default="process", help="worker type (default: %(default)s)")
    add("--concurrency", type=positive_int, metavar="N",
        help="most requests in flight in all (process backend: fetch threads spread over the "
             "workers; default: tuned while crawling, up to 32 per worker)")
    add("--depth", type=non_negative_int, default=0, metavar="N",
        help="follow links up to N hops from a seed (default: 0, seeds only)")
    add("--max-pages", type=positive_int, metavar="N", help="stop after N pages (records)")
    add("--allow-domain", action="append", default=[], metavar="HOST",
        help="also follow links to HOST and its subdomains (repeatable)")
    add("--timeout", type=positive_float, default=DEFAULT_TIMEOUT, metavar="S",
        help="total deadline of one fetch in seconds (default: %(default)s)")
    add("--retries", type=non_negative_int, default=DEFAULT_RETRIES, metavar="N",
        help="retries on connection errors, connect timeouts, 429 and 5xx (default: %(default)s)")
    add("--delay", type=non_negative_float, default=0.0, metavar="S",
        help="minimum seconds between two requests to one host (default: 0)")
    add("--per-host", type=positive_int, default=DEFAULT_PER_HOST, metavar="N",
        help="most requests in flight to one host (default: %(default)s)")
    add("--max-bytes", type=positive_int, default=DEFAULT_MAX_BYTES, metavar="N",
        help="largest body read, decompressed (default: %(default)s)")
    add("--user-agent", default=DEFAULT_USER_AGENT, metavar="UA", help="User-Agent header")
    add("--ignore-robots", action="store_true", help="do not fetch or obey robots.txt")
    add("--select", action="append", default=[], metavar="NAME=CSS",
        help="extra field: text of the elements a CSS selector matches (repeatable)")
    add("--resume", action="store_true",
        help="continue an interrupted crawl from its output file (-o): fetch only what is missing")
    add("--start-method", choices=START_METHODS,
        help="multiprocessing start method (default: the platform's)")
    add("--compare", action="store_true",
        help="crawl SEEDS serially, on N threads and on N processes; print a table and draw a chart")
    add("--demo", action="store_true",
        help="compare the backends on a generated I/O-bound and CPU-bound site on 127.0.0.1 "
             "(no network needed)")
    add("--bench-append", type=positive_int, nargs="?", const=10_000_000, metavar="N",
        help="measure ways to append N integers (default 10 million) to one list from "
             "several processes")
    add("-q", "--quiet", action="count", default=0, help="no progress bar or summary")
    add("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    add("--version", action="version", version=f"scraper {__version__}")
    return parser


def config_from_args(args: argparse.Namespace, output_default: str | None = DEFAULT_OUTPUT) -> CrawlConfig:
    output = args.output
    if not output and not args.overwrite_output:
        output = output_default
    return CrawlConfig(
        workers=args.workers or default_workers(), backend=args.backend,
        concurrency=args.concurrency, depth=args.depth,
        max_pages=args.max_pages, allow_domain=tuple(args.allow_domain),
        timeout=args.timeout, retries=args.retries, delay=args.delay,
        per_host=args.per_host, max_bytes=args.max_bytes, user_agent=args.user_agent,
        ignore_robots=args.ignore_robots, select=tuple(args.select),
        start_method=args.start_method, output=output, overwrite_output=args.overwrite_output,
        resume=args.resume,
    )  # fmt: skip


def read_seed_file(path: str) -> list[str]:
    """Seed URLs of a file; bad lines are reported on stderr and skipped."""
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8-sig", errors="replace") as file:
                lines = file.read().splitlines()
    except OSError as exc:
        raise SeedFileError(f"cannot read seed file {path!r}: {exc.strerror or exc}") from None
    seeds, problems = parse_seeds(lines)
    for problem in problems:
        print(f"scraper: {path}: skipped {problem}", file=sys.stderr)
    if not seeds:
        raise SeedFileError(f"no valid seed URL in {path!r}")
    return seeds


def run_crawl(
    config: CrawlConfig, seeds: Sequence[str], show_progress: bool = True, show_summary: bool = True
) -> int:
    """Run one crawl with a progress bar and signal handling; the exit status."""
    crawl = Crawl(config, seeds)
    # The handlers stay installed until the crawl is closed, so that a signal
    # during shutdown cannot skip the journal's flush.
    with _stop_on_signals(crawl) as received:
        try:
            with crawl, _progress(show_progress) as bar:
                for record in crawl.run():
                    bar.update(1)
                    if record["error"]:
                        bar.set_postfix(errors=sum(crawl.stats.errors.values()), refresh=False)
        except CrawlInterrupted:
            pass  # a second signal: the crawl was closed at once
    if show_summary:
        print(crawl.stats.summary(), file=sys.stderr)
        if config.output_path:
            print(f"records written to {config.output_path}", file=sys.stderr)
    if received:
        return ExitStatus.SIGTERM if received[0] == signal.SIGTERM else ExitStatus.SIGINT
    return ExitStatus.SUCCESS


def run_compare(config: CrawlConfig, seeds: Sequence[str]) -> int:
    """Comparison mode on the user's seeds: table, explanation, chart beside the output."""
    from .compare import plot, report, run_comparison
    from .demo import CHART_HINT

    output = config.output_path or DEFAULT_OUTPUT
    n = config.workers
    print(f"comparing: serial, {n} threads, {n} processes ...", file=sys.stderr)
    results = run_comparison(config, seeds, output)
    print(report(results, f"{len(seeds)} seed(s), depth {config.depth}"))
    chart = plot([("crawl", results)], os.path.splitext(output)[0] + ".compare.png")
    print(f"chart: {chart}" if chart else CHART_HINT)
    return ExitStatus.SUCCESS


@contextlib.contextmanager
def _stop_on_signals(crawl: Crawl) -> Iterator[list[int]]:
    """First SIGINT/SIGTERM: stop scheduling and finish in-flight pages. Second: stop now."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) == 2:
            raise CrawlInterrupted(signum)
        if len(received) == 1:
            log.warning("stopping: finishing the pages in flight (press Ctrl-C again to quit now)")
            crawl.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _progress(enabled: bool) -> Any:
    if not (enabled and sys.stderr.isatty()):
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(unit=" pages", file=sys.stderr, dynamic_ncols=True, leave=False)


class _NoProgress:
    """The progress bar when there is no terminal to draw it on."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass


def _setup_logging(level: int) -> None:
    levels = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}
    logging.basicConfig(
        level=levels.get(max(-1, min(level, 2)), logging.DEBUG),
        format="scraper: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )


def positive_int(text: str) -> int:
    return _number(text, int, lambda n: n >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda n: n >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda n: n > 0, "a number > 0")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda n: n >= 0, "a number >= 0")


def _number(text: str, kind: type, valid: Any, expected: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not valid(value) or value != value or value in (float("inf"),):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
