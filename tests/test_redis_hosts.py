"""The redis backend across machines: each worker in its own network namespace,
joined to this one by a veth pair, reaching a password-protected Redis and the
test site over it (SPEC 8). Needs root (`ip netns`); CI runs as root."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import read_jsonl, wait_until
from siteserver import SiteServer, build_site, expected_crawl

pytest.importorskip("redis", reason="pip install 'scraper[redis]'")
PASSWORD = "netns-secret"
SUBNET = "10.213"  # 10.213.<n>.1 on this side of veth n, 10.213.<n>.2 inside namespace n


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _netns_refused() -> str | None:
    if shutil.which("ip") is None or shutil.which("redis-server") is None:
        return "needs iproute2 and redis-server"
    probe = f"s13probe{os.getpid()}"
    result = _ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"ip netns is refused here: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


REFUSED = _netns_refused()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REFUSED is not None, reason=REFUSED or "")]


class Machines:
    """Network namespaces, each one a worker machine, torn down whatever happens."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.links: list[str] = []  # this side of each veth pair
        self.processes: list[subprocess.Popen[str]] = []

    def add(self) -> tuple[str, str]:
        """A new machine; (its namespace, the address of this side of its link)."""
        n = len(self.names) + 1
        name, here, there = f"s13-{os.getpid()}-{n}", f"v13h{os.getpid() % 10000}{n}", f"v13n{n}"
        _ip("netns", "add", name)
        self.names.append(name)
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", name)
        _ip("addr", "add", f"{SUBNET}.{n}.1/24", "dev", here)
        _ip("link", "set", here, "up")
        self.links.append(here)
        inside = [["addr", "add", f"{SUBNET}.{n}.2/24", "dev", there], ["link", "set", there, "up"],
                  ["link", "set", "lo", "up"], ["route", "add", "default", "via", f"{SUBNET}.{n}.1"]]
        for command in inside:
            _ip("netns", "exec", name, "ip", *command)
        return name, f"{SUBNET}.{n}.1"

    def run(self, name: str, *command: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(["ip", "netns", "exec", name, *command], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.communicate()
        for link in self.links:  # deletes both ends of the pair
            _ip("link", "del", link, check=False)
        for name in self.names:
            _ip("netns", "del", name, check=False)


@pytest.fixture
def machines() -> Iterator[Machines]:
    made = Machines()
    try:
        yield made
    finally:
        made.close()


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_on(tmp_path: Path) -> Iterator[Callable[[list[str]], int]]:
    """`redis_on(addresses)` starts a redis-server with a password on those addresses; its port."""
    started: list[subprocess.Popen[bytes]] = []

    def start(addresses: list[str]) -> int:
        port = _free_port(addresses[0])
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", *addresses, "--requirepass", PASSWORD,
             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        started.append(process)
        assert wait_until(lambda: _answers(addresses[0], port), 5)
        return port

    yield start
    for process in started:
        process.kill()
        process.wait(5)


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def test_workers_on_three_machines_crawl_once_and_leave(machines, redis_on, tmp_path) -> None:
    hosts = [machines.add() for _ in range(3)]
    port = redis_on([address for _, address in hosts])
    site = SiteServer(build_site(40), delay=0.05, host=hosts[0][1]).start()
    try:
        workers = [machines.run(name, sys.executable, "-m", "scraper", "worker",
                                f"redis://:{PASSWORD}@{address}:{port}", "-w", "1")
                   for name, address in hosts]  # fmt: skip
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(site.url("/") + "\n")
        env = dict(os.environ, SCRAPER_REDIS_URL=f"redis://:{PASSWORD}@{hosts[0][1]}:{port}")
        coordinator = subprocess.run(
            [sys.executable, "-m", "scraper", str(seeds), "--backend", "redis", "-w", "0", "--depth", "3",
             "-O", str(tmp_path / "out.jsonl")],
            env=env, capture_output=True, text=True, timeout=90)  # fmt: skip
        assert coordinator.returncode == 0, coordinator.stderr
        assert PASSWORD not in coordinator.stderr
        ended = time.monotonic()
        outputs = [worker.communicate(timeout=10) for worker in workers]
        assert time.monotonic() - ended < 3
        assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
        records = read_jsonl(tmp_path / "out.jsonl")
        counts = collections.Counter(record["url"] for record in records)
        assert set(counts) == set(expected_crawl(site, [site.url("/")], 3)), (coordinator.stderr, outputs)
        assert max(counts.values()) == 1
        assert len({record["worker"].split("/")[0] for record in records}) >= 2
        assert all(PASSWORD not in out + err for out, err in outputs)
    finally:
        site.close()


def test_a_worker_cut_off_is_taken_over(machines, redis_on, tmp_path) -> None:
    hosts = [machines.add() for _ in range(2)]
    port = redis_on([address for _, address in hosts])
    site = SiteServer(build_site(60), delay=0.2, host=hosts[1][1]).start()
    try:
        workers = [machines.run(name, sys.executable, "-m", "scraper", "worker",
                                f"redis://:{PASSWORD}@{address}:{port}", "-w", "1", "--concurrency", "4")
                   for name, address in hosts]  # fmt: skip
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(site.url("/") + "\n")
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "scraper", str(seeds), "--backend", "redis", "-w", "0", "--depth", "3",
             "--redis", f"redis://:{PASSWORD}@{hosts[1][1]}:{port}", "-O", str(tmp_path / "out.jsonl")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        machines.processes.append(coordinator)  # type: ignore[arg-type]
        assert wait_until(lambda: len(site.page_paths()) >= 8, 30)
        # The cable of machine 1 is pulled: its worker can reach neither Redis nor the site.
        _ip("netns", "exec", hosts[0][0], "ip", "link", "set", "v13n1", "down")
        _, stderr = coordinator.communicate(timeout=90)
        assert coordinator.returncode == 0, stderr
        assert "taking over" in stderr
        records = read_jsonl(tmp_path / "out.jsonl")
        counts = collections.Counter(record["url"] for record in records)
        assert set(counts) == set(expected_crawl(site, [site.url("/")], 3))
        assert max(counts.values()) == 1
        workers[0].send_signal(signal.SIGTERM)
    finally:
        site.close()

