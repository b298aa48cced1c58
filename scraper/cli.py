"""The command line: arguments -> CrawlConfig, a crawl, a summary, an exit status.

All mapping of errors to exit statuses happens in `main()`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, Field, fields
from enum import IntEnum
from typing import Any

from ._version import __version__
from .backends import BACKENDS, BackendOption, command_entry, load
from .config import DEFAULT_OUTPUT, OPTIONS, CrawlConfig, default_workers, option_named
from .crawl import Crawl
from .errors import CrawlInterrupted, ScraperError, SeedFileError, UsageError, configure_logging
from .interrupts import stop_on_signals
from .journal import STDOUT, OutputError
from .options import OPTION, POSITIVE_INT, Option, SettingError, UsageParser
from .seeds import parse_seeds, problem_lines, seed_lines

log = logging.getLogger("scraper")

# -o and -O: one output, appended to or emptied once the crawl has started (SPEC 3)
EXCLUSIVE_OUTPUTS = ("output", "overwrite_output")

EPILOG = """\
examples:
  scraper seeds.txt --depth 2 -o data/site.jsonl
  scraper seeds.txt --depth 1 --max-pages 100 -o - | jq -r .title
  scraper seeds.txt -O pages.jsonl --select 'heading=h1' --select 'price=span.price'
  scraper seeds.txt --backend thread -w 16 --parse mymodule:extract
  scraper --demo

exit status:
  0    the crawl completed (pages that failed are records with an error)
  1    the crawl failed (e.g. the output could not be written: disk full)
  2    usage error (one line): bad or unknown option, options that do nothing together,
       unreadable seed file, no valid seed
  130  interrupted (Ctrl-C, SIGINT)
  141  the reader of -o - closed the pipe early (e.g. | head)
  143  terminated (SIGTERM)
"""


class ExitStatus(IntEnum):
    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    SIGINT = 130  # 128 + signal number, as shells report it
    SIGPIPE = 141  # the reader of -o - went away (`| head`), as for cat or wget
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
    entry = command_entry(argv[0]) if argv else None
    if entry is not None and entry.command_main:  # a backend's own command (`scraper worker`)
        exit_status: int = load(entry.command_main)(argv)
        return exit_status
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = given_options(argv)
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
        if demo_config.entry.demo:  # the backend's own (redis: a coordinator and two workers)
            backend_demo: int = load(demo_config.entry.demo)(demo_config)
            return backend_demo
        return run_demo(args, demo_config, args.workers)
    if args.seeds is None:
        parser.error("the following arguments are required: SEEDS (or use --demo)")
    config = checked_config(parser, args)
    refuse_seed_output(parser, args.seeds, config.output_path)
    seeds = read_seed_file(args.seeds)
    if args.compare:
        return run_compare(config, seeds)
    return run_crawl(config, seeds, show_progress=not args.quiet, show_summary=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    """The command line: one option per CrawlConfig field (declared there), then the modes."""
    parser = UsageParser(
        prog="scraper",
        description="Crawl the URLs of a seed file in parallel and write one JSON record per page.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("seeds", nargs="?", metavar="SEEDS", help="file of seed URLs, one per line ('-' for stdin)")
    outputs = parser.add_mutually_exclusive_group()
    for setting in fields(CrawlConfig):
        if setting.name in OPTIONS:
            add_option(outputs if setting.name in EXCLUSIVE_OUTPUTS else parser, setting)
    for backend, entry in BACKENDS.items():
        if entry.options:
            group = parser.add_argument_group(f"options of --backend {backend}")
            for name, own in entry.options.items():
                add_backend_option(group, backend, name, own)
    add("--compare", action="store_true",
        help="crawl SEEDS serially, on N threads and on N processes; print a table and draw a chart")
    add("--demo", action="store_true",
        help="compare the backends on a generated I/O-bound and CPU-bound site on 127.0.0.1 "
             "(no network needed; no SEEDS)")
    add("--bench-append", type=positive_int, nargs="?", const=10_000_000, metavar="N",
        help="measure ways to append N integers (default 10 million) to one list from "
             "several processes")
    add("-q", "--quiet", action="count", default=0, help="no progress bar or summary")
    add("-v", "--verbose", action="count", default=0,
        help="a line per failed page, retry, robots.txt skip and slow-down on stderr; -vv: debug")
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


def add_backend_option(parser: Any, backend: str, name: str, own: BackendOption) -> None:
    """The argparse argument of a backend's own setting (kept apart by its backend's name)."""
    spec = own.option
    parser.add_argument(*spec.flags, dest=backend_dest(backend, name), type=spec.kind.read,
                        metavar=spec.metavar, help=spec.help)  # fmt: skip


def backend_dest(backend: str, name: str) -> str:
    return f"{backend}:{name}"


def config_from_args(args: argparse.Namespace, output_default: str | None = DEFAULT_OUTPUT) -> CrawlConfig:
    """The CrawlConfig of the arguments; what was not given keeps its default."""
    values: dict[str, Any] = {}
    for name in OPTIONS:
        value = getattr(args, name)
        if value is not None:
            values[name] = tuple(value) if isinstance(value, list) else value
    if args.output is None and args.overwrite_output is None:
        values["output"] = output_default
    for name in BACKENDS[args.backend].options:
        value = getattr(args, backend_dest(args.backend, name))
        if value is not None:
            values[name] = value
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
        parser.error(exc.worded(lambda name: option_named(name).name))


# Options that contradict each other (issue 14): (given together?, why not).
CONTRADICTIONS: tuple[tuple[Callable[[argparse.Namespace], bool], str], ...] = (
    (lambda a: a.demo and a.seeds is not None, "--demo crawls a site of its own: give it no SEEDS"),
    (lambda a: a.demo and a.compare, "--demo already compares the backends: give --demo or --compare"),
    (lambda a: a.resume and (a.compare or a.demo),
     "--resume continues one crawl: --compare and --demo run new ones"),
    (lambda a: (a.compare or a.demo) and "-" in (a.output, a.overwrite_output),
     "--compare and --demo write one output per run beside -o FILE: give them a file, not -"),
    # Options that would do nothing together (issue 22): refused rather than ignored.
    (lambda a: a.compare and BACKENDS[a.backend].remote_workers,
     "--compare runs serial, thread and process crawls on this machine: it takes no --backend {backend}"),
    (lambda a: bool(foreign_options(a)), "{foreign}, not of --backend {backend}"),
    (lambda a: a.quiet and a.verbose, "-q/--quiet and -v/--verbose ask for opposite things: give one"),
    (lambda a: a.start_method is not None and not BACKENDS[a.backend].processes and not (a.compare or a.demo),
     "--start-method starts worker processes: --backend {backend} has none"),
)


def foreign_options(args: argparse.Namespace) -> str:
    """The options given of backends other than the chosen one, and whose they are
    ("--crawl-id is an option of --backend B"); "" if none. Given means on the command
    line, even with its default value (`--crawl-id default`)."""
    said = []
    for backend, entry in BACKENDS.items():
        flags = [flag for own in entry.options.values() for flag in own.option.flags if flag in args.given]
        if flags and backend != args.backend:
            verb = "is an option" if len(flags) == 1 else "are options"
            said.append(f"{' and '.join(flags)} {verb} of --backend {backend}")
    return "; ".join(said)


def given_options(argv: Sequence[str]) -> set[str]:
    """The long options on the command line, given or not their default value
    (`--crawl-id default` is an option of one backend, whatever its value).
    Exact names: abbreviations are refused by the parser."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return {token.partition("=")[0] for token in options if token.startswith("--")}


def refuse_contradictions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 with one line if two options given together contradict each other."""
    for given, problem in CONTRADICTIONS:
        if given(args):
            parser.error(problem.format(backend=args.backend, foreign=foreign_options(args)))


def _import_from_current_folder() -> None:
    # `python -m scraper` puts the current folder first on sys.path; the
    # `scraper` command does not. Appended, so that it shadows no library.
    # Spawned workers inherit sys.path.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def read_seed_file(path: str) -> list[str]:
    """Seed URLs of a file; the first few bad lines are reported on stderr and skipped."""
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as exc:
        raise SeedFileError(f"cannot read seed file {path!r}: {exc.strerror or exc}") from None
    seeds, problems = parse_seeds(seed_lines(data, name))
    for line in problem_lines(problems, name):
        print(f"scraper: {line}", file=sys.stderr)
    if not seeds:
        raise SeedFileError(f"no valid seed URL in {name}")
    return seeds


def refuse_seed_output(parser: argparse.ArgumentParser, seeds: str, output: str | None) -> None:
    """Exit 2 if the output is the seed file itself (it would be appended to or destroyed)."""
    if not output or seeds == "-" or output == STDOUT:
        return
    with contextlib.suppress(OSError):
        if os.path.samefile(seeds, output):
            parser.error(f"the output {output!r} is the seed file: give another -o/-O")


def run_crawl(
    config: CrawlConfig, seeds: Sequence[str], show_progress: bool = True, show_summary: bool = True
) -> int:
    """Run one crawl with a progress bar and signal handling; the exit status."""
    crawl = Crawl(config, seeds)
    failure: OutputError | None = None
    # The handlers stay installed until the crawl is closed, so that a signal
    # during shutdown cannot skip the journal's flush.
    with stop_on_signals() as interrupts, interrupts.running(crawl):
        try:
            with crawl, _progress(show_progress, expected_pages(config, seeds)) as bar:
                errors = 0  # of the records drawn (the stats run ahead by a batch)
                for record in crawl.run():
                    if record["error"]:  # first, so that the count is drawn with this page
                        errors += 1
                        bar.set_postfix(errors=errors, refresh=False)
                    bar.update(1)
        except CrawlInterrupted:
            pass  # a second signal: the crawl was closed at once
        except OutputError as exc:
            failure = exc
    if failure is not None and failure.closed_pipe:
        return _reader_gone()
    if failure is not None:
        print(f"scraper: error: {failure}", file=sys.stderr)
    if show_summary:
        print(crawl.stats.summary(), file=sys.stderr)
        if crawl.stats.pages and config.output_path not in (None, STDOUT) and failure is None:
            print(f"records written to {config.output_path}", file=sys.stderr)
    if failure is not None:
        return ExitStatus.ERROR
    return interrupts.exit_status or ExitStatus.SUCCESS


def _reader_gone() -> int:
    """The reader of standard output closed it (`| head`): end quietly, as a
    Unix filter that SIGPIPE ends does (status 141, no message)."""
    # Anything still buffered for stdout would fail again at exit (CPython's
    # "Note on SIGPIPE"): stdout goes to /dev/null from here on.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return ExitStatus.SIGPIPE


def expected_pages(config: CrawlConfig, seeds: Sequence[str]) -> int | None:
    """The pages the crawl will record, when known before it starts (for the bar's total)."""
    if config.depth == 0:
        return min(len(seeds), config.max_pages or len(seeds))
    return config.max_pages


def run_compare(config: CrawlConfig, seeds: Sequence[str]) -> int:
    """Comparison mode on the user's seeds: table, explanation, chart beside the output."""
    from .compare import plot, report, run_comparison
    from .demo import CHART_HINT

    output = config.output_path or DEFAULT_OUTPUT
    n = config.workers
    print(f"comparing: serial, {n} threads, {n} processes ...", file=sys.stderr)
    results = []
    # A second signal closes the run under way at once.
    with stop_on_signals() as interrupts, contextlib.suppress(CrawlInterrupted):
        results = run_comparison(config, seeds, output, interrupts)
    if interrupts.exit_status is not None:
        return interrupts.exit_status  # no table of runs cut short
    print(report(results, f"{len(seeds)} seed{'' if len(seeds) == 1 else 's'}, depth {config.depth}"))
    chart = plot([("crawl", results)], os.path.splitext(output)[0] + ".compare.png")
    print(f"chart: {chart}" if chart else CHART_HINT)
    return ExitStatus.SUCCESS


@contextlib.contextmanager
def _progress(enabled: bool, total: int | None) -> Iterator[Any]:
    """A progress bar on a terminal (with a total and an ETA when `total` is known);
    log lines are printed above it, never on its line."""
    if not (enabled and sys.stderr.isatty()):
        yield _NoProgress()
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, unit=" pages", file=sys.stderr, dynamic_ncols=True, leave=False) as bar, \
            logging_redirect_tqdm():  # fmt: skip
        yield bar


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
    """-q: errors only; default: warnings; -v: a line per failed page, retry, robots.txt
    skip and slow-down; -vv: debug."""
    levels = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}
    configure_logging(levels.get(max(-1, min(level, 2)), logging.DEBUG))


def positive_int(text: str) -> int:
    """argparse's type of --bench-append (not a crawl setting, so not in the table)."""
    try:
        return int(POSITIVE_INT.check(POSITIVE_INT.read(text)))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
