"""Parse callbacks by import name ("module:function"), as workers resolve them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def callback_ref(function: Callable[..., Any]) -> str:
    """"module:function" of a top-level function; ValueError for anything else."""
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or not name or "<" in name:
        raise ValueError(f"{function!r} is not a top-level function of a module")
    return f"{module}:{name}"


def resolve_callback(ref: str) -> Callable[..., Any]:
    """The callable `ref` ("module:function", dots allowed in both) names."""
    module_name, _, name = ref.partition(":")
    if not module_name or not name:
        raise ValueError(f"{ref!r} is not MODULE:FUNCTION")
    target: Any = importlib.import_module(module_name)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{ref} is not callable")
    return target
