"""Comparison mode: the same crawl serially, on N threads and on N processes.

It measures wall and CPU time, checks that every run got the same pages,
prints a table, explains the result in a sentence or two, and draws a chart
(when matplotlib is installed: the `plot` extra, or `pip install matplotlib`).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import CrawlConfig
from .crawl import Crawl
from .interrupts import Interrupts
from .stats import CrawlStats, plural


@dataclass
class RunResult:
    label: str
    backend: str
    workers: int
    pages: int = 0
    ok: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # seconds of CPU of every process of the run
    fetch_ms: float = 0.0  # mean per page
    parse_ms: float = 0.0  # mean per page
    speedup: float = 1.0  # pages/s over the serial run's
    urls: set[str] = field(default_factory=set, repr=False)
    cause: str | None = None  # why nothing was crawled, when nothing was

    @property
    def rate(self) -> float:
        return self.pages / self.wall if self.wall > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.pages - self.ok


# A comparison concludes nothing from runs where more than this share of the
# pages failed (a failed page costs a timeout or nothing: neither is the work
# being compared; a stray 404 is fine), nor from a serial run shorter than
# MIN_SERIAL_SECONDS or with fewer than MIN_PAGES_PER_WORKER pages per worker,
# where starting the workers costs more than the crawl.
MAX_ERROR_SHARE = 0.1
MIN_SERIAL_SECONDS = 1.0
MIN_PAGES_PER_WORKER = 4


def plan_runs(config: CrawlConfig) -> list[tuple[str, CrawlConfig]]:
    """Serial (one thread), N threads, N processes: otherwise the same crawl."""
    n = config.workers
    plural = "s" if n > 1 else ""
    # One fetch thread per process: the comparison is threads against processes.
    return [
        ("serial", config.replace(backend="thread", workers=1)),
        (f"{n} thread{plural}", config.replace(backend="thread")),
        (f"{n} process{'es' if plural else ''}", config.replace(backend="process", concurrency=n)),
    ]


def run_comparison(
    config: CrawlConfig, seeds: Sequence[str], output: str, interrupts: Interrupts | None = None
) -> list[RunResult]:
    """Run every plan on a fresh output beside `output`; the results, speed-ups set.
    After a Ctrl-C (`interrupts`), the run under way stops and no other starts."""
    interrupts = interrupts or Interrupts()
    stem = os.path.splitext(output)[0]
    results: list[RunResult] = []
    for label, run_config in plan_runs(config):
        if interrupts.received:
            break
        path = f"{stem}.{('serial', 'threads', 'processes')[len(results)]}.jsonl"
        run_config = run_config.replace(output=None, overwrite_output=path, resume=False)
        results.append(measure(label, run_config, seeds, interrupts))
    serial_rate = results[0].rate if results else 0.0
    for result in results:
        result.speedup = result.rate / serial_rate if serial_rate else 0.0
    return results


def measure(
    label: str, config: CrawlConfig, seeds: Sequence[str], interrupts: Interrupts | None = None
) -> RunResult:
    """One crawl, timed: wall clock, CPU of this process and of its (joined) workers."""
    result = RunResult(label, config.backend, config.workers)
    fetch = parse = 0.0
    cpu_before, started = cpu_seconds(), time.perf_counter()
    crawl = Crawl(config, seeds)  # not iter_crawl(): the stats say why nothing was crawled
    with (interrupts or Interrupts()).running(crawl), crawl:
        for record in crawl.run():
            result.pages += 1
            result.ok += record["ok"]
            result.urls.add(record["url"])
            fetch += record["elapsed_ms"]
            parse += record["parse_ms"]
    result.wall = time.perf_counter() - started
    if not result.pages:
        result.cause = nothing_crawled_because(crawl.stats)
    result.cpu = cpu_seconds() - cpu_before  # the workers were joined: their CPU is counted
    if result.pages:
        result.fetch_ms, result.parse_ms = fetch / result.pages, parse / result.pages
    return result


def nothing_crawled_because(stats: CrawlStats) -> str:
    """Why a crawl gave no record: the most common error (robots.txt that did not
    answer is one), else what kept its pages from being scheduled."""
    if stats.details:
        return min(stats.details.items(), key=lambda item: (-item[1], item[0]))[0]
    if stats.skipped:
        skips = ", ".join(f"{why} {n}" for why, n in stats.skipped.most_common())
        return f"no page was scheduled ({skips})"
    return "no page was scheduled"


def cpu_seconds() -> float:
    """User + system CPU of this process and of every child it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


HEADER = ("run", "backend", "workers", "pages", "ok", "errors", "wall s", "pages/s", "CPU s",
          "fetch ms", "parse ms", "speed-up")  # fmt: skip


def format_table(results: Sequence[RunResult]) -> str:
    rows = [HEADER] + [
        (r.label, r.backend, str(r.workers), str(r.pages), str(r.ok), str(r.errors),
         f"{r.wall:.2f}", f"{r.rate:.1f}",
         f"{r.cpu:.2f}", f"{r.fetch_ms:.1f}", f"{r.parse_ms:.1f}", f"{r.speedup:.2f}x")
        for r in results
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w)
                       in enumerate(zip(row, widths, strict=True))) for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def same_pages(results: Sequence[RunResult]) -> str:
    """One sentence: did every run fetch the same set of pages?"""
    first = results[0].urls
    differing = [r.label for r in results[1:] if r.urls != first]
    if not differing:
        return f"Every run fetched the same {len(first)} pages."
    return (f"WARNING: the runs fetched different pages ({', '.join(differing)} differ from "
            f"{results[0].label}); the site may have changed between runs.")  # fmt: skip


def explain(results: Sequence[RunResult], cores: int | None = None) -> str:
    """A plain-language reading of the figures."""
    serial, threads, processes = results[0], results[1], results[2]
    cores = cores or os.cpu_count() or 1
    busy = serial.fetch_ms + serial.parse_ms
    parse_share = serial.parse_ms / busy if busy else 0.0
    if parse_share >= 0.4:
        why = (f"Parsing took {parse_share:.0%} of each page's time in the serial run, and Python "
               f"holds the GIL for most of it (lxml releases it only while building the tree), "
               f"so {threads.label} reached {threads.speedup:.1f}x")  # fmt: skip
        if processes.speedup > threads.speedup * 1.1:
            why += (f", while {processes.label} parse on {min(cores, processes.workers)} cores "
                    f"at once and reached {processes.speedup:.1f}x.")  # fmt: skip
        else:
            why += (f", and {processes.label} did no better ({processes.speedup:.1f}x): something "
                    f"else, such as the server or this machine's other load, is the limit.")  # fmt: skip
    else:
        why = (f"Pages spent {1 - parse_share:.0%} of their time waiting for the server, and a "
               f"thread waiting on a socket releases the GIL: {threads.label} reached "
               f"{threads.speedup:.1f}x and {processes.label} {processes.speedup:.1f}x, "
               f"so threads are enough here.")  # fmt: skip
    cpu = (f" CPU time of all processes: {serial.cpu:.1f} s serial, {threads.cpu:.1f} s on "
           f"threads, {processes.cpu:.1f} s on processes.")
    return why + cpu


def why_no_conclusion(results: Sequence[RunResult]) -> str | None:
    """Why these figures support no conclusion (nothing crawled, failed runs, too little work), or None."""
    empty = [r for r in results if not r.pages]
    if empty:
        causes = {r.cause or "no page was scheduled" for r in empty}
        if len(empty) == len(results) and len(causes) == 1:
            because = f"in any run: {causes.pop()}"
        else:
            because = "(" + "; ".join(f"{r.label}: {r.cause or 'no page was scheduled'}" for r in empty) + ")"
        return f"No conclusion: nothing was crawled {because}. Fix that first, then compare again."
    failed = [r for r in results if r.errors > MAX_ERROR_SHARE * r.pages or not r.ok]
    if failed:
        runs = "; ".join(f"{r.label}: {r.errors} of {r.pages} pages failed" for r in failed)
        return (f"No conclusion: pages failed ({runs}). A failed page costs a timeout or nothing, "
                "not the work being compared; see the records' `error` and fix what fails first.")
    serial, workers = results[0], max(r.workers for r in results)
    if serial.wall < MIN_SERIAL_SECONDS or serial.pages < MIN_PAGES_PER_WORKER * workers:
        return (f"No conclusion: too little work ({plural(serial.pages, 'page')}, {serial.wall:.2f} s "
                "serially); "
                f"starting {workers} workers costs about as much. Give more pages (more seeds, "
                f"--depth) so that the serial run takes {MIN_SERIAL_SECONDS:g} s or more.")
    return None


def report(results: Sequence[RunResult], title: str) -> str:
    """The table, then either a reading of it or why there is none."""
    reason = why_no_conclusion(results)
    if reason is not None and ("failed" in reason or "nothing was crawled" in reason):
        return "\n".join([title, "", format_table(results), "", reason])
    reading = reason or explain(results)
    return "\n".join([title, "", format_table(results), "", same_pages(results), reading])


def plot(sections: Sequence[tuple[str, Sequence[RunResult]]], path: str) -> str | None:
    """Speed-up and fetch/parse time per run, one row per section; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(len(sections), 2, figsize=(11, 3.6 * len(sections)), squeeze=False)
    for (title, results), (left, right) in zip(sections, axes, strict=True):
        labels = [f"{r.label}\n{r.ok} ok, {r.errors} failed" for r in results]
        colours = ["#888888", "#4c72b0", "#dd8452"][: len(results)]
        bars = left.bar(labels, [r.speedup for r in results], color=colours)
        left.bar_label(bars, fmt="%.1fx")
        left.set_ylim(0, max([r.speedup for r in results] + [1.0]) * 1.18)  # 1.0: a run with no pages
        left.set_title(f"{title}: speed-up over serial")
        left.set_ylabel("pages/s relative to serial")
        right.bar(labels, [r.fetch_ms for r in results], label="fetch (wall ms)", color="#55a868")
        right.bar(labels, [r.parse_ms for r in results], bottom=[r.fetch_ms for r in results],
                  label="parse (CPU ms)", color="#c44e52")  # fmt: skip
        right.set_title(f"{title}: where a page's time went")
        right.set_ylabel("mean ms per page")
        right.legend()
    figure.suptitle(f"serial vs threads vs processes on {os.cpu_count()} CPU cores", fontsize=11)
    figure.tight_layout()
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
