"""Comparison mode (SPEC section 6): run_comparison, the table, the explanation,
the chart, `--compare` and `--bench-append` on the command line, and the demo's
server process. Everything stays on 127.0.0.1; no test asserts which backend is
faster, only what each run reports and writes.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import _stat, children_of, read_jsonl

from scraper import CrawlConfig
from scraper.compare import RunResult, explain, format_table, plot, report, run_comparison, same_pages
from scraper.demo import ROBOTS_TXT, serve_in_process

pytestmark = pytest.mark.timeout(90)

WORKERS = 2
DEPTH = 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")

# Columns of SPEC section 6 (plus fetch/parse ms), in order, as patterns for a header cell.
COLUMNS = [
    ("backend", r"backend"),
    ("workers", r"workers"),
    ("pages", r"pages"),
    ("wall seconds", r"wall( s| seconds| time)?"),
    ("pages/s", r"pages ?/ ?s"),
    ("CPU seconds", r"(?i:cpu)( s| seconds| time)?"),
    ("fetch ms", r"fetch( ms)?"),
    ("parse ms", r"parse( ms)?"),
    ("speed-up", r"speed-?up"),
]


def cells(line: str) -> list[str]:
    """The cells of a table line: columns are separated by two spaces or more."""
    return re.split(r"\s{2,}", line.strip())


def jsonl_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def result(label: str, backend: str, workers: int, urls: set[str] | None = None, **figures) -> RunResult:
    urls = urls if urls is not None else {f"http://127.0.0.1/{i}" for i in range(30)}
    pages = figures.pop("pages", len(urls))
    return RunResult(label, backend, workers, pages=pages, ok=figures.pop("ok", pages), urls=urls, **figures)


def three_runs(**serial_figures) -> list[RunResult]:
    """serial / 2 threads / 2 processes with made-up figures."""
    serial = result("serial", "thread", 1, wall=2.0, cpu=1.3, speedup=1.0, **serial_figures)
    threads = result("2 threads", "thread", 2, wall=1.8, cpu=1.6, fetch_ms=9.0, parse_ms=21.0, speedup=1.11)
    processes = result("2 processes", "process", 2, wall=1.05, cpu=2.9, fetch_ms=11.0, parse_ms=22.0,
                       speedup=1.9)  # fmt: skip
    return [serial, threads, processes]


def free_of_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every `import matplotlib...` fail, as when it is not installed."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` -> ImportError
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", fake_import)


# -- run_comparison on a real local site ------------------------------------------


def test_run_comparison_runs_serial_threads_and_processes_on_the_same_pages(small_site, expected, tmp_path):
    seed = small_site.url("/")
    want = set(expected(small_site, [seed], DEPTH))
    assert len(want) > 10  # the site is big enough for the depth to matter
    output = tmp_path / "runs" / "crawl.jsonl"
    output.parent.mkdir()
    config = CrawlConfig(workers=WORKERS, depth=DEPTH, timeout=10)
    files = {
        "serial": output.with_name("crawl.serial.jsonl"),
        "threads": output.with_name("crawl.threads.jsonl"),
        "processes": output.with_name("crawl.processes.jsonl"),
    }

    for attempt in (1, 2):  # the second run must start its files afresh, not append
        results = run_comparison(config, [seed], str(output))

        assert [r.label for r in results] == ["serial", f"{WORKERS} threads", f"{WORKERS} processes"]
        assert [r.backend for r in results] == ["thread", "thread", "process"]
        assert [r.workers for r in results] == [1, WORKERS, WORKERS]
        for run in results:
            assert run.urls == want, f"attempt {attempt}, {run.label}: {sorted(run.urls ^ want)[:10]}"
            assert run.pages == len(want), run
            assert run.wall > 0, run
            assert run.cpu >= 0, run
            assert run.fetch_ms >= 0 and run.parse_ms >= 0, run
            assert run.speedup == pytest.approx(run.rate / results[0].rate), run
        assert results[0].speedup == 1.0

        assert sorted(p.name for p in output.parent.iterdir()) == sorted(p.name for p in files.values())
        for run, path in zip(results, files.values(), strict=True):
            lines = jsonl_lines(path)
            assert len(lines) == run.pages, f"attempt {attempt}: {path.name} has {len(lines)} lines"
            assert {json.loads(line)["url"] for line in lines} == want, path.name
            read_jsonl(path)  # every line a complete JSON object


# -- the table, the same-pages check, the explanation ----------------------------------


def test_format_table_has_the_spec_columns_and_one_row_per_run():
    runs = three_runs(pages=3, fetch_ms=12.0, parse_ms=30.0)
    lines = format_table(runs).splitlines()

    header = cells(lines[0])
    position = 0
    for name, pattern in COLUMNS:
        found = [i for i, cell in enumerate(header) if re.fullmatch(pattern, cell)]
        assert found, f"no {name!r} column in header {header}"
        assert found[0] >= position, f"column {name!r} out of order in {header}"
        position = found[0]

    rows = [line for line in lines[1:] if not set(line) <= set("- ")]
    assert len(rows) == len(runs), lines
    index = {name: next(i for i, c in enumerate(header) if re.fullmatch(p, c)) for name, p in COLUMNS}
    for run, line in zip(runs, rows, strict=True):
        row = cells(line)
        assert len(row) == len(header), line
        assert run.label in line
        assert row[index["backend"]] == run.backend
        assert row[index["workers"]] == str(run.workers)
        assert row[index["pages"]] == str(run.pages)
        assert float(row[index["wall seconds"]]) == pytest.approx(run.wall, abs=0.01)
        assert float(row[index["pages/s"]]) == pytest.approx(run.rate, abs=0.1)
        assert float(row[index["CPU seconds"]]) == pytest.approx(run.cpu, abs=0.01)
        assert float(row[index["fetch ms"]]) == pytest.approx(run.fetch_ms, abs=0.1)
        assert float(row[index["parse ms"]]) == pytest.approx(run.parse_ms, abs=0.1)
        assert float(row[index["speed-up"]].rstrip("x×")) == pytest.approx(run.speedup, abs=0.01)


def test_same_pages_says_every_run_fetched_the_same_pages():
    urls = {f"http://127.0.0.1:1/page/{i}.html" for i in range(7)}
    runs = [result("serial", "thread", 1, set(urls)), result("2 threads", "thread", 2, set(urls)),
            result("2 processes", "process", 2, set(urls))]  # fmt: skip
    sentence = same_pages(runs)
    assert re.search(r"\bsame\b", sentence), sentence
    assert re.search(r"\b7\b", sentence), sentence
    assert "warn" not in sentence.lower() and "differ" not in sentence.lower(), sentence


@pytest.mark.parametrize("odd", [1, 2])
def test_same_pages_warns_when_one_run_got_other_pages(odd):
    urls = {f"http://127.0.0.1:1/page/{i}.html" for i in range(7)}
    other = (urls - {"http://127.0.0.1:1/page/3.html"}) | {"http://127.0.0.1:1/page/99.html"}
    labels = [("serial", "thread", 1), ("2 threads", "thread", 2), ("2 processes", "process", 2)]
    runs = [result(*label, other if i == odd else set(urls)) for i, label in enumerate(labels)]
    assert len(runs[odd].urls) == len(urls)  # the same count: only the sets differ
    sentence = same_pages(runs)
    assert "warn" in sentence.lower(), sentence
    assert labels[odd][0] in sentence, sentence
    assert labels[3 - odd][0] not in sentence, f"{labels[3 - odd][0]} did not differ: {sentence}"
    assert not re.search(r"\bthe same \d+ pages", sentence), sentence


def test_explain_blames_parsing_and_the_gil_when_parsing_dominates():
    runs = three_runs(fetch_ms=10.0, parse_ms=30.0)  # parsing: 75% of the serial time
    text = explain(runs, cores=4)
    assert "GIL" in text, text
    assert re.search(r"pars(e|ing)", text, re.IGNORECASE), text
    assert "75%" in text, text
    assert "1.1x" in text and "1.9x" in text, text  # the threads' and processes' speed-ups
    assert "2 threads" in text and "2 processes" in text, text
    assert re.search(r"\b2 cores\b", text), text  # min(4 cores, 2 processes)
    assert "threads are enough" not in text, text
    for cpu in ("1.3 s", "1.6 s", "2.9 s"):  # the CPU seconds of the three runs
        assert cpu in text, text


def test_explain_says_threads_suffice_when_fetching_dominates():
    runs = three_runs(fetch_ms=90.0, parse_ms=10.0)  # waiting: 90% of the serial time
    text = explain(runs, cores=4)
    assert re.search(r"wait", text, re.IGNORECASE), text
    assert "90%" in text, text
    assert "1.1x" in text and "1.9x" in text, text
    assert "threads are enough" in text, text
    assert "cores at once" not in text, text


# -- the chart ------------------------------------------------------------------------


def test_plot_writes_a_png_beside_the_output(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "charts" / "out.compare.png"
    sections = [("I/O-bound site", three_runs(fetch_ms=50.0, parse_ms=5.0)),
                ("CPU-bound site", three_runs(fetch_ms=5.0, parse_ms=50.0))]  # fmt: skip
    assert plot(sections, str(path)) == str(path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000


def test_plot_without_matplotlib_returns_none_and_writes_nothing(tmp_path, monkeypatch):
    free_of_matplotlib(monkeypatch)
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401 - the simulation works
    path = tmp_path / "charts" / "out.compare.png"
    assert plot([("crawl", three_runs())], str(path)) is None
    assert list(tmp_path.iterdir()) == []


# -- the command line -------------------------------------------------------------------


def test_cli_compare_prints_the_table_and_draws_the_chart(
    run_cli, small_site, expected, write_seeds, tmp_path
):
    pytest.importorskip("matplotlib")
    seed = small_site.url("/")
    seeds = write_seeds(seed)
    out = tmp_path / "out.jsonl"
    result = run_cli(seeds, "--compare", "-w", "2", "-o", out, "--depth", "2", timeout=75)
    assert result.rc == 0, result
    assert "Traceback" not in result.stderr, result

    lines = result.stdout.splitlines()
    headers = [i for i, line in enumerate(lines) if re.search(r"speed-?up", line) and "pages/s" in line]
    assert len(headers) == 1, result
    rows = [cells(line) for line in lines[headers[0] + 2 : headers[0] + 5]]
    assert [row[0] for row in rows] == ["serial", "2 threads", "2 processes"], result
    pages = len(expected(small_site, [seed], 2))
    for row in rows:
        assert str(pages) in row, f"{row}: expected {pages} pages"
    assert re.search(rf"\bsame {pages} pages\b", result.stdout), result

    chart = tmp_path / "out.compare.png"
    assert chart.read_bytes().startswith(PNG_MAGIC), result
    assert str(chart) in result.stdout, result
    for name in ("serial", "threads", "processes"):
        assert len(read_jsonl(tmp_path / f"out.{name}.jsonl")) == pages, name


def test_cli_bench_append_prints_four_methods_with_rates(run_cli):
    total = 20_000
    result = run_cli("--bench-append", str(total), "-w", "2", timeout=60)
    assert result.rc == 0, result
    assert "Traceback" not in result.stderr, result
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    assert "items/s" in lines[header], result
    assert set(lines[header + 1]) <= set("- "), result
    rows = []
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        rows.append(cells(line))
    assert len(rows) == 4, result
    for name, done, rate, time_for in rows:
        done_n, rate_n = int(done.replace(",", "")), float(rate.replace(",", ""))
        assert 0 < done_n <= total, name
        assert rate_n > 0, name
        seconds = float(time_for.split()[0].replace(",", ""))
        assert seconds == pytest.approx(total / rate_n, rel=0.05, abs=0.06), (name, time_for)
        assert ("extrapolated" in time_for) == (done_n < total), (name, done, time_for)
    fast = [rows[0], rows[2], rows[3]]  # a plain list, a queue, a queue of batches: under the cap
    for name, done, _, time_for in fast:
        assert int(done.replace(",", "")) == total and "extrapolated" not in time_for, (name, result)


# -- the demo's server process ------------------------------------------------------------


def _own_children() -> set[int]:
    def helper(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                return any(h.encode() in file.read() for h in HELPERS)
        except OSError:
            return True

    return {pid for pid in children_of(os.getpid()) if not helper(pid)}


def _fetch(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    with opener.open(url, timeout=10) as response:
        return response.status, response.read()


@pytest.mark.parametrize("failing", [False, True], ids=["normal-exit", "exception-in-block"])
def test_serve_in_process_serves_the_site_and_stops_its_process(failing):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc to see child processes")
    before = _own_children()
    raises = pytest.raises(RuntimeError) if failing else contextlib.nullcontext()
    with raises, serve_in_process({"pages": 20}, 0.0) as url:
        address = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/", url)
        assert address, url
        port = int(address.group(1))
        status, body = _fetch(url)
        assert status == 200 and b"<title>Page 0</title>" in body
        status, body = _fetch(url + "robots.txt")
        assert status == 200 and body == ROBOTS_TXT
        status, body = _fetch(url + "page/19.html")
        assert status == 200 and b"Page 19" in body
        server = _own_children() - before
        assert len(server) == 1, server
        if failing:
            raise RuntimeError("the caller failed")
    for pid in server:
        state = _stat(pid)
        assert state is None, f"server process {pid} still there after the block: {state}"
    assert not (_own_children() - before)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


# -- no conclusion from failed runs or too little work (issue 14) --------------------------


def test_failed_runs_give_no_conclusion_and_say_why():
    runs = three_runs(fetch_ms=90.0, parse_ms=10.0)
    for run in runs:
        run.ok = 0
    text = report(runs, "offline")
    assert "No conclusion: pages failed (serial: 30 of 30 pages failed" in text, text
    assert "threads are enough" not in text and "same 30 pages" not in text, text


def test_too_little_work_gives_no_conclusion_and_says_why():
    serial, threads, processes = three_runs(fetch_ms=90.0, parse_ms=10.0)
    for run in (serial, threads, processes):
        run.pages = run.ok = 1
    serial.wall = 0.1
    text = report([serial, threads, processes], "one page")
    assert "No conclusion: too little work (1 page, 0.10 s serially)" in text, text
    assert "threads are enough" not in text and "0.4x" not in text.split("\n\n")[-1], text


def test_table_counts_ok_pages_and_errors():
    runs = three_runs(fetch_ms=90.0, parse_ms=10.0)
    runs[1].ok = 27
    header, _, _, threads, _ = format_table(runs).splitlines()
    assert cells(threads)[cells(header).index("ok")] == "27"
    assert cells(threads)[cells(header).index("errors")] == "3"


def test_cli_compare_on_a_one_page_site_draws_no_conclusion(run_cli, serve, write_seeds, tmp_path):
    one = serve(site={"/": b"<html><title>one</title></html>", "/robots.txt": b""})
    result = run_cli(write_seeds(one.url("/")), "--compare", "-w", "2", "-o", tmp_path / "out.jsonl")
    assert result.rc == 0, result
    assert "No conclusion: too little work" in result.stdout, result
    assert "threads are enough" not in result.stdout and "GIL" not in result.stdout, result
