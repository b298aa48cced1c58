"""The option table: the command line is derived from CrawlConfig's declarations,
each kind refuses the same values in the library and on the command line, and
the messages name fields there and options here (issues 12 and 14)."""

from __future__ import annotations

import functools
import json
import math
import pickle
import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from scraper import cli
from scraper.backends import BACKEND_NAMES, BACKENDS, DEFAULT_BACKEND
from scraper.callbacks import callback_ref, resolve_callback
from scraper.config import DEFAULT_OUTPUT, OPTIONS, RULES, CrawlConfig, default_workers
from scraper.errors import UsageError
from scraper.options import OPTION, SettingError

# dests of the parser that are not crawl settings (they stay in cli.py)
CLI_ONLY = {"seeds", "compare", "demo", "bench_append", "quiet", "verbose"}
SETTINGS = list(OPTIONS)  # CrawlConfig's fields but backend_options, whose options its backends declare
BACKEND_SETTINGS = {(backend, name) for backend, entry in BACKENDS.items() for name in entry.options}
COOKIE_FILE = str(Path(__file__).resolve().parent / "cookies.txt")


def top_level_parse(record, tree):
    return {"seen": True}


class Holder:
    @staticmethod
    def static_parse(record, tree):
        return {}

    def method_parse(self, record, tree):
        return {}


def parse_args(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def cli_error(capsys, *argv: str) -> str:
    """The last stderr line of `scraper ARGV`, which must exit 2 before crawling."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("scraper: error: ")]
    assert len(errors) == 1 and stderr.rstrip("\n").splitlines()[-1] == errors[0], stderr
    if errors[0].endswith(HELP_HINT):  # an argument error: one line, no usage block (issue 22)
        assert stderr == errors[0] + "\n", stderr
    return errors[0].removeprefix("scraper: error: ").removesuffix(HELP_HINT)


HELP_HINT = "; see scraper --help"
ZERO_WORKERS = "0 only with a backend whose workers run elsewhere: --backend redis"


def library_error(**settings) -> str:
    with pytest.raises(SettingError) as error:
        CrawlConfig(**settings)
    assert "\n" not in str(error.value)
    return str(error.value)


# -- the parser is derived from the table ---------------------------------------------------


def test_every_setting_has_an_option_and_every_option_a_setting():
    dests = set(vars(parse_args())) - CLI_ONLY
    assert dests == set(SETTINGS) | {cli.backend_dest(backend, name) for backend, name in BACKEND_SETTINGS}
    assert {setting.name for setting in fields(CrawlConfig)} == {*SETTINGS, "backend_options"}


def test_each_setting_has_its_option_declared_with_flags_and_help():
    for setting in fields(CrawlConfig):
        if setting.name == "backend_options":
            continue
        spec = setting.metadata[OPTION]
        assert spec.flags and all(flag.startswith("-") for flag in spec.flags), setting.name
        assert f"--{setting.name.replace('_', '-')}" in spec.flags  # SPEC 5: fields follow the long options
        assert spec.help, setting.name


def test_parser_defaults_are_the_settings_defaults():
    parser = cli.build_parser()
    for setting in fields(CrawlConfig):
        default = parser.get_default(setting.name)
        if setting.default is MISSING:  # computed: the parser leaves it to CrawlConfig
            assert default is None, setting.name
        elif isinstance(setting.default, tuple):
            assert default == [] and setting.default == (), setting.name
        else:
            assert default == setting.default, setting.name
    assert cli.config_from_args(parse_args("seeds.txt"), output_default=None) == CrawlConfig()
    assert CrawlConfig().workers == default_workers()


def test_the_command_line_writes_to_the_default_output_and_the_library_to_none():
    assert cli.config_from_args(parse_args("seeds.txt")).output == DEFAULT_OUTPUT
    assert cli.config_from_args(parse_args("seeds.txt", "-O", "x.jsonl")).output is None
    assert CrawlConfig().output is None


# field -> (command-line text, the value it becomes); None: a flag
SAMPLES = {
    "output": ("a.jsonl", "a.jsonl"),
    "overwrite_output": ("b.jsonl", "b.jsonl"),
    "workers": ("3", 3),
    "backend": ("thread", "thread"),
    "concurrency": ("5", 5),
    "depth": ("2", 2),
    "max_pages": ("7", 7),
    "allow_domain": ("Example.ORG:8080", ("example.org",)),
    "timeout": ("2.5", 2.5),
    "retries": ("0", 0),
    "delay": ("0.25", 0.25),
    "per_host": ("2", 2),
    "max_bytes": ("100", 100),
    "user_agent": ("bot/1", "bot/1"),
    "ignore_robots": (None, True),
    "select": ("h = h1", (("h", "h1"),)),
    "resume": (None, True),
    "start_method": ("spawn", "spawn"),
    "parse": (f"{__name__}:top_level_parse", top_level_parse),
    "allow": ("/page/", ("/page/",)),
    "deny": (r"\.pdf$", (r"\.pdf$",)),
    "sitemaps": (None, True),
    "header": ("X-Token: abc", (("X-Token", "abc"),)),
    "cookie": ("sid=42", (("sid", "42"),)),
    "cookies": (COOKIE_FILE, COOKIE_FILE),
    "auth": ("user:pa:ss", "user:pa:ss"),
    "since": ("old.jsonl", "old.jsonl"),
    "warc": ("archive", "archive"),
}


@pytest.mark.parametrize("name", SETTINGS)
def test_each_flag_sets_its_setting(name):
    assert set(SAMPLES) == set(SETTINGS), "a new option needs a sample here"
    text, expected = SAMPLES[name]
    for flag in OPTIONS[name].flags:
        argv = ["seeds.txt", flag] if text is None else ["seeds.txt", flag, text]
        config = cli.config_from_args(parse_args(*argv))
        assert getattr(config, name) == expected, (flag, getattr(config, name))
        assert type(getattr(config, name)) is type(expected)


# backend, option -> (command-line text, the value it becomes)
BACKEND_SAMPLES = {
    ("redis", "redis"): ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("redis", "crawl_id"): ("nightly", "nightly"),
}


@pytest.mark.parametrize("backend, name", sorted(BACKEND_SETTINGS))
def test_each_backend_s_own_flag_sets_its_option(backend, name):
    assert set(BACKEND_SAMPLES) == BACKEND_SETTINGS, "a new backend option needs a sample here"
    text, expected = BACKEND_SAMPLES[backend, name]
    for flag in BACKENDS[backend].options[name].option.flags:
        config = cli.config_from_args(parse_args("seeds.txt", "--backend", backend, flag, text))
        assert config.backend_options[name] == expected
        assert CrawlConfig(backend=backend, **{name: text}).backend_options[name] == expected
    assert config.replace(depth=1).backend_options[name] == expected
    assert name not in config.replace(backend=DEFAULT_BACKEND).backend_options


def test_a_backend_s_options_have_their_defaults_and_belong_to_it_alone(capsys):
    assert CrawlConfig(backend="redis").backend_options == {"redis": None, "crawl_id": "default"}
    assert CrawlConfig().backend_options == {}
    message = "redis is an option of --backend redis, not of --backend process"
    with pytest.raises(SettingError, match=message):
        CrawlConfig(redis="redis://localhost")
    assert cli_error(capsys, "s.txt", "--redis", "redis://x") == message.replace("redis is", "--redis is")
    assert cli_error(capsys, "s.txt", "--backend", "thread", "--crawl-id", "default") == (
        "--crawl-id is an option of --backend redis, not of --backend thread")
    with pytest.raises(TypeError):
        CrawlConfig(no_such_option=1)


def test_repeatable_options_collect_every_value():
    config = cli.config_from_args(parse_args("s.txt", "--allow-domain", "a.org", "--allow-domain", "b.org",
                                             "--select", "t=title", "--select", "h=h1"))  # fmt: skip
    assert config.allow_domain == ("a.org", "b.org")
    assert config.select == (("t", "title"), ("h", "h1"))


def test_help_shows_every_option_its_metavar_and_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for spec in OPTIONS.values():
        for flag in spec.flags:
            assert flag + (f" {spec.metavar}" if spec.metavar else "") in text, flag
    assert "%(" not in text
    assert "--timeout S total deadline of one fetch in seconds (default: 10)" in text
    assert f"(default: number of CPUs, {default_workers()} here)" in text
    assert "--backend {" + ",".join(BACKEND_NAMES) + "}" in text


def test_help_ends_with_examples_and_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    epilog = capsys.readouterr().out.partition("\nexamples:\n")[2]
    assert epilog.count("\n  scraper ") >= 3
    statuses = epilog.partition("exit status:")[2].split()
    for status in ("0", "1", "2", "130", "143"):
        assert status in statuses


# -- the backend registry --------------------------------------------------------------------


def test_backend_choices_and_help_come_from_the_registry():
    parser = cli.build_parser()
    for name in BACKEND_NAMES:
        assert parser.parse_args(["--backend", name]).backend == name
        assert CrawlConfig(backend=name).backend == name
    assert all(entry.summary in OPTIONS["backend"].help for entry in BACKENDS.values())
    names = ", ".join(BACKEND_NAMES)
    assert library_error(backend="fibers") == f"backend must be one of {names}, got 'fibers'"


def test_a_backend_added_to_the_registry_is_an_option_and_a_valid_setting():
    source = Path(cli.__file__).parent
    probe = (  # a bare package: scraper/__init__.py would import config before the entry is added
        f"import sys, types\npackage = types.ModuleType('scraper'); package.__path__ = [{str(source)!r}]\n"
        "sys.modules['scraper'] = package\n"
        "import scraper.backends as b\n"
        "b.BACKENDS['fibers'] = b.Entry('nowhere:Fibers', 'green threads')\n"
        "b.BACKEND_NAMES = tuple(b.BACKENDS)\n"
        "from scraper.cli import build_parser, config_from_args\n"
        "import io, contextlib, json\n"
        "args = build_parser().parse_args(['s.txt', '--backend', 'fibers'])\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    build_parser().parse_args(['--help'])\n"
        "print(json.dumps([config_from_args(args).backend, 'green threads' in out.getvalue()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["fibers", True]


# -- each kind: the same values refused in the library and on the command line --------------

GOOD = [
    ("workers", 1, 1), ("workers", 7, 7),
    ("depth", 0, 0), ("max_pages", None, None), ("max_pages", 1, 1), ("concurrency", None, None),
    ("timeout", 1, 1.0), ("timeout", 0.5, 0.5), ("delay", 0, 0.0), ("delay", 2, 2.0),
    ("backend", "thread", "thread"), ("start_method", None, None), ("start_method", "spawn", "spawn"),
    ("user_agent", "bot", "bot"), ("ignore_robots", True, True), ("resume", False, False),
    ("output", Path("a.jsonl"), "a.jsonl"), ("overwrite_output", "b.jsonl", "b.jsonl"),
    ("allow_domain", "Ex.org", ("ex.org",)), ("allow_domain", ["a.org", "A.org."], ("a.org",)),
    ("select", "t=title", (("t", "title"),)),
    ("select", {"t": "title", "h": "h1"}, (("t", "title"), ("h", "h1"))),
    ("parse", None, None), ("parse", "json:dumps", json.dumps), ("parse", top_level_parse, top_level_parse),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "stored"), GOOD)
def test_good_value_is_stored_normalized(name, value, stored):
    config = CrawlConfig(**{name: value})
    assert getattr(config, name) == stored
    assert type(getattr(config, name)) is type(stored)


# (field, library value, its message; option, command-line text, its message)
BAD = [
    ("workers", 0, f"workers must be >= 1 ({ZERO_WORKERS})", "--workers", "0",
     f"-w/--workers must be >= 1 ({ZERO_WORKERS})"),
    ("workers", "2", "workers must be an integer >= 0, got '2'",
     "-w", "2.5", "-w/--workers must be an integer >= 0, got '2.5'"),
    ("workers", True, "workers must be an integer >= 0, got True", None, None, None),
    ("concurrency", 0, "concurrency must be an integer >= 1, got 0",
     "--concurrency", "0", "--concurrency must be an integer >= 1, got 0"),
    ("depth", -1, "depth must be an integer >= 0, got -1",
     "--depth", "x", "--depth must be an integer >= 0, got 'x'"),
    ("max_pages", False, "max_pages must be an integer >= 1, got False",
     "--max-pages", "0", "--max-pages must be an integer >= 1, got 0"),
    ("retries", 1.5, "retries must be an integer >= 0, got 1.5",
     "--retries", "-1", "--retries must be an integer >= 0, got -1"),
    ("per_host", 0, "per_host must be an integer >= 1, got 0",
     "--per-host", "0", "--per-host must be an integer >= 1, got 0"),
    ("max_bytes", 2.0, "max_bytes must be an integer >= 1, got 2.0",
     "--max-bytes", "10MB", "--max-bytes must be an integer >= 1, got '10MB'"),
    ("timeout", 0, "timeout must be a number of seconds > 0, got 0",
     "--timeout", "-1", "--timeout must be a number of seconds > 0, got -1.0"),
    ("timeout", math.inf, "timeout must be a number of seconds > 0, got inf",
     "--timeout", "nan", "--timeout must be a number of seconds > 0, got nan"),
    ("delay", "soon", "delay must be a number of seconds >= 0, got 'soon'",
     "--delay", "-0.5", "--delay must be a number of seconds >= 0, got -0.5"),
    ("backend", "", f"backend must be one of {', '.join(BACKEND_NAMES)}, got ''", None, None, None),
    ("start_method", "fork2", "start_method must be one of fork, spawn, forkserver, got 'fork2'",
     None, None, None),
    ("user_agent", " ", "user_agent must not be empty",
     "--user-agent", "", "--user-agent must not be empty"),
    ("user_agent", None, "user_agent must be a string, got None", None, None, None),
    ("ignore_robots", 1, "ignore_robots must be True or False, got 1", None, None, None),
    ("output", "", "output must be a file path, got ''",
     "-o", "", "-o/--output must be a file path, got ''"),
    ("overwrite_output", 3, "overwrite_output must be a file path, got 3",
     "-O", "", "-O/--overwrite-output must be a file path, got ''"),
    ("allow_domain", ["ok.org", "a b"], "allow_domain must be a host name, got 'a b'",
     "--allow-domain", "a/b", "--allow-domain must be a host name, got 'a/b'"),
    ("allow_domain", b"a.org", "allow_domain must be host names, got b'a.org'", None, None, None),
    ("select", ["title"], "select must look like NAME=CSS, got 'title'",
     "--select", "=h1", "--select must look like NAME=CSS, got '=h1'"),
    ("select", [3], "select must be NAME=CSS strings or (name, css) pairs, got 3", None, None, None),
    ("select", {"x": "p["}, "select has a bad selector for 'x': 'p['",
     "--select", "x=a[[", "--select has a bad selector for 'x': 'a[['"),
    ("select", ["a=h1", ("a", "h2")], "select names the field 'a' twice", None, None, None),
    # issue 15: parsel's pseudo-elements and XPath, each checked before the crawl
    ("select", {"x": "a::href"}, "select has a bad selector for 'x': 'a::href' (unknown pseudo-element",
     "--select", "x=a::attr(a b)", "--select has a bad selector for 'x': 'a::attr(a b)' (::attr()"),
    ("select", {"x": "xpath://a["}, "select has a bad selector for 'x': 'xpath://a['",
     "--select", "x=xpath:", "--select has a bad selector for 'x': 'xpath:' (empty XPath)"),
    ("allow", ["ok", "a("], "allow has a bad regular expression 'a(': missing ),",
     "--allow", "[z-a]", "--allow has a bad regular expression '[z-a]': bad character range"),
    ("deny", 3, "deny must be regular expressions, got 3",
     "--deny", "*x", "--deny has a bad regular expression '*x': nothing to repeat"),
    ("header", ["X-Secret"], "header must look like 'Name: value'",
     "-H", "Bad Name: v", "-H/--header must look like 'Name: value' (name 'Bad Name')"),
    ("cookie", "sid", "cookie must look like name=value",
     "--cookie", "=v", "--cookie must look like name=value"),
    ("cookies", "/no/such/cookies.txt", "cookies cannot read cookies from '/no/such/cookies.txt'",
     "--cookies", __file__, "--cookies cannot read cookies from"),
    ("auth", "nopassword", "auth must look like USER:PASS",
     "--auth", ":hunter2", "--auth must look like USER:PASS"),
    ("parse", 42, "parse must be a function or 'module:function', got 42", None, None, None),
    ("parse", "json.dumps", "parse must look like MODULE:FUNCTION, got 'json.dumps'",
     "--parse", "json dumps", "--parse must look like MODULE:FUNCTION, got 'json dumps'"),
    ("parse", "no_such_module_xyz:f", "parse cannot import module 'no_such_module_xyz' "
     "(No module named 'no_such_module_xyz')", "--parse", "no_such_module_xyz.sub:f",
     "--parse cannot import module 'no_such_module_xyz.sub' (No module named 'no_such_module_xyz')"),
    ("parse", "json:no_such", "parse names nothing: module 'json' has no 'no_such'",
     "--parse", "os.path:nope.deeper", "--parse names nothing: module 'os.path' has no 'nope.deeper'"),
    ("parse", "os:sep", "parse must name a function, got 'os:sep' of type str",
     "--parse", "json:__doc__", "--parse must name a function, got 'json:__doc__' of type str"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "message"), [(b[0], b[1], b[2]) for b in BAD])
def test_bad_value_in_the_library_names_the_field(name, value, message):
    assert library_error(**{name: value}).startswith(message)


def test_secrets_stay_out_of_the_config_repr_and_errors(capsys):
    config = CrawlConfig(auth="user:hunter2", header=["Authorization: Bearer tok3n"], cookie=["sid=c00kie"])
    for secret in ("hunter2", "tok3n", "c00kie"):
        assert secret not in repr(config)
    assert "hunter2" not in cli_error(capsys, "s.txt", "--auth", "hunter2")
    assert "tok3n" not in cli_error(capsys, "s.txt", "-H", "Authorization tok3n")
    assert "hunter2" not in cli.build_parser().format_help()


@pytest.mark.parametrize(("flag", "text", "message"), [(b[3], b[4], b[5]) for b in BAD if b[3]])
def test_bad_value_on_the_command_line_names_the_option(capsys, flag, text, message):
    assert cli_error(capsys, "seeds-that-are-never-read.txt", flag, text).startswith(message)


def test_bad_values_are_usage_errors():
    with pytest.raises(UsageError):
        CrawlConfig(depth=-1)
    assert issubclass(SettingError, UsageError)


# -- settings that contradict each other ----------------------------------------------------


def test_rules_name_fields_in_the_library():
    assert library_error(resume=True, overwrite_output="b.jsonl") == (
        "resume continues its output: give it with output, not overwrite_output")
    assert library_error(output="a", overwrite_output="b") == "give output or overwrite_output, not both"
    assert library_error(resume=True) == "resume needs the output file of the crawl (output)"
    assert library_error(since="a", overwrite_output="a") == (
        "since is read while the crawl runs: it cannot be the file overwrite_output empties")
    assert library_error(resume=True, output="-") == "resume reads its output again: give output a file"
    assert library_error(workers=0) == f"workers must be >= 1 ({ZERO_WORKERS})"
    assert len(RULES) == 6


def test_rules_name_options_on_the_command_line(capsys):
    message = cli_error(capsys, "s.txt", "--resume", "-O", "b.jsonl")
    assert message == "--resume continues its output: give it with -o/--output, not -O/--overwrite-output"


def test_setting_error_words_fields_as_asked():
    error = SettingError.about("user_agent", "must not be {empty}")
    assert str(error) == "user_agent must not be {empty}"
    assert error.worded(str.upper) == "USER_AGENT must not be {empty}"


NOT_WITH_RESUME = "--resume continues one crawl: --compare and --demo run new ones"
CONTRADICTIONS = [
    (["s.txt", "--demo"], "--demo crawls a site of its own: give it no SEEDS"),
    (["--demo", "--compare"], "--demo already compares the backends: give --demo or --compare"),
    (["s.txt", "--compare", "--resume"], NOT_WITH_RESUME),
    (["--demo", "--resume", "-o", "x.jsonl"], NOT_WITH_RESUME),
    (["s.txt", "--select", "a=h1", "--select", "b=h2", "--select", "a = p"],
     "--select names the field 'a' twice"),
    (["s.txt", "--resume", "-o", "-"], "--resume reads its output again: give -o/--output a file"),
]


@pytest.mark.parametrize(("argv", "message"), CONTRADICTIONS, ids=[" ".join(a) for a, _ in CONTRADICTIONS])
def test_contradicting_options_are_refused(capsys, argv, message):
    assert cli_error(capsys, *argv) == message


# -- parse callbacks by reference -----------------------------------------------------------


def test_resolve_callback_finds_functions_and_methods():
    assert resolve_callback("json:dumps") is json.dumps
    assert resolve_callback("os.path:join") is __import__("os").path.join
    assert resolve_callback(f"{__name__}:Holder.static_parse") is Holder.static_parse


def test_parse_ref_of_a_function_and_of_a_reference():
    assert CrawlConfig().parse_ref is None
    assert CrawlConfig(parse=top_level_parse).parse_ref == f"{__name__}:top_level_parse"
    by_name = CrawlConfig(parse=f"{__name__}:top_level_parse")
    assert by_name.parse is top_level_parse
    assert by_name == CrawlConfig(parse=top_level_parse)
    assert CrawlConfig(parse="json:dumps").parse_ref == "json:dumps"


def test_a_config_with_a_callback_pickles_and_replaces():
    config = CrawlConfig(parse=f"{__name__}:top_level_parse", backend="thread")
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.replace(depth=1).parse is top_level_parse


def nested_maker():
    def nested(record, tree):
        return {}

    return nested


@pytest.mark.parametrize(
    ("callback", "shown"),
    [
        (lambda record, tree: {}, "<lambda>"),
        (nested_maker(), "nested_maker.<locals>.nested"),
        (functools.partial(top_level_parse, {}), "functools.partial"),
        (Holder().method_parse, "Holder.method_parse"),
    ],
    ids=["lambda", "nested", "partial", "bound-method"],
)
def test_callbacks_workers_cannot_import_are_refused_in_one_line(callback, shown):
    message = library_error(parse=callback)
    assert message.startswith("parse must be a top-level function of a module, which workers import")
    assert "not a lambda, a nested function or a functools.partial" in message
    assert shown in message
    with pytest.raises(ValueError, match="import by its name"):
        callback_ref(callback)


def test_a_module_that_fails_on_import_is_named_with_its_reason(tmp_path, monkeypatch):
    (tmp_path / "broken_parse_mod.py").write_text("raise RuntimeError('no config file\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert library_error(parse="broken_parse_mod:f") == (
        "parse cannot import module 'broken_parse_mod' (RuntimeError: no config file)")


def test_parse_module_is_found_in_the_current_folder_without_python_m(tmp_path, monkeypatch):
    """The `scraper` command (unlike `python -m`) has no current folder on sys.path."""
    (tmp_path / "cwd_parse_mod.py").write_text("def extract(record, tree):\n    return {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    parser = cli.build_parser()
    config = cli.checked_config(parser, parser.parse_args(["s.txt", "--parse", "cwd_parse_mod:extract"]))
    assert config.parse_ref == "cwd_parse_mod:extract"
    assert sys.path[-1] == str(tmp_path)  # appended: it shadows no installed module
