"""The wide site: what the crawl's coordinator costs as its frontier grows.

    python benchmarks/wide.py                         # a 60 s window, then the resume
    python benchmarks/wide.py --seconds 30 --json     # one JSON line of figures as well
    python benchmarks/wide.py --python ../old/.venv/bin/python --cwd ../old   # another checkout
    python benchmarks/wide.py serve --links 200       # the site alone (prints its port)
    python benchmarks/wide.py capacity                # the site's pages/s, with a local client

The site is served by a process of its own (a forked pool sharing one
listening socket) on 127.0.0.1: page N (`/p/N`, the seed `/p/0`) links to
pages L*N+1 .. L*N+L (L = --links, 200), so the frontier grows by L URLs per
page. The crawl is `python -m scraper SEEDS -O OUT --depth 4 -q` with the
defaults otherwise, run for --seconds. Every 0.5 s the benchmark reads the
crawl's main process (not its workers): RssAnon from /proc/PID/status
(anonymous memory: file-backed pages of an mmap'd store do not count) and
user+sys CPU from /proc/PID/stat; and the lines OUT has grown by (pages
done; those of depth < 4 offer L links each). Over the window from t=5 s to
the end:

  bytes per discovered URL   growth of RssAnon / URLs discovered (pages done x L, depth 4 excepted)
  us per link                main-process CPU / links offered (the same count)
  pages/s                    pages done / seconds

Then the crawl's whole process group is SIGKILLed and `--resume` runs on OUT:
the seconds from its start to its first new record (the file polled every
10 ms; capped by --resume-cap), and its RssAnon at that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from run import wait_for_port  # benchmarks/run.py, beside this script

HERE = Path(__file__).resolve().parent
DEPTH = 4  # --depth of the crawl: pages at this depth offer no links
SAMPLE = 0.5  # seconds between two samples of the main process
SETTLE = 5.0  # the window starts this long after the crawl
POLL = 0.01  # seconds between two looks at OUT during the resume
TICKS = os.sysconf("SC_CLK_TCK")
DEPTH_FIELD = re.compile(rb'"depth": ?(\d+)')


# ---------------------------------------------------------------- the site


def page_body(page: int, links: int) -> bytes:
    first = page * links + 1
    items = "".join(f'<li><a href="/p/{c}">page {c}</a></li>' for c in range(first, first + links))
    return (f"<!doctype html><html><head><title>Page {page}</title></head>"
            f"<body><h1>Page {page}</h1><ul>{items}</ul></body></html>\n").encode()  # fmt: skip


ROBOTS = b"User-agent: *\nAllow: /\n"


def response(path: str, links: int) -> bytes:
    kind, status = "text/html; charset=utf-8", "200 OK"
    if path == "/robots.txt":
        body, kind = ROBOTS, "text/plain"
    elif path.startswith("/p/") and path[3:].isdigit():
        body = page_body(int(path[3:]), links)
    else:
        body, status = b"not found", "404 Not Found"
    head = f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, links: int) -> None:
    """HTTP/1.1 with keep-alive: GET only, answered at once."""
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode("latin-1").split("?")[0]
            writer.write(response(path, links))
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


async def serve_socket(sock: socket.socket, links: int) -> None:
    server = await asyncio.start_server(lambda r, w: answer(r, w, links), sock=sock)
    async with server:
        await server.serve_forever()


def serve(links: int, processes: int) -> None:
    """Bind port 0, print the port, serve from `processes` forked processes sharing the socket."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    print(sock.getsockname()[1], flush=True)
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(serve_socket(sock, links))
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for pid in children:
            os.waitpid(pid, 0)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def site(links: int, processes: int):  # noqa: ANN201
    """The site's server, in a process group of its own; yield (port, its pgid)."""
    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve", "--links", str(links),
                               "--server-processes", str(processes)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.strip().isdigit():
            raise SystemExit("the site's server did not start")
        port = int(line)
        wait_for_port(port)
        yield port, server.pid
    finally:
        kill_group(server.pid)
        server.wait(10)


def capacity(port: int, seconds: float, connections: int) -> float:
    """Pages/s the site answers to `connections` keep-alive clients (threads of this process)."""
    counts = [0] * connections
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        page = index
        while time.monotonic() < stop:
            conn.request("GET", f"/p/{page}")
            conn.getresponse().read()
            counts[index] += 1
            page += connections
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


# ---------------------------------------------------------------- the processes


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGKILL process group `pgid`; wait until none of it is left (or complain)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            print(f"warning: processes of group {pgid} left: {group_members(pgid)}", file=sys.stderr)
            return
        time.sleep(0.02)


def rss_anon(pid: int) -> int:
    """RssAnon of `pid` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no RssAnon for {pid}")


def cpu_seconds(pid: int) -> float:
    """user + sys CPU seconds of `pid` (its threads, not its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def group_cpu(pgid: int) -> float:
    total = 0.0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError, ValueError):
            total += cpu_seconds(pid)
    return total


class Output:
    """The crawl's JSONL output read as it grows: pages done, links offered."""

    def __init__(self, path: Path, links: int) -> None:
        self.path, self.links = path, links
        self.offset = 0  # after the last whole line read
        self.pages = 0
        self.offered = 0  # pages of depth < DEPTH x links

    def read(self) -> None:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            self.pages += 1
            match = DEPTH_FIELD.search(line)
            if match is None or int(match.group(1)) < DEPTH:
                self.offered += self.links
        self.offset += end


@dataclass
class Sample:
    t: float
    rss: int
    cpu: float
    pages: int
    offered: int


@dataclass
class Figures:
    seconds: float
    links: int
    pages: int = 0  # done by the end of the window
    window_pages: int = 0
    window_urls: int = 0
    bytes_per_url: float = 0.0
    us_per_link: float = 0.0
    pages_per_s: float = 0.0
    rss_start: int = 0  # RssAnon at t=5 s
    rss_final: int = 0
    main_cpu_share: float = 0.0  # the main process's CPU over the window / its seconds
    server_cpu_share: float = 0.0  # the site's processes, the same
    resume_s: float | None = None  # None: no new record within the cap
    resume_rss: int | None = None
    resume_cap: float = 120.0
    load_start: str = ""
    load_end: str = ""
    samples: list[Sample] = field(default_factory=list, repr=False)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------- the benchmark


def crawl_command(python: str, seeds: Path, output: Path, resume: bool) -> list[str]:
    flags = ["-o", str(output), "--resume"] if resume else ["-O", str(output)]
    return [python, "-m", "scraper", str(seeds), *flags, "--depth", str(DEPTH), "-q"]


def window(args: argparse.Namespace, work: Path, port: int, server_pgid: int, figures: Figures) -> Path:
    """Run the crawl for the window, sampling; kill its process group. Return OUT."""
    seeds, output = work / "seeds.txt", work / "out.jsonl"
    seeds.write_text(f"http://127.0.0.1:{port}/p/0\n")
    out = Output(output, args.links)
    crawl = subprocess.Popen(crawl_command(args.python, seeds, output, resume=False), cwd=args.cwd,
                             stdout=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    started = time.monotonic()
    try:
        tick = 0
        server_cpu = None
        while True:
            tick += 1
            time.sleep(max(0.0, started + tick * SAMPLE - time.monotonic()))
            if crawl.poll() is not None:
                raise SystemExit(f"the crawl ended early (exit status {crawl.returncode})")
            t = time.monotonic() - started
            rss, cpu = rss_anon(crawl.pid), cpu_seconds(crawl.pid)
            out.read()
            figures.samples.append(Sample(round(t, 3), rss, cpu, out.pages, out.offered))
            if server_cpu is None and t >= SETTLE - 1e-3:
                server_cpu = group_cpu(server_pgid)
            if t >= args.seconds - 1e-3:
                break
        server_cpu = group_cpu(server_pgid) - (server_cpu or 0.0)
    finally:
        kill_group(crawl.pid)
        crawl.wait(10)
    first = next(s for s in figures.samples if s.t >= SETTLE - 1e-3)
    last = figures.samples[-1]
    span = last.t - first.t
    figures.pages = last.pages
    figures.window_pages = last.pages - first.pages
    figures.window_urls = last.offered - first.offered
    figures.rss_start, figures.rss_final = first.rss, last.rss
    figures.bytes_per_url = (last.rss - first.rss) / max(1, figures.window_urls)
    figures.us_per_link = (last.cpu - first.cpu) * 1e6 / max(1, figures.window_urls)
    figures.pages_per_s = figures.window_pages / span
    figures.main_cpu_share = (last.cpu - first.cpu) / span
    figures.server_cpu_share = server_cpu / span
    return output


def first_new_record(path: Path, base: int) -> bool:
    """Does `path` hold a whole line after offset `base` (the end of the last whole line before)?"""
    try:
        with open(path, "rb") as file:
            if file.seek(0, os.SEEK_END) <= base:
                return False
            file.seek(base)
            return b"\n" in file.read()
    except FileNotFoundError:
        return False


def resume(args: argparse.Namespace, work: Path, output: Path, figures: Figures) -> None:
    """Time `--resume` on OUT until its first new record; then stop it."""
    data = output.read_bytes()
    base = data.rfind(b"\n") + 1  # a torn last line is cut off by the resume
    del data
    command = crawl_command(args.python, work / "seeds.txt", output, resume=True)
    crawl = subprocess.Popen(command, cwd=args.cwd, stdout=subprocess.DEVNULL, start_new_session=True)
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.resume_cap:
            if first_new_record(output, base):
                figures.resume_s = time.monotonic() - started
                figures.resume_rss = rss_anon(crawl.pid)
                break
            if crawl.poll() is not None:
                raise SystemExit(f"the resumed crawl ended early (exit status {crawl.returncode})")
            time.sleep(POLL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(crawl.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            crawl.wait(15)
    finally:
        kill_group(crawl.pid)
        crawl.wait(10)


def mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MB"


def table(figures: Figures) -> str:
    resumed = (f"> {figures.resume_cap:g} s" if figures.resume_s is None
               else f"{figures.resume_s:.2f} s")  # fmt: skip
    rows = [
        ("window", f"t={SETTLE:g} s .. {figures.seconds:g} s, {figures.links} links per page"),
        ("pages done (end of window)", f"{figures.pages:,}"),
        ("pages / URLs discovered in window", f"{figures.window_pages:,} / {figures.window_urls:,}"),
        ("bytes per discovered URL", f"{figures.bytes_per_url:.0f}"),
        ("us per link (main CPU)", f"{figures.us_per_link:.1f}"),
        ("pages/s", f"{figures.pages_per_s:.0f}"),
        ("RssAnon at 5 s / final", f"{mb(figures.rss_start)} / {mb(figures.rss_final)}"),
        ("main process CPU (cores)", f"{figures.main_cpu_share:.2f}"),
        ("site's server CPU (cores)", f"{figures.server_cpu_share:.2f}"),
        (f"resume: first new record after {figures.pages:,}", resumed),
        ("resume: RssAnon then", mb(figures.resume_rss)),
        ("load average start / end", f"{figures.load_start} / {figures.load_end}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def benchmark(args: argparse.Namespace) -> None:
    figures = Figures(args.seconds, args.links, resume_cap=args.resume_cap, load_start=loadavg())
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scraper-wide-")))
        port, server_pgid = stack.enter_context(site(args.links, args.server_processes))
        output = window(args, work, port, server_pgid, figures)
        resume(args, work, output, figures)
    figures.load_end = loadavg()
    print(table(figures), flush=True)
    if args.json:
        shown = {k: v for k, v in asdict(figures).items() if k != "samples"}
        print(json.dumps(shown), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=("bench", "serve", "capacity"), default="bench")
    parser.add_argument("--seconds", type=float, default=60.0, help="the crawl's window (default 60)")
    parser.add_argument("--links", type=int, default=200, help="links per page (default 200)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line of figures")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs the crawl (default: this one)")
    parser.add_argument("--cwd", default=str(HERE.parent),
                        help="the folder the crawl runs in: its `scraper` package is crawled with "
                             "(default: this checkout)")  # fmt: skip
    parser.add_argument("--resume-cap", type=float, default=120.0,
                        help="give up waiting for the resume's first record after S s (default 120)")
    parser.add_argument("--server-processes", type=int, default=os.cpu_count() or 2,
                        help="processes serving the site (default: CPUs)")
    args = parser.parse_args()
    if args.command == "bench" and args.seconds <= SETTLE + SAMPLE:
        parser.error(f"--seconds must be over {SETTLE + SAMPLE:g} (the window starts at {SETTLE:g} s)")
    if args.command == "serve":
        serve(args.links, args.server_processes)
    elif args.command == "capacity":
        with site(args.links, args.server_processes) as (port, _):
            rate = capacity(port, min(args.seconds, 10.0), 8)
        print(f"site: {rate:.0f} pages/s ({args.server_processes} server processes, 8 keep-alive clients)")
    else:
        args.cwd = str(Path(args.cwd).resolve())
        benchmark(args)


if __name__ == "__main__":
    main()
