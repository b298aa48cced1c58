"""Pure seed-file parsing: one URL per line, with reported problems."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import SeedFileError
from .urls import canonicalize, is_http_url, wire_url


@dataclass(frozen=True)
class SeedProblem:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


def parse_seeds(lines: Iterable[str]) -> tuple[list[str], list[SeedProblem]]:
    """Seed URLs in file order, and the bad lines.

    Whitespace is stripped; blank lines and `#` comments are ignored. A seed
    is kept as written (made safe for the wire, see urls.wire_url), since it
    is requested so; two seeds with the same canonical form are one.
    """
    seeds: list[str] = []
    seen: set[str] = set()
    problems: list[SeedProblem] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if not is_http_url(text):
            problems.append(SeedProblem(number, text, "not an absolute http(s) URL"))
            continue
        try:
            key, url = canonicalize(text), wire_url(text)
        except ValueError as exc:
            problems.append(SeedProblem(number, text, f"invalid URL ({exc})"))
            continue
        if key not in seen:
            seen.add(key)
            seeds.append(url)
    return seeds, problems


SHOWN_PROBLEMS = 5  # bad lines reported one by one; the rest are counted


def seed_lines(data: bytes, name: str) -> list[str]:
    """The lines of a seed file's bytes; SeedFileError if it is not text
    (NUL bytes, or not UTF-8), so that a binary file gives one line, not thousands."""
    if b"\0" in data:
        raise SeedFileError(f"{name} is not a text file of URLs (it holds NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedFileError(
            f"{name} is not a text file of URLs (not UTF-8 at byte {exc.start})"
        ) from None
    return text.splitlines()


def problem_lines(problems: list[SeedProblem], name: str) -> list[str]:
    """What to print about the bad lines: the first few, then how many more."""
    shown = [f"{name}: skipped {problem}" for problem in problems[:SHOWN_PROBLEMS]]
    rest = len(problems) - SHOWN_PROBLEMS
    if rest > 0:
        lines = "1 more line" if rest == 1 else f"{rest} more lines"
        shown.append(f"{name}: skipped {lines} with no valid seed URL")
    return shown
