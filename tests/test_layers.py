"""The layering of the package, read from the code: which module may import which
third-party library, and which scraper modules may import each other.

Every `import` statement counts, wherever it is (module level, inside a function,
under `if TYPE_CHECKING:`), and so do `importlib.import_module("name")` and
`__import__("name")` calls with a constant name.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scraper.backends import BACKENDS

PACKAGE = "scraper"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

# library -> the only modules (file stems) that may import it
OWNERS = {
    # the fetch: download, the Session it runs over (session), what its exceptions mean (failures)
    "requests": {"download", "session", "failures"},
    "urllib3": {"download", "session", "failures", "deadline"},  # deadline: the connections it watches
    "lxml": {"parse"},
    "cssselect": {"selects"},  # the --select syntax; parse compiles its XPath with lxml
    "bs4": {"parse"},
    "charset_normalizer": set(),  # bs4 uses it
    "protego": {"robots"},
    "w3lib": {"urls", "parse"},  # parse: w3lib.encoding reads <meta> charsets
    "tqdm": {"cli"},
    "warcio": {"warc"},  # --warc: written in the worker, beside the fetch
    "matplotlib": {"compare"},
    "multiprocessing": {"backends.local", "backends.process", "backends.redis", "remote", "demo", "bench"},
    "redis": {"backends.streams"},
    "numpy": {"numeric"},  # the seen-set's runs and a page's links, vectorized (imported on first use)
    "sqlite3": {"store"},  # the frontier on disk
    # worker: the host loop's fetch threads; parse: a thread-local parser; deadline: the watchdog
    # thread; warc: the fetch threads share a file; seen: the Bloom filter is rebuilt in a thread;
    # numeric: numpy imported while the first pages are fetched; crawl: joins that import
    "threading": {"worker", "backends.thread", "backends.redis_worker", "remote", "demo", "parse",
                  "deadline", "warc", "seen", "numeric", "crawl"},
}
SUBPACKAGES = ("backends",)


def module_name(path: Path) -> str:
    """`crawl` for scraper/crawl.py, `backends.process` for scraper/backends/process.py,
    `backends` for scraper/backends/__init__.py."""
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def modules() -> dict[str, ast.Module]:
    """name -> syntax tree of every module of the package, subpackages included."""
    paths = [*SOURCE.glob("*.py"), *(path for sub in SUBPACKAGES for path in (SOURCE / sub).glob("*.py"))]
    found = {module_name(path): ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in paths}
    assert {"backends", "backends.base", "backends.process", "backends.thread", "fetcher", "crawl",
            "scheduler", "aggregator", "download", "parse"} <= set(found)  # fmt: skip
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


def _package_of(stem: str) -> list[str]:
    """The package path a module's relative imports start from."""
    parts = stem.split(".")
    if parts[0] in SUBPACKAGES:
        return parts if len(parts) == 1 else parts[:-1]
    return []


def _node(module: str) -> str:
    """The graph node of a dotted module: `backends.process` stays, `urls.x` is `urls`."""
    parts = module.split(".")
    if parts[0] in SUBPACKAGES and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def internal_edges(stem: str, tree: ast.Module) -> set[str]:
    """The scraper modules (dotted names; "__init__" for the package itself) that `stem` imports."""
    edges = set()
    for _, base, name in imports(tree):
        if base.startswith("."):
            level = len(base) - len(base.lstrip("."))
            package = _package_of(stem)
            if level - 1 > len(package):
                raise AssertionError(f"{stem}.py: import from above the package: {base}")
            module = ".".join([*package[: len(package) - (level - 1)], *filter(None, [base[level:]])])
        elif base == PACKAGE or base.startswith(PACKAGE + "."):
            module = base[len(PACKAGE) + 1 :]
        else:
            continue
        if module and not (name and f"{module}.{name}" in MODULES):
            edges.add(_node(module))
        elif name and (f"{module}.{name}" if module else name) in MODULES:  # `from . import errors`
            edges.add(f"{module}.{name}" if module else name)
        else:  # `from . import crawl` where crawl is a name of __init__
            edges.add(module or "__init__")
    edges.discard(stem)
    return edges


def _named(target: str) -> str:
    """The graph node of a registry's "scraper.module:name"."""
    return _node(target.partition(":")[0].removeprefix(PACKAGE + "."))


GRAPH = {stem: internal_edges(stem, tree) for stem, tree in MODULES.items()}
# The registry imports each backend by its name in a table (importlib, no import
# statement): those are edges too, or a backend importing config.py (which imports
# the registry) would close a cycle nobody sees. A backend's commands and demo are
# programs of their own that only the command line loads (cli.main): its edges.
GRAPH["backends"] |= {_named(entry.target) for entry in BACKENDS.values()}
GRAPH["cli"] |= {_named(target) for entry in BACKENDS.values()
                 for target in (entry.command_main, entry.demo) if target}  # fmt: skip


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
    for stem, library in [("download", "requests"), ("session", "urllib3"), ("failures", "requests"),
                          ("parse", "lxml"), ("robots", "protego"), ("cli", "tqdm"),
                          ("compare", "matplotlib"), ("backends.process", "multiprocessing"),
                          ("backends.thread", "threading"), ("worker", "threading")]:  # fmt: skip
        assert library in seen[stem], f"{library} not seen in {stem}.py"


def test_the_import_walk_sees_every_kind_of_import():
    tree = ast.parse(
        "import a.b\nfrom c import d\nfrom . import errors\nfrom .x.y import z\n"
        "def f():\n    import lazy\n    importlib.import_module('dyn')\n    __import__('old')\n"
        "if TYPE_CHECKING:\n    from scraper.crawl import Crawl\n"
    )
    assert set(external_top_level(tree)) == {"a", "c", "lazy", "dyn", "old", "scraper"}
    assert internal_edges("probe", tree) == {"errors", "x", "crawl"}
    inside = ast.parse("from ..fetcher import worker_main\nfrom .base import Failure\n"
                       "from .. import errors\n")
    assert internal_edges("backends.process", inside) == {"fetcher", "backends.base", "errors"}


# -- (b) no cycles among scraper's modules --------------------------------------------------


def test_the_registry_s_backends_are_edges_of_the_graph():
    assert {"backends.process", "backends.thread", "backends.redis"} <= GRAPH["backends"]
    assert {"remote", "redis_demo"} <= GRAPH["cli"]


def test_internal_imports_have_no_cycle():
    assert find_cycle(GRAPH) is None, f"import cycle: {' -> '.join(find_cycle(GRAPH) or [])}"


def test_find_cycle_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


# -- (c) the worker mechanism and the work stay apart ----------------------------------------


def test_the_worker_loop_knows_no_transport():
    """fetcher.py runs over the ports of backends/base.py, never over one backend."""
    transports = {stem for stem in MODULES if stem.startswith("backends") and stem != "backends.base"}
    assert not GRAPH["fetcher"] & transports, f"fetcher.py imports {GRAPH['fetcher'] & transports}"


def test_the_host_loop_knows_no_backend():
    """worker.py runs under the backends that start processes of fetch threads, over
    their Source, and over the fetch loop: crawl -> backends -> worker -> fetcher."""
    transports = {stem for stem in MODULES if stem.startswith("backends") and stem != "backends.base"}
    assert not GRAPH["worker"] & transports, f"worker.py imports {GRAPH['worker'] & transports}"
    assert "fetcher" in GRAPH["worker"]
    hosts = {stem for stem, edges in GRAPH.items() if "worker" in edges}
    assert hosts == {"backends.process", "backends.redis_worker"}, hosts


def test_only_the_registry_and_the_backends_name_a_backend():
    """A backend is chosen in one place: backends/__init__.py (and the backends themselves)."""
    implementations = {_named(entry.target) for entry in BACKENDS.values()}
    named = {stem for stem, edges in GRAPH.items() if edges & implementations}
    assert named <= {stem for stem in GRAPH if stem.split(".")[0] == "backends"}, named
    assert "backends" in named


def code_strings(tree: ast.Module) -> set[str]:
    """The string constants of a module's code (its docstrings left out: examples may name anything)."""
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, documented) and isinstance(node.body[0], ast.Expr)}  # fmt: skip
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_the_command_line_and_the_settings_name_no_backend():
    """A backend's options, commands, demo and rules come from its registry entry."""
    for stem in ("cli", "config"):
        named = sorted(text for text in code_strings(MODULES[stem])
                       if text in BACKENDS or "redis" in text.lower())  # fmt: skip
        assert not named, f"{stem}.py names a backend: {named}"
    assert "redis" in code_strings(MODULES["backends"])  # the test sees what it looks for


def test_every_backend_module_is_in_the_graph():
    on_disk = {module_name(path) for path in (SOURCE / "backends").glob("*.py")}
    assert on_disk <= set(GRAPH) and all(GRAPH[stem] is not None for stem in on_disk)
    reached = set().union(*GRAPH.values())
    assert on_disk - {"backends"} <= reached, f"backend modules nothing imports: {on_disk - reached}"


# -- (d) one module wires the scheduler to the aggregator -------------------------------------


def test_only_crawl_imports_both_scheduler_and_aggregator():
    both = sorted(stem for stem, edges in GRAPH.items() if {"scheduler", "aggregator"} <= edges)
    assert both == ["crawl"], f"modules importing both scheduler and aggregator: {both}"


# -- (e) the settings stay pure: workers and other machines import them -----------------------

HEAVY = ("lxml", "requests", "multiprocessing", "scraper.parse", "scraper.download", "scraper.session",
         "scraper.failures")


def modules_after(code: str, package_init: bool = False) -> set[str]:
    """sys.modules after running `code` in a fresh interpreter.

    Without `package_init`, scraper/__init__.py is skipped (a bare package stands
    in for it), so that only the imports of the modules named in `code` count.
    """
    bare = "" if package_init else (
        "import sys, types\n"
        f"package = types.ModuleType('scraper'); package.__path__ = [{str(SOURCE)!r}]\n"
        "sys.modules['scraper'] = package\n"
    )  # fmt: skip
    probe = f"{bare}{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def test_config_imports_no_lxml_requests_or_multiprocessing():
    loaded = modules_after("import scraper.config")
    assert "scraper.config" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "cssselect" not in loaded  # imported when a --select is checked, not before


def test_checking_select_and_parse_stays_pure():
    loaded = modules_after(
        "from scraper.config import CrawlConfig\n"
        "CrawlConfig(select=['h=h1'], parse='json:dumps', backend='thread', allow_domain='a.org')"
    )
    assert "cssselect" in loaded  # the probe did check a selector
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_purity_probe_sees_a_heavy_import():
    """Guards the probe itself: the parser does import lxml."""
    assert "lxml" in modules_after("import scraper.parse")


def test_numpy_is_imported_by_the_crawl_s_main_process_only_and_late():
    """Workers, `scraper worker` and --help never import numpy (60-120 ms, 15 MB)."""
    assert "numpy" not in modules_after("import scraper, scraper.cli, scraper.fetcher, scraper.remote\n"
                                        "import scraper.backends.process, scraper.frontier, scraper.seen",
                                        package_init=True)  # fmt: skip
    used = "from scraper.seen import SeenSet, as_fingerprints as f\nSeenSet(None).add_new(f(b'x' * 8))"
    assert "numpy" in modules_after(used)  # imported by its first use


@pytest.mark.parametrize("chosen", [None, "2"])
def test_numpy_loads_one_blas_thread_and_leaves_the_environment_as_it_was(chosen):
    code = ("import os, threading\nfrom scraper.numeric import np\nnp.zeros(1)\n"
            "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')))")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if chosen:
        env["OPENBLAS_NUM_THREADS"] = chosen
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    variable, threads = done.stdout.split()
    assert variable == str(chosen)  # the user's choice kept, ours taken back
    if chosen is None:
        assert int(threads) == 1  # no BLAS thread beside the main one


def test_importing_scraper_config_through_the_package_stays_pure():
    # The crawl runs workers through the ports: it needs neither lxml nor requests itself.
    assert not modules_after("import scraper.config", package_init=True) & set(HEAVY)
