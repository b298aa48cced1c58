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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, Field, fields
from enum import IntEnum
from typing import Any

from ._version import __version__
from .config import DEFAULT_OUTPUT, OPTIONS, CrawlConfig, default_workers
from .crawl import Crawl
from .errors import CrawlInterrupted, ScraperError, SeedFileError, UsageError
from .options import OPTION, POSITIVE_INT, Option, SettingError
from .seeds import parse_seeds

log = logging.getLogger("scraper")

# -o and -O: one output, appended to or truncated first (SPEC 3)
EXCLUSIVE_OUTPUTS = ("output", "overwrite_output")

EPILOG = """\
examples:
  scraper seeds.txt --depth 2 -o data/site.jsonl
  scraper seeds.txt -O pages.jsonl --select 'heading=h1' --select 'price=span.price'
  scraper seeds.txt --backend thread -w 16 --parse mymodule:extract
  scraper --demo

exit status:
  0    the crawl completed (pages that failed are records with an error)
  1    the crawl failed (e.g. the output could not be written)
  2    usage error: bad option value, unreadable seed file, no valid seed
  130  interrupted (Ctrl-C, SIGINT)
  143  terminated (SIGTERM)
"""


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
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["worker"], ["status"]):  # the redis backend's commands (SPEC 8)
        from .remote import main as remote_main

        return remote_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_contradictions(parser, args)
    _setup_logging(args.verbose - args.quiet)
    try:
        return run(parser, args)
    except UsageError as exc:
        print(f"scraper: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except KeyboardInterrupt:
        return ExitStatus.SIGINT
    except ScraperError as exc:
        print(f"scraper: error: {exc}", file=sys.stderr)
        return ExitStatus.ERROR


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The mode the arguments ask for; the exit status."""
    # The modules of the other modes (and tqdm) are imported only when used:
    # each costs start-up time, and a crawl must reach its first request fast.
    if args.bench_append is not None:
        from .bench import run_append_benchmark

        return run_append_benchmark(args.bench_append, args.workers or default_workers())
    if args.demo:
        from .demo import run_demo

        demo_config = checked_config(parser, args, output_default=None)
        if demo_config.backend == "redis":  # a coordinator and two workers over a private Redis
            from .redis_demo import run_redis_demo

            return run_redis_demo(demo_config)
        return run_demo(args, demo_config, args.workers)
    if args.seeds is None:
        parser.error("the following arguments are required: SEEDS (or use --demo)")
    config = checked_config(parser, args)
    seeds = read_seed_file(args.seeds)
    if args.compare:
        return run_compare(config, seeds)
    return run_crawl(config, seeds, show_progress=not args.quiet, show_summary=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    """The command line: one option per CrawlConfig field (declared there), then the modes."""
    parser = argparse.ArgumentParser(
        prog="scraper",
        description="Crawl the URLs of a seed file in parallel and write one JSON record per page.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("seeds", nargs="?", metavar="SEEDS", help="file of seed URLs, one per line ('-' for stdin)")
    outputs = parser.add_mutually_exclusive_group()
    for setting in fields(CrawlConfig):
        add_option(outputs if setting.name in EXCLUSIVE_OUTPUTS else parser, setting)
    add("--compare", action="store_true",
        help="crawl SEEDS serially, on N threads and on N processes; print a table and draw a chart")
    add("--demo", action="store_true",
        help="compare the backends on a generated I/O-bound and CPU-bound site on 127.0.0.1 "
             "(no network needed; no SEEDS)")
    add("--bench-append", type=positive_int, nargs="?", const=10_000_000, metavar="N",
        help="measure ways to append N integers (default 10 million) to one list from "
             "several processes")
    add("-q", "--quiet", action="count", default=0, help="no progress bar or summary")
    add("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    add("--version", action="version", version=f"scraper {__version__}")
    return parser


def add_option(parser: Any, setting: Field[Any]) -> None:
    """The argparse argument of one CrawlConfig field, as its option and kind describe it."""
    spec: Option = setting.metadata[OPTION]
    if spec.kind.action == "store_true":
        parser.add_argument(*spec.flags, dest=setting.name, action="store_true", help=spec.help)
        return
    # None where the default is computed when the config is made (-w: the number of CPUs)
    default = None if setting.default is MISSING else setting.default
    if spec.kind.action == "append":
        default = []  # argparse appends to a copy
    parser.add_argument(*spec.flags, dest=setting.name, action=spec.kind.action, type=spec.kind.read,
                        choices=spec.kind.choices, default=default, metavar=spec.metavar,
                        help=spec.help)  # fmt: skip


def config_from_args(args: argparse.Namespace, output_default: str | None = DEFAULT_OUTPUT) -> CrawlConfig:
    """The CrawlConfig of the arguments; what was not given keeps its default."""
    values: dict[str, Any] = {}
    for name in OPTIONS:
        value = getattr(args, name)
        if value is not None:
            values[name] = tuple(value) if isinstance(value, list) else value
    if args.output is None and args.overwrite_output is None:
        values["output"] = output_default
    return CrawlConfig(**values)


def checked_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, output_default: str | None = DEFAULT_OUTPUT
) -> CrawlConfig:
    """config_from_args(), a bad value reported by its option (`--user-agent must not be empty`)."""
    if args.parse:
        _import_from_current_folder()
    try:
        return config_from_args(args, output_default)
    except SettingError as exc:
        parser.error(exc.worded(lambda name: OPTIONS[name].name))


# Options that contradict each other (issue 14): (given together?, why not).
CONTRADICTIONS: tuple[tuple[Callable[[argparse.Namespace], bool], str], ...] = (
    (lambda a: a.demo and a.seeds is not None, "--demo crawls a site of its own: give it no SEEDS"),
    (lambda a: a.demo and a.compare, "--demo already compares the backends: give --demo or --compare"),
    (lambda a: a.resume and (a.compare or a.demo),
     "--resume continues one crawl: --compare and --demo run new ones"),
)


def refuse_contradictions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 with one line if two options given together contradict each other."""
    for given, problem in CONTRADICTIONS:
        if given(args):
            parser.error(problem)


def _import_from_current_folder() -> None:
    # `python -m scraper` puts the current folder first on sys.path; the
    # `scraper` command does not. Appended, so that it shadows no library.
    # Spawned workers inherit sys.path.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


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
    print(report(results, f"{len(seeds)} seed{'' if len(seeds) == 1 else 's'}, depth {config.depth}"))
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
    """argparse's type of --bench-append (not a crawl setting, so not in the table)."""
    try:
        return int(POSITIVE_INT.check(POSITIVE_INT.read(text)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
