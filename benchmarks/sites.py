"""The two benchmark sites: generated pages on disk, and a server that answers late.

    python benchmarks/sites.py generate DIR --pages N --kb K    write DIR/index.html, DIR/page/I.html
    python benchmarks/sites.py serve DIR PORT --delay-ms D     serve DIR on 127.0.0.1:PORT, D ms per answer

Every page links to its children in a tree of fan-out 6 (so a breadth-first
crawl from `/` reaches every page) and to 39 other pages chosen with a fixed
random seed, as a real site's navigation does; padding brings it to K KB.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from pathlib import Path

FANOUT = 6
OTHER_LINKS = 39


def path_of(page: int) -> str:
    return "/" if page == 0 else f"/page/{page}.html"


def page_html(page: int, pages: int, kb: int, rng: random.Random) -> str:
    children = [c for c in range(page * FANOUT + 1, page * FANOUT + FANOUT + 1) if c < pages]
    others = rng.sample(range(pages), min(OTHER_LINKS, pages))
    links = "\n".join(f'<li><a href="{path_of(p)}">page {p}</a></li>' for p in children + others)
    head = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Page {page}</title>"
            f'<meta name=description content="Benchmark page {page}"></head><body>'
            f"<h1>Page {page}</h1><ul>{links}</ul>")  # fmt: skip
    paragraph = "<p>" + " ".join(f"word{(page * 31 + i) % 997}" for i in range(60)) + "</p>\n"
    padding = paragraph * max(0, (kb * 1024 - len(head)) // len(paragraph))
    return head + padding + "</body></html>\n"


def generate(folder: Path, pages: int, kb: int) -> None:
    rng = random.Random(7)
    (folder / "page").mkdir(parents=True, exist_ok=True)
    (folder / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    for page in range(pages):
        target = folder / ("index.html" if page == 0 else f"page/{page}.html")
        target.write_text(page_html(page, pages, kb, rng), encoding="utf-8")


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, folder: Path,
                 delay: float) -> None:  # fmt: skip
    """HTTP/1.1 with keep-alive: GET only, each answer `delay` seconds late."""
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode("latin-1").split("?")[0]
            file = folder / ("index.html" if path == "/" else path.lstrip("/"))
            await asyncio.sleep(delay)
            ok = file.is_file() and folder in file.resolve().parents
            body = file.read_bytes() if ok else b"not found"
            kind = "text/plain" if path.endswith(".txt") else "text/html; charset=utf-8"
            writer.write(f"HTTP/1.1 {'200 OK' if ok else '404 Not Found'}\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


async def serve(folder: Path, port: int, delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: answer(r, w, folder.resolve(), delay),
                                        "127.0.0.1", port, backlog=1024)  # fmt: skip
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("generate")
    make.add_argument("folder", type=Path)
    make.add_argument("--pages", type=int, default=1000)
    make.add_argument("--kb", type=int, default=10)
    run = commands.add_parser("serve")
    run.add_argument("folder", type=Path)
    run.add_argument("port", type=int)
    run.add_argument("--delay-ms", type=float, default=100)
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.folder, args.pages, args.kb)
    else:
        asyncio.run(serve(args.folder, args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
