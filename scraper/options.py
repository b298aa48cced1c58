"""The parts of the option table: an option (flags, help, kind) and the kinds of values.

`config.CrawlConfig` declares each setting once with `option(...)`; the command
line (`cli.build_parser`), the defaults and the validation are derived from
that one declaration. A kind says what an option takes twice over: `read` is
argparse's `type=` (command-line text -> value) and `check` validates a value
given either way, so both paths refuse the same values with the same words.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .callbacks import callback_ref, resolve_callback
from .cookies import CookieError, load_cookie_file
from .errors import UsageError
from .selects import is_xpath, selector_xpath, split_select

OPTION = "option"  # the key of an Option in a dataclass field's metadata


class UsageParser(argparse.ArgumentParser):
    """argparse as SPEC 3 wants a usage error: one line and exit 2 (no usage block),
    and no abbreviated options (a typo such as --dept must not become --depth)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "allow_abbrev": False})

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


class SettingError(UsageError):
    """A bad setting. The message names fields (`user_agent must not be empty`);
    `worded()` names them otherwise, e.g. as command-line options."""

    def __init__(self, template: str) -> None:
        # `template` names fields in braces: "{resume} needs the file of {output}"
        self.template = template
        super().__init__(self.worded(str))

    @classmethod
    def about(cls, name: str, problem: str) -> SettingError:
        """`name` followed by `problem` ("must not be empty")."""
        return cls("{" + name + "} " + problem.replace("{", "{{").replace("}", "}}"))

    def worded(self, name_of: Callable[[str], str]) -> str:
        """The message with every field named by `name_of(field)`."""
        return self.template.format_map(_Names(name_of))


class _Names(dict[str, str]):
    def __init__(self, name_of: Callable[[str], str]) -> None:
        super().__init__()
        self.name_of = name_of

    def __missing__(self, key: str) -> str:
        return self.name_of(key)


class Kind:
    """What an option takes. Subclasses define `check` (value -> the setting,
    normalized; ValueError saying what is wrong) and may define `read`."""

    action = "store"  # argparse's: "append" for a repeatable option, "store_true" for a flag
    choices: tuple[str, ...] | None = None

    def read(self, text: str) -> Any:
        """Command-line text as a value for `check` (argparse's `type=`). Text that
        does not convert is passed on as it is, for `check` to refuse by name."""
        return text

    def check(self, value: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Kind):
    """An integer, or a finite number of seconds (stored as a float), with a lower bound."""

    integer: bool
    minimum: float
    strict: bool = False  # > minimum rather than >=

    @property
    def expected(self) -> str:
        bound = f"{'>' if self.strict else '>='} {self.minimum:g}"
        return f"an integer {bound}" if self.integer else f"a number of seconds {bound}"

    def read(self, text: str) -> Any:
        try:
            return int(text) if self.integer else float(text)
        except ValueError:
            return text

    def check(self, value: Any) -> int | float:
        kinds = int if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            raise ValueError(f"must be {self.expected}, got {value!r}")
        if value < self.minimum or (self.strict and value == self.minimum):
            raise ValueError(f"must be {self.expected}, got {value!r}")
        return value if self.integer else float(value)


POSITIVE_INT = Number(integer=True, minimum=1)
NON_NEGATIVE_INT = Number(integer=True, minimum=0)
POSITIVE_SECONDS = Number(integer=False, minimum=0, strict=True)
NON_NEGATIVE_SECONDS = Number(integer=False, minimum=0)


class Choice(Kind):
    """One of a few names."""

    def __init__(self, names: Iterable[str]) -> None:
        self.choices = tuple(names)

    def check(self, value: Any) -> str:
        if value not in (self.choices or ()):
            raise ValueError(f"must be one of {', '.join(self.choices or ())}, got {value!r}")
        return str(value)


class Text(Kind):
    """A string that is not blank."""

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class Flag(Kind):
    """On or off; on the command line, present or not."""

    action = "store_true"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be True or False, got {value!r}")
        return value


class FilePath(Kind):
    """A file name (a str or an os.PathLike), stored as a str."""

    def check(self, value: Any) -> str:
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"must be a file path, got {value!r}")
        path = os.fspath(value)
        if not isinstance(path, str) or not path:
            raise ValueError(f"must be a file path, got {value!r}")
        return path


class HostNames(Kind):
    """Host names, each with its subdomains and any port (repeatable; one name alone is fine)."""

    action = "append"

    def check(self, value: Any) -> tuple[str, ...]:
        names = [value] if isinstance(value, str) else _items(value, "host names")
        return tuple(dict.fromkeys(_host_name(name) for name in names))


class Selects(Kind):
    """`--select` fields: "NAME=CSS" strings, (name, css) pairs or a {name: css} mapping,
    stored as (name, css) pairs; each selector is checked, each name given once."""

    action = "append"

    def check(self, value: Any) -> tuple[tuple[str, str], ...]:
        if isinstance(value, Mapping):
            items: list[Any] = list(value.items())
        else:
            items = [value] if isinstance(value, str) else _items(value, "NAME=CSS strings")
        pairs = [_select_pair(item) for item in items]
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"names the field {name!r} twice")
        return tuple(pairs)


class Callback(Kind):
    """A parse callback: a function found again by its name, or "module:function"
    (resolved here, so that the setting is always the function)."""

    def check(self, value: Any) -> Callable[..., Any]:
        if isinstance(value, str):
            return resolve_callback(value)
        if not callable(value):
            raise ValueError(f"must be a function or 'module:function', got {value!r}")
        callback_ref(value)  # raises if workers could not find it by name
        return value


class Patterns(Kind):
    """Regular expressions (repeatable; one alone is fine), each compiled to check it."""

    action = "append"

    def check(self, value: Any) -> tuple[str, ...]:
        patterns = [value] if isinstance(value, str) else _items(value, "regular expressions")
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise ValueError(f"must be regular expressions, got {pattern!r}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"has a bad regular expression {pattern!r}: {exc}") from None
        return tuple(dict.fromkeys(patterns))


class Pairs(Kind):
    """"NAME<sep>VALUE" strings, (name, value) pairs or a {name: value} mapping (repeatable),
    stored as (name, value) pairs: request headers ("Name: value") or cookies ("name=value")."""

    action = "append"

    def __init__(self, sep: str, form: str, name_chars: str) -> None:
        self.sep, self.form = sep, form
        self.name_pattern = re.compile(f"[{name_chars}]+")

    def check(self, value: Any) -> tuple[tuple[str, str], ...]:
        if isinstance(value, Mapping):
            items: list[Any] = list(value.items())
        else:
            items = [value] if isinstance(value, str) else _items(value, f"{self.form} strings")
        return tuple(self._pair(item) for item in items)

    def _pair(self, item: Any) -> tuple[str, str]:
        if isinstance(item, str):
            name, sep, text = item.partition(self.sep)
            item = (name, text) if sep else ("", "")
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise ValueError(f"must be {self.form} strings or (name, value) pairs, got {item!r}")
        name, text = item[0].strip(), item[1].strip()
        # The value is not echoed: a header or a cookie may be a secret.
        if not self.name_pattern.fullmatch(name) or any(c in text for c in "\r\n\0"):
            raise ValueError(f"must look like {self.form}" + (f" (name {name!r})" if name else ""))
        return name, text


class CookieFile(FilePath):
    """A Netscape cookies.txt file (wget --load-cookies, curl -b), read to check it."""

    def check(self, value: Any) -> str:
        path = super().check(value)
        try:
            load_cookie_file(path)
        except CookieError as exc:
            raise ValueError(str(exc)) from None
        return path


class Credentials(Kind):
    """USER:PASS. Never echoed in a message: it holds a password."""

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or ":" not in value or not value.partition(":")[0]:
            raise ValueError("must look like USER:PASS")
        if any(c in value for c in "\r\n\0"):
            raise ValueError("must be one line")
        return value


TEXT, FLAG, FILE_PATH = Text(), Flag(), FilePath()
HOST_NAMES, SELECTS, CALLBACK = HostNames(), Selects(), Callback()
PATTERNS, COOKIE_FILE, CREDENTIALS = Patterns(), CookieFile(), Credentials()
# RFC 9110 token characters; cookie names are tokens too (RFC 6265).
_TOKEN = "!#$%&'*+.^_`|~0-9A-Za-z-"
HEADERS = Pairs(":", "'Name: value'", _TOKEN)
COOKIES = Pairs("=", "name=value", _TOKEN)


@dataclass(frozen=True)
class Computed:
    """A default computed when a config is made (the number of CPUs)."""

    factory: Callable[[], Any]


@dataclass(frozen=True)
class Option:
    """One setting as the command line shows it."""

    flags: tuple[str, ...]
    kind: Kind
    help: str
    metavar: str | None = None
    optional: bool = False  # None is a value: "automatic", "unlimited", "none"

    @property
    def name(self) -> str:
        """The option in messages, as argparse names it: `-o/--output`."""
        return "/".join(self.flags)

    def checked(self, field_name: str, value: Any) -> Any:
        """The value, normalized; SettingError naming `field_name` if the kind refuses it."""
        if value is None and self.optional:
            return None
        try:
            return self.kind.check(value)
        except (ValueError, TypeError) as exc:
            raise SettingError.about(field_name, str(exc)) from None


def option(
    default: Any, *flags: str, kind: Kind, help: str, metavar: str | None = None, secret: bool = False
) -> Any:
    """A dataclass field declared with its command-line option (see CrawlConfig).
    A `secret` one (credentials, headers, cookies) is left out of the config's repr."""
    spec = Option(flags, kind, help, metavar, optional=default is None)
    if isinstance(default, Computed):
        return field(default_factory=default.factory, metadata={OPTION: spec}, repr=not secret)
    return field(default=default, metadata={OPTION: spec}, repr=not secret)


def _items(value: Any, expected: str) -> list[Any]:
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"must be {expected}, got {value!r}")
    return list(value)


def _host_name(domain: Any) -> str:
    if not isinstance(domain, str):
        raise ValueError(f"must be a host name, got {domain!r}")
    text = domain.strip().lower().removeprefix("*.")  # subdomains are always included
    try:  # "host", "host:port", "[::1]:8080": a port is ignored ("any port")
        name = (urlsplit("//" + text).hostname or "").strip(".")
        name = name.encode("idna").decode("ascii") if ":" not in name else name  # as in URLs
    except (ValueError, UnicodeError):
        name = ""
    if not name or "/" in text or " " in text:
        raise ValueError(f"must be a host name, got {domain!r}")
    return name


def _select_pair(item: Any) -> tuple[str, str]:
    if isinstance(item, str):
        name, selector = split_select(item)
    elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item):
        name, selector = item[0].strip(), item[1].strip()
        if not (name and selector):
            raise ValueError(f"must look like NAME=CSS, got {name}={selector}")
    else:
        raise ValueError(f"must be NAME=CSS strings or (name, css) pairs, got {item!r}")
    try:
        if is_xpath(selector):
            # The one check that needs lxml, so it is loaded only for an XPath.
            from .parse import compile_select

            compile_select(selector)
        else:
            selector_xpath(selector)
    except ValueError as exc:
        raise ValueError(f"has a bad selector for {name!r}: {selector!r} ({exc})") from None
    return name, selector
