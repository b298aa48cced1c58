"""The layering of the package, read from the code: which module may import which
third-party library, and which scraper modules may import each other.

Every `import` statement counts, wherever it is (module level, inside a function,
under `if TYPE_CHECKING:`), and so do `importlib.import_module("name")` and
`__import__("name")` calls with a constant name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "scraper"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

# library -> the only modules (file stems) that may import it
OWNERS = {
    "requests": {"download"},
    "urllib3": {"download", "deadline"},  # deadline: the connections it watches
    "lxml": {"parse"},
    "cssselect": {"parse"},
    "bs4": {"parse"},
    "charset_normalizer": set(),  # bs4 uses it
    "protego": {"robots"},
    "w3lib": {"urls", "parse"},  # parse: w3lib.encoding reads <meta> charsets
    "tqdm": {"cli"},
    "matplotlib": {"compare"},
    "multiprocessing": {"backend", "demo", "bench"},
    # parse: a thread-local parser; deadline: the watchdog thread
    "threading": {"backend", "demo", "parse", "deadline"},
}


def modules() -> dict[str, ast.Module]:
    """stem -> syntax tree of every scraper/*.py."""
    found = {
        path.stem: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in SOURCE.glob("*.py")
    }
    assert {"backend", "fetcher", "crawl", "scheduler", "aggregator", "download", "parse"} <= set(found)
    return found


MODULES = modules()


def _constant_name(call: ast.Call) -> str | None:
    """The module name of `importlib.import_module("x")` / `__import__("x")`, if constant."""
    function = call.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports(tree: ast.Module) -> Iterator[tuple[int, str, str | None]]:
    """(line, absolute dotted name or "." + relative name, imported name) of every import.

    `import a.b` -> ("a.b", None); `from a import b` -> ("a", "b");
    `from . import b` -> (".", "b"); `from .x import b` -> (".x", "b").
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            for alias in node.names:
                yield node.lineno, base, alias.name
        elif isinstance(node, ast.Call) and (name := _constant_name(node)):
            yield node.lineno, name, None


def external_top_level(tree: ast.Module) -> dict[str, list[int]]:
    """Top-level name of every non-relative import -> lines."""
    found: dict[str, list[int]] = {}
    for line, base, _ in imports(tree):
        if not base.startswith("."):
            found.setdefault(base.split(".")[0], []).append(line)
    return found


def internal_edges(stem: str, tree: ast.Module) -> set[str]:
    """The scraper modules (stems; "__init__" for the package itself) that `stem` imports."""
    edges = set()
    for _, base, name in imports(tree):
        if base.startswith(".."):
            raise AssertionError(f"{stem}.py: import from above the package: {base}")
        if base.startswith("."):
            module = base[1:]
        elif base == PACKAGE or base.startswith(PACKAGE + "."):
            module = base[len(PACKAGE) + 1 :]
        else:
            continue
        if module:
            edges.add(module.split(".")[0])
        elif name in MODULES:  # `from . import errors`: the submodule
            edges.add(name)
        else:  # `from . import crawl` where crawl is a name of __init__
            edges.add("__init__")
    edges.discard(stem)
    return edges


GRAPH = {stem: internal_edges(stem, tree) for stem, tree in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


# -- (a) every third-party library in its one module ------------------------------------


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_library_is_imported_only_by_its_owner(library):
    importers = {
        f"{stem}.py:{lines}"
        for stem, tree in MODULES.items()
        if (lines := external_top_level(tree).get(library)) and stem not in OWNERS[library]
    }
    assert not importers, f"{library} may be imported only in {sorted(OWNERS[library])}, also in {importers}"


def test_the_walk_sees_the_owners_imports():
    """Guards the test itself: it must see the imports it polices, the lazy one included."""
    seen = {stem: set(external_top_level(tree)) for stem, tree in MODULES.items()}
    for stem, library in [("download", "requests"), ("parse", "lxml"), ("robots", "protego"),
                          ("cli", "tqdm"), ("compare", "matplotlib"), ("backend", "multiprocessing"),
                          ("backend", "threading")]:  # fmt: skip
        assert library in seen[stem], f"{library} not seen in {stem}.py"


def test_the_import_walk_sees_every_kind_of_import():
    tree = ast.parse(
        "import a.b\nfrom c import d\nfrom . import errors\nfrom .x.y import z\n"
        "def f():\n    import lazy\n    importlib.import_module('dyn')\n    __import__('old')\n"
        "if TYPE_CHECKING:\n    from scraper.crawl import Crawl\n"
    )
    assert set(external_top_level(tree)) == {"a", "c", "lazy", "dyn", "old", "scraper"}
    assert internal_edges("probe", tree) == {"errors", "x", "crawl"}


# -- (b) no cycles among scraper's modules --------------------------------------------------


def test_internal_imports_have_no_cycle():
    assert find_cycle(GRAPH) is None, f"import cycle: {' -> '.join(find_cycle(GRAPH) or [])}"


def test_find_cycle_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


# -- (c) the worker mechanism and the work stay apart ----------------------------------------


def test_backend_and_fetcher_do_not_import_each_other():
    assert "fetcher" not in GRAPH["backend"], "backend.py imports fetcher"
    assert "backend" not in GRAPH["fetcher"], "fetcher.py imports backend"


# -- (d) one module wires the scheduler to the aggregator -------------------------------------


def test_only_crawl_imports_both_scheduler_and_aggregator():
    both = sorted(stem for stem, edges in GRAPH.items() if {"scheduler", "aggregator"} <= edges)
    assert both == ["crawl"], f"modules importing both scheduler and aggregator: {both}"
