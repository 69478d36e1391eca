"""Reading any object as bounded plain text without letting it raise: the helpers every place
that writes user values out (attributes, span names, status descriptions, log lines) shares.

Types are read from the type slots (``type.__qualname__`` itself, which a metaclass cannot
intercept), a str subclass through ``str.__str__`` (its overrides are not called), and whatever
user code must run (``__str__``) runs under ``except Exception``: an object that fights back is
written as ``<unrepresentable TYPE>``. KeyboardInterrupt, SystemExit and cancellation are not
Exceptions and still propagate. Pure functions, safe from any thread.
"""

from __future__ import annotations

import traceback
from typing import cast

__all__ = [
    "MAX_TYPE_NAME_LENGTH",
    "class_module",
    "class_name",
    "class_qualname",
    "safe_repr",
    "safe_str",
    "traceback_text",
    "truncate",
    "type_name",
    "unrepresentable",
]

MAX_TYPE_NAME_LENGTH = 128
"""Characters of a type's name in ``<unrepresentable TYPE>`` (a class may be named anything)."""

_QUALNAME = vars(type)["__qualname__"].__get__
_MODULE = vars(type)["__module__"].__get__
_NAME = vars(type)["__name__"].__get__


def class_qualname(cls: type) -> str:
    """``cls.__qualname__`` read from the type slot, as a plain str."""
    return _plain_text(_QUALNAME(cls))


def class_name(cls: type) -> str:
    """``cls.__name__`` read from the type slot, as a plain str."""
    return _plain_text(_NAME(cls))


def class_module(cls: type) -> str | None:
    """``cls.__module__`` read from the type slot; None unless it is a str (it may be anything)."""
    module = _MODULE(cls)
    return module if type(module) is str else None


def _plain_text(name: object) -> str:
    # A str subclass assigned to __qualname__ or __name__: its text, without its overrides.
    return name if type(name) is str else str.__str__(cast(str, name))


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def safe_str(value: object) -> str:
    """``str(value)`` as a plain str, never raising an Exception.

    A str subclass gives its own text (its overrides are not called); ``<unrepresentable
    TYPE>`` stands for a value whose ``__str__`` raises or returns something not a str.
    """
    cls = type(value)
    if cls is str:
        return cast(str, value)  # mypy does not narrow on ``type(value) is str``
    try:
        if issubclass(cls, str):
            return str.__str__(cast(str, value))
        text = str(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:
        return unrepresentable(value)


def safe_repr(value: object, limit: int = 64) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a log line or an error message; never
    raises an Exception (``<unrepresentable TYPE>`` when ``__repr__`` does)."""
    try:
        text = repr(value)
        text = text if type(text) is str else unrepresentable(value)
    except Exception:
        text = unrepresentable(value)
    return truncate(text, limit)


def type_name(value: object) -> str:
    """The qualified name of ``value``'s class, read from the type slot (no metaclass or
    instance code runs) and cut to :data:`MAX_TYPE_NAME_LENGTH`."""
    return truncate(class_qualname(type(value)), MAX_TYPE_NAME_LENGTH)


def unrepresentable(value: object) -> str:
    """``<unrepresentable TYPE>``: what is written for a value that cannot be read."""
    return f"<unrepresentable {type_name(value)}>"


def traceback_text(error: BaseException) -> str:
    """The formatted traceback of ``error``, or its type's name with a note when formatting
    raised (the traceback module reads attributes and ``__str__``, which may fight back)."""
    try:
        return "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except Exception:
        return f"{type_name(error)} (traceback not representable)"
