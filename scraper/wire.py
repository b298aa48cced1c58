"""The versioned JSON form of the messages (WorkerSpec, Task, Result).

A backend whose workers run on other machines sends these, never pickle: a
message read from a broker must not be able to run code. Every message is a
JSON object with `"v": VERSION`, is at most MAX_MESSAGE bytes, and is checked
field by field when read; a bad one raises WireError with one line saying why.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from typing import Any

from .linkbatch import LinkBatch
from .records import RECORD_FIELDS, Result, Task, WorkerSpec

VERSION = 2  # 2: results carry their links parsed (linkbatch.py)
MAX_MESSAGE = 32 * 1024 * 1024  # bytes: a record with very many links stays well under it


class WireError(ValueError):
    """A message that is not one of ours: other version, too large, wrong fields."""


_TASK_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,), "url": (str,), "depth": (int,), "parent": (str, type(None)), "kind": (str,),
    "attempt": (int,), "fetch_url": (str, type(None)), "hops": (int,), "spent_ms": (int, float),
    "retries": (int,), "if_none_match": (str, type(None)), "if_modified_since": (str, type(None)),
}  # fmt: skip
_SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "timeout": (int, float), "max_bytes": (int,), "retries": (int,), "user_agent": (str,),
    "select": (list,), "parse": (str, type(None)), "threads": (int,),
    "headers": (list,), "cookies": (list,), "auth": (str, type(None)), "private_origins": (list,),
    "warc": (str, type(None)),
}  # fmt: skip
_COOKIE_TYPES = (str, str, str, str, bool)  # cookies.CookieSpec


def dump_task(task: Task) -> bytes:
    return _dump({name: getattr(task, name) for name in _TASK_TYPES})


def load_task(data: bytes) -> Task:
    return _task(_load(data))


def dump_spec(spec: WorkerSpec) -> bytes:
    return _dump({field.name: getattr(spec, field.name) for field in fields(WorkerSpec)})


def load_spec(data: bytes) -> WorkerSpec:
    message = _checked(_load(data), _SPEC_TYPES, "worker spec")
    for name in ("select", "headers"):
        message[name] = tuple(_tuples(message[name], (str, str), f"worker spec: {name}"))
    message["cookies"] = tuple(_tuples(message["cookies"], _COOKIE_TYPES, "worker spec: cookies"))
    origins = message["private_origins"]
    if not all(isinstance(origin, str) for origin in origins):
        raise WireError("worker spec: private_origins must be strings")
    message["private_origins"] = tuple(origins)
    return WorkerSpec(**message)


def _tuples(items: list[Any], types: tuple[type, ...], what: str) -> list[tuple[Any, ...]]:
    """JSON arrays of the given types, as tuples; WireError otherwise."""
    for item in items:
        if not (isinstance(item, list) and len(item) == len(types)
                and all(type(value) is kind for value, kind in zip(item, types, strict=True))):  # fmt: skip
            raise WireError(f"{what} must be arrays of {', '.join(t.__name__ for t in types)}")
    return [tuple(item) for item in items]


def dump_result(result: Result) -> bytes:
    return _dump({
        "task": {name: getattr(result.task, name) for name in _TASK_TYPES},
        "record": result.record,
        "robots_body": None if result.robots_body is None else base64.b64encode(result.robots_body).decode(),
        "cpu_ms": result.cpu_ms, "wall_ms": result.wall_ms, "redirect_to": result.redirect_to,
        "retry_after": result.retry_after, "links": _dump_links(result.links), "sitemap": result.sitemap,
    })  # fmt: skip


def _dump_links(links: LinkBatch | None) -> dict[str, Any] | None:
    """A result's LinkBatch without its URLs (they are the record's `links`)."""
    if links is None:
        return None
    return {"fingerprints": base64.b64encode(links.fingerprints).decode(), "hosts": list(links.hosts),
            "host_index": base64.b64encode(links.host_index).decode(),
            "as_linked": {str(index): url for index, url in links.as_linked.items()}}  # fmt: skip


def _load_links(value: Any, record: dict[str, Any]) -> LinkBatch | None:
    """The LinkBatch of a result, checked against its record's links."""
    if value is None:
        return None
    urls = record.get("links")
    if not (isinstance(value, dict) and isinstance(urls, list) and all(isinstance(u, str) for u in urls)
            and isinstance(value.get("hosts"), list) and all(isinstance(h, str) for h in value["hosts"])
            and isinstance(value.get("as_linked"), dict)
            and all(isinstance(u, str) for u in value["as_linked"].values())):  # fmt: skip
        raise WireError("result: links must be a link batch of the record's links")
    links = LinkBatch(
        tuple(urls), base64.b64decode(value.get("fingerprints", ""), validate=True), tuple(value["hosts"]),
        base64.b64decode(value.get("host_index", ""), validate=True),
        {int(index): url for index, url in value["as_linked"].items()},
    )  # fmt: skip
    if not links.is_consistent() or max(_host_numbers(links), default=-1) >= len(links.hosts):
        raise WireError("result: links do not match the record's links")
    return links


def _host_numbers(links: LinkBatch) -> list[int]:
    return [int.from_bytes(links.host_index[i:i + 4], "little") for i in range(0, len(links.host_index), 4)]


def load_result(data: bytes) -> Result:
    message = _load(data)
    record = message.get("record")
    if not isinstance(record, dict) or set(record) < set(RECORD_FIELDS):
        raise WireError("result: record lacks fields")
    robots_body = message.get("robots_body")
    try:
        return Result(
            task=_task(message.get("task")),
            record=record,
            robots_body=None if robots_body is None else base64.b64decode(robots_body, validate=True),
            cpu_ms=float(message.get("cpu_ms", 0.0)),
            wall_ms=float(message.get("wall_ms", 0.0)),
            redirect_to=_optional_str(message.get("redirect_to"), "redirect_to"),
            retry_after=None if message.get("retry_after") is None else float(message["retry_after"]),
            links=_load_links(message.get("links"), record),
            sitemap=_sitemap(message.get("sitemap")),
        )
    except (TypeError, ValueError) as exc:
        raise WireError(f"result: {exc}") from None


def _sitemap(value: Any) -> dict[str, list[str]] | None:
    if value is None:
        return None
    if not (isinstance(value, dict) and set(value) <= {"urls", "sitemaps"}
            and all(isinstance(urls, list) and all(isinstance(url, str) for url in urls)
                    for urls in value.values())):  # fmt: skip
        raise WireError("result: sitemap must map urls and sitemaps to lists of URLs")
    return value


def _task(message: Any) -> Task:
    return Task(**_checked(message, _TASK_TYPES, "task"))


def _checked(message: Any, types: dict[str, tuple[type, ...]], what: str) -> dict[str, Any]:
    if not isinstance(message, dict) or set(message) != set(types):
        raise WireError(f"{what}: expected the fields {', '.join(types)}")
    for name, allowed in types.items():
        value = message[name]
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise WireError(f"{what}: {name} has the wrong type ({type(value).__name__})")
    return dict(message)


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise WireError(f"{name} must be a string")
    return value


def _dump(message: dict[str, Any]) -> bytes:
    data = json.dumps({"v": VERSION, **message}, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")  # fmt: skip
    if len(data) > MAX_MESSAGE:
        raise WireError(f"message of {len(data)} bytes is larger than {MAX_MESSAGE}")
    return data


def _load(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE:
        raise WireError(f"message of {len(data)} bytes is larger than {MAX_MESSAGE}")
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError("not a JSON object")
    version = message.pop("v", None)
    if version != VERSION:
        raise WireError(f"message of version {version!r}; this scraper speaks version {VERSION}")
    return message
