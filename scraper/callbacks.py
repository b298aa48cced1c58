"""Parse callbacks by reference: `"module:function"` <-> the function (SPEC 5).

A reference is what crosses to a worker that did not start from this process
(spawn, or another machine): it imports the module and looks the name up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def resolve_callback(ref: str) -> Callable[..., Any]:
    """The callable that `"module:function"` names (`"pkg.mod:Class.method"` too).

    Raises ValueError with one line naming the module and the reason.
    """
    module_name, qualname = _split_ref(ref)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module's own code raises
        raise ValueError(f"cannot import module {module_name!r} ({_reason(exc)})") from None
    target: Any = module
    for part in qualname.split("."):
        if not hasattr(target, part):
            raise ValueError(f"names nothing: module {module_name!r} has no {qualname!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"must name a function, got {ref!r} of type {type(target).__name__}")
    return target


def callback_ref(callback: Callable[..., Any]) -> str:
    """`"module:qualname"` of a callback that can be found again by that name.

    Raises ValueError for what cannot: a lambda, a nested function, a
    functools.partial, a bound method or an object with `__call__`.
    """
    module = getattr(callback, "__module__", None)
    qualname = getattr(callback, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        ref = f"{module}:{qualname}"
        try:
            if resolve_callback(ref) is callback:
                return ref
        except ValueError:
            pass
    shown = qualname if isinstance(qualname, str) else repr(callback)
    raise ValueError(
        "must be a top-level function of a module, which workers import by its name: "
        f"not a lambda, a nested function or a functools.partial (got {shown})"
    )


def _split_ref(ref: str) -> tuple[str, str]:
    module, colon, qualname = ref.partition(":")
    if not (colon and _is_dotted_name(module) and _is_dotted_name(qualname)):
        raise ValueError(f"must look like MODULE:FUNCTION, got {ref!r}")
    return module, qualname


def _is_dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _reason(exc: Exception) -> str:
    """One line: "No module named 'x'", or "RuntimeError: boom" from the module's own code."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return lines[0] if isinstance(exc, ImportError) else f"{type(exc).__name__}: {lines[0]}"
