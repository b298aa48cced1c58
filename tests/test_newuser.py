"""What a new user meets (issue 14): pipes and standard output, a full disk, the seed
file as output, failures that say why, seed files that are not seed files, and words.

Each test runs the real command: a real pipe, /dev/full, a small tmpfs, a network
namespace in which no host name resolves (no lookup leaves the machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import read_jsonl, wait_until
from siteserver import MISSING, PRIVATE

from scraper import download
from scraper.session import new_session
from scraper.stats import CrawlStats

pytestmark = pytest.mark.timeout(90)

ROOT = os.geteuid() == 0


def shell(command: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`command` in bash, with `scraper` meaning this Python's `python -m scraper`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("COLUMNS", None)
    script = f"scraper() {{ {sys.executable} -m scraper \"$@\"; }}\n{command}"
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=timeout)  # fmt: skip


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and "Exception ignored" not in text


# -- 1. records on standard output, a pipe, /dev/stdout, /dev/null -------------------------------


def test_dash_writes_records_to_stdout_and_the_rest_to_stderr(small_site, write_seeds, cli_cwd):
    seeds = write_seeds(small_site.url("/"))
    done = shell(f"scraper {seeds} --depth 2 -o - -w 2 | wc -l", cli_cwd)
    assert done.returncode == 0, done
    lines = int(done.stdout)
    assert lines > 10, done
    assert "pages in" in done.stderr and no_traceback(done.stderr), done
    assert not (cli_cwd / "-").exists()  # not a file named "-"
    alone = shell(f"scraper {seeds} --depth 2 -o - -w 2", cli_cwd)
    records = [json.loads(line) for line in alone.stdout.splitlines()]  # nothing else on stdout
    assert len(records) == lines and all(record["url"] for record in records), alone


@pytest.mark.parametrize("device", ["/dev/stdout", "/dev/null"])
def test_devices_work_as_outputs(small_site, write_seeds, cli_cwd, device):
    seeds = write_seeds(small_site.url("/"))
    done = shell(f"scraper {seeds} --depth 2 -O {device} -q -w 2 | wc -l", cli_cwd)
    assert done.returncode == 0 and no_traceback(done.stderr), done
    assert (int(done.stdout) > 10) == (device == "/dev/stdout"), done


def test_a_reader_that_closes_the_pipe_ends_the_crawl_quietly(site, write_seeds, cli_cwd):
    seeds = write_seeds(site.url("/"))
    done = shell(f"scraper {seeds} --depth 3 -o - -w 2 2>err.txt | head -n 2; "
                 "echo ${PIPESTATUS[0]} >status.txt", cli_cwd)  # fmt: skip
    stderr = (cli_cwd / "err.txt").read_text()
    assert len(done.stdout.splitlines()) == 2, done
    assert (cli_cwd / "status.txt").read_text().strip() == "141", stderr  # as cat or wget: SIGPIPE
    assert stderr == "" or no_traceback(stderr) and "error" not in stderr, stderr


# -- 2. a full disk ---------------------------------------------------------------------------


def test_a_full_device_is_one_line_exit_1_and_the_summary(small_site, write_seeds, cli_cwd):
    # (run_cli would read its output back, and /dev/full reads as endless zeros)
    result = shell(f"scraper {write_seeds(small_site.url('/'))} --depth 1 -o /dev/full -w 2", cli_cwd)
    assert result.returncode == 1, result
    assert no_traceback(result.stderr), result
    lines = result.stderr.splitlines()
    assert lines[0] == "scraper: error: cannot write the output '/dev/full': No space left on device", result
    # the summary: of the pages done before the first write failed (one, or a few)
    assert re.match(r"\d+ pages? in ", lines[1]) and "records written" not in result.stderr, result


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root")
def test_a_disk_that_fills_up_leaves_whole_lines_that_resume_continues(site, write_seeds, run_cli, tmp_path,
                                                                          expected):  # fmt: skip
    seeds = write_seeds(site.url("/"))
    with small_tmpfs(tmp_path / "disk", "160k") as disk:
        output = disk / "out.jsonl"
        full = run_cli(seeds, "--depth", "3", "-o", output, "-w", "2")
        assert full.rc == 1 and no_traceback(full.stderr), full
        assert "No space left on device" in full.stderr, full
        written = read_jsonl(output)  # whole lines only: no torn last line
        assert 0 < len(written) < len(expected(site, [site.url("/")], 3)), full
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        resumed = run_cli(seeds, "--depth", "3", "-o", output, "--resume", "-w", "2")
        assert resumed.rc == 0, resumed
        urls = [record["url"] for record in read_jsonl(output)]
    assert sorted(urls) == sorted(expected(site, [site.url("/")], 3)), resumed  # each page once


# -- 3. the output is never the seed file ---------------------------------------------------------


@pytest.mark.parametrize("option", ["-o", "-O", "link"])
def test_the_seed_file_is_never_the_output(cli_cwd, write_seeds, small_site, option, tmp_path):
    seeds = write_seeds(small_site.url("/"))
    before = seeds.read_bytes()
    if option == "link":
        (tmp_path / "other-name").symlink_to(seeds)
        result = shell(f"scraper {seeds} -O {tmp_path / 'other-name'}", cli_cwd)
    else:
        result = shell(f"scraper {seeds} {option} {seeds}", cli_cwd)
    assert result.returncode == 2 and "is the seed file" in result.stderr.splitlines()[-1], result
    assert seeds.read_bytes() == before


# -- 4. no network: say so, and do not retry a name that does not resolve ----------------------


@contextlib.contextmanager
def no_name_resolves() -> Iterator[list[str]]:
    """A network namespace whose resolver is 127.0.0.1 with nothing behind it (and its
    loopback down): every lookup fails at once, and none leaves the machine."""
    if not ROOT or not shutil.which("ip"):
        pytest.skip("a network namespace needs root and ip(8)")
    name = f"scraper-{uuid.uuid4().hex[:8]}"
    config = Path("/etc/netns") / name
    config.mkdir(parents=True)
    (config / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    try:
        if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode:
            pytest.skip("cannot create a network namespace here")
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(config, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("robots", [[], ["--ignore-robots"]], ids=["robots", "ignore-robots"])
def test_offline_the_summary_says_which_host_did_not_resolve(write_seeds, tmp_path, robots):
    seeds = write_seeds("http://no-such-host.example/", "http://no-such-host.example/a",
                        "https://other.example/")  # fmt: skip
    with no_name_resolves() as inside:
        started = time.monotonic()
        done = subprocess.run([*inside, sys.executable, "-m", "scraper", str(seeds), "-O",
                               str(tmp_path / "out.jsonl"), "--retries", "3", *robots],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        took = time.monotonic() - started
    assert done.returncode == 0 and no_traceback(done.stderr), done
    last = done.stderr.splitlines()[-1 if robots == [] else -2]
    assert last.startswith("scraper: nothing "), done.stderr
    assert "cannot resolve host name 'no-such-host.example'" in last, done.stderr
    # --retries 3 with backoff would wait 0.5 + 1 + 2 s per page before giving up
    assert took < 3.0, done.stderr
    if robots:
        records = read_jsonl(tmp_path / "out.jsonl")
        assert {r["error"].split(" (")[0] for r in records} == {
            "connection: cannot resolve host name 'no-such-host.example'",
            "connection: cannot resolve host name 'other.example'"}


def test_a_name_that_does_not_resolve_is_not_retried(monkeypatch):
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    waits: list[float] = []
    limits = download.Limits(timeout=5, max_bytes=1000, retries=3)
    with new_session("test") as session:
        result = download.download(session, "http://no-such-host.example/", limits, sleep=waits.append)
    assert result.error == (
        "connection: cannot resolve host name 'no-such-host.example' (Name or service not known)")
    assert waits == []


def test_nothing_succeeded_names_the_most_common_error():
    stats = CrawlStats()
    for error in ["timeout", "connection: refused", "connection: refused"]:
        stats.count({"error": error})
    assert stats.summary().splitlines()[-1] == (
        "scraper: nothing succeeded: 3 pages failed, 2 of them with connection: refused")
    stats.count({"error": None})
    assert "nothing" not in stats.summary()


# -- 8. seed files that are not seed files -----------------------------------------------------------


@pytest.mark.slow
def test_a_binary_seed_file_is_refused_with_one_line(run_cli, tmp_path):
    binary = tmp_path / "random.bin"
    binary.write_bytes(os.urandom(200_000) + b"\0")
    result = run_cli(binary)
    assert result.rc == 2 and result.stderr.splitlines() == [
        f"scraper: error: {binary} is not a text file of URLs (it holds NUL bytes)"], result
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"http://example.com/caf\xe9\n")
    result = run_cli(latin)
    assert result.rc == 2 and len(result.stderr.splitlines()) == 1 and "not UTF-8" in result.stderr, result


def test_a_wrong_text_file_reports_the_first_bad_lines_and_a_count(run_cli, write_seeds, small_site):
    seeds = write_seeds(*[f"line {n}" for n in range(1, 101)], small_site.url("/"))
    result = run_cli(seeds, "-O", "out.jsonl", "-q")
    assert result.rc == 0, result
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 6, result
    assert skipped[-1] == f"scraper: {seeds}: skipped 95 more lines with no valid seed URL", result


# -- 11. words -------------------------------------------------------------------------------------


def test_one_page_one_error_and_nothing_written_are_worded(run_cli, write_seeds, small_site, tmp_path):
    result = run_cli(write_seeds(small_site.url("/missing")), "-O", "out.jsonl", "--ignore-robots")
    assert "1 page in" in result.stderr and "1 error\n" in result.stderr, result
    nothing = run_cli(write_seeds("http://127.0.0.1:9/"), "-O", "none.jsonl", "--retries", "0")
    assert "records written" not in nothing.stderr, nothing


def test_pages_recorded_before_a_resume_are_not_counted_as_duplicates(run_cli, write_seeds, small_site):
    seeds = write_seeds(small_site.url("/"))
    run_cli(seeds, "--depth", "1", "-o", "out.jsonl", "-q")
    again = run_cli(seeds, "--depth", "1", "-o", "out.jsonl", "--resume")
    assert again.rc == 0 and "duplicate" not in again.stderr, again
    assert "already recorded" in again.stderr, again


def test_sigterm_is_worded_as_sigterm(start_cli, write_seeds, serve):
    slow = serve(pages=60, delay=0.3)
    process = start_cli(write_seeds(slow.url("/")), "--depth", "3", "-o", "out.jsonl", "-w", "2")
    assert wait_until(lambda: (process.cwd / "out.jsonl").exists(), 20)
    process.popen.send_signal(signal.SIGTERM)
    result = process.wait(30)
    assert result.rc == 143, result
    assert "SIGTERM" in result.stderr and "Ctrl-C" not in result.stderr, result


# -- 5. -v: one line per failed page, retry, robots.txt skip; nothing per page without it ------------


@pytest.mark.parametrize("backend", [["--backend", "thread"], ["--start-method", "spawn"]],
                         ids=["thread", "spawn"])
def test_verbose_gives_a_line_per_failure_retry_and_robots_skip(run_cli, write_seeds, small_site, backend):
    seeds = write_seeds(small_site.url("/"), small_site.url(MISSING), small_site.url(PRIVATE),
                        "http://127.0.0.1:9/")  # fmt: skip
    args = (seeds, "-O", "out.jsonl", "--retries", "1", "-w", "2", *backend)
    quiet, verbose = run_cli(*args), run_cli(*args, "-v")
    assert "INFO" not in quiet.stderr and MISSING not in quiet.stderr, quiet
    lines = verbose.stderr.splitlines()
    assert any(MISSING in line and "http_404" in line for line in lines), verbose
    assert any(PRIVATE in line and "robots.txt" in line for line in lines), verbose
    assert any("127.0.0.1:9" in line and "retry 1 of 1" in line for line in lines), verbose  # from a worker
    debug = run_cli(*args, "-vv")
    assert "DEBUG: fetched: " in debug.stderr, debug


# -- 6. --max-pages: the first N pages in breadth-first order, every run, every backend ----------------


def test_max_pages_takes_the_same_pages_on_every_run_and_backend(serve, write_seeds, run_cli):
    site = serve(pages=300, jitter=0.02)  # answers arrive in a different order each run
    seeds = write_seeds(site.url("/"))
    runs = [["--backend", "thread", "-w", "8"], ["--backend", "process", "-w", "2"],
            ["--backend", "thread", "-w", "3"], ["--backend", "process", "-w", "3"],
            ["--backend", "thread", "-w", "1", "--concurrency", "1"]]  # fmt: skip
    pages = []
    for number, backend in enumerate(runs):
        result = run_cli(seeds, "--depth", "3", "--max-pages", "40", "-O", f"run{number}.jsonl", "-q",
                         *backend)  # fmt: skip
        assert result.rc == 0 and len(result.records) == 40, result
        pages.append(frozenset(record["url"] for record in result.records))
    assert len(set(pages)) == 1, [len(p - pages[-1]) for p in pages]


# -- 7. --compare concludes nothing from runs that failed -------------------------------------------


@pytest.mark.slow
def test_compare_offline_draws_no_conclusion(write_seeds, tmp_path):
    seeds = write_seeds("http://no-such-host.example/", "http://no-such-host.example/a")
    with no_name_resolves() as inside:
        done = subprocess.run([*inside, sys.executable, "-m", "scraper", str(seeds), "--compare", "-w", "2",
                               "--ignore-robots", "-o", str(tmp_path / "out.jsonl")],
                              capture_output=True, text=True, timeout=90)  # fmt: skip
    assert done.returncode == 0 and no_traceback(done.stderr), done
    assert "No conclusion: pages failed (serial: 2 of 2 pages failed" in done.stdout, done.stdout
    assert "same 2 pages" not in done.stdout and "threads are enough" not in done.stdout, done.stdout


# -- 9. a line where a line is due -------------------------------------------------------------------

UNGUARDED = """\
import sys
import scraper

records = scraper.crawl([sys.argv[1]], workers=2, backend="process", start_method="spawn")
print(len(records))
"""


def test_a_script_without_a_main_guard_is_told_about_the_guard(small_site, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    done = subprocess.run([sys.executable, str(script), small_site.url("/")], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0, done
    assert "if __name__ == '__main__':" in done.stderr.splitlines()[-1], done.stderr[-3000:]
    assert "parse callback" not in done.stderr.splitlines()[-1].split("(their own")[0], done.stderr[-3000:]


@pytest.mark.timeout(120)
def test_ctrl_c_during_the_demo_prints_no_traceback(start_cli, cli_cwd):
    process = start_cli("--demo", "-w", "2")
    assert wait_until(lambda: any((cli_cwd / "data").glob("demo.io.*.jsonl")), 60), "the demo did not start"
    time.sleep(0.5)
    process.signal_group(signal.SIGINT)  # what Ctrl-C in a terminal does
    result = process.wait(30)
    assert result.rc == 130, result
    assert no_traceback(result.stderr), result


# -- 10. the progress bar ------------------------------------------------------------------------


def run_on_a_terminal(args: list[str], cwd: Path, interrupt_after: float | None = None) -> tuple[int, str]:
    """`python -m scraper ARGS` with stderr on a pseudo-terminal; (exit status, what the terminal got)."""
    import pty

    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    env = dict(os.environ, COLUMNS="100", TERM="xterm")
    process = subprocess.Popen([sys.executable, "-m", "scraper", *args], cwd=cwd, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=secondary)  # fmt: skip
    os.close(secondary)
    started, seen = time.monotonic(), b""
    while True:
        if interrupt_after is not None and time.monotonic() - started > interrupt_after:
            process.send_signal(signal.SIGINT)
            interrupt_after = None
        if not select.select([main], [], [], 0.05)[0]:
            continue
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other end closed: the process is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    return process.wait(30), seen.decode("utf-8", "replace")


def test_the_bar_has_a_total_and_the_ctrl_c_warning_its_own_line(serve, write_seeds, cli_cwd):
    slow = serve(pages=300, delay=0.2)
    seeds = write_seeds(slow.url("/"))
    args = [str(seeds), "--depth", "3", "--max-pages", "60", "-O", "out.jsonl", "-w", "2",
            "--backend", "thread"]  # fmt: skip
    rc, terminal = run_on_a_terminal(args, cli_cwd, interrupt_after=1.5)
    assert rc == 130, terminal
    assert "/60 " in terminal, terminal  # the bar knows its total, so it shows an ETA
    assert "<" in terminal.split("/60 ")[-1][:40], terminal
    before = terminal.split("scraper: WARNING: stopping")[0]
    assert before.endswith(("\r", "\n", "\x1b[A")) or before.rstrip(" ").endswith("\r"), repr(before[-200:])


def test_the_error_count_is_drawn_with_the_page_that_failed(small_site, monkeypatch):
    from scraper import cli
    from scraper.config import CrawlConfig

    class Bar:
        shown_errors = 0
        drawn: list[tuple[int, int]] = []  # (pages, errors) at each draw
        pages = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            pass

        def set_postfix(self, errors, refresh=True):
            self.shown_errors = errors

        def update(self, n=1):
            self.pages += n
            self.drawn.append((self.pages, self.shown_errors))

    seen: list[dict] = []
    monkeypatch.setattr(cli, "_progress", lambda *args: Bar())
    monkeypatch.setattr(cli.Crawl, "run", _recording(cli.Crawl.run, seen))
    config = CrawlConfig(backend="thread", workers=2, depth=1)
    seeds = [small_site.url("/"), small_site.url("/missing-1"), small_site.url("/missing-2")]
    assert cli.run_crawl(config, seeds, show_summary=False) == 0
    errors_so_far = [sum(1 for record in seen[:n] if record["error"]) for n in range(1, len(seen) + 1)]
    assert [errors for _, errors in Bar.drawn] == errors_so_far


def _recording(run, seen):
    def recorded(self):
        for record in run(self):
            seen.append(record)
            yield record

    return recorded
