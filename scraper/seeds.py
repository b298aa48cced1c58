"""Pure seed-file parsing: one URL per line, with reported problems."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
