"""Redaction patterns, and the one process-wide scrub every string spanhooks writes outside a
span passes through (its log lines, ``/metrics`` label values).

Span attributes, names, events and status descriptions are scrubbed by the attribute policy
that built them (:class:`spanhooks.AttributePolicy`, same patterns and ``[REDACTED]``); what
has no policy of its own uses :func:`scrub`, whose pattern is the one :func:`spanhooks.setup`
installed, else ``SPANHOOKS_REDACT_PATTERN``. Threading: the pattern is replaced whole, never
mutated, so :func:`scrub` reads it without a lock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = [
    "REDACTED",
    "REDACT_PATTERN_ENV",
    "compile_redact_patterns",
    "current_pattern",
    "install_pattern",
    "installed_pattern",
    "is_sensitive",
    "redact_pattern_from_env",
    "scrub",
    "scrub_data",
]

REDACTED = "[REDACTED]"
REDACT_PATTERN_ENV = "SPANHOOKS_REDACT_PATTERN"
"""One regular expression (alternatives joined with ``|``) redacted wherever it matches."""

_SENSITIVE = re.compile(
    r"(?i)^(.*[_-])?(api[_-]?key|apikey|authorization|auth|password|passwd|secret|"
    r"client[_-]?secret|token|access[_-]?token|refresh[_-]?token|cookie|credentials?)$"
)
_SCOPED_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))


def is_sensitive(key: str) -> bool:
    """True for keys whose values are redacted by default (``api_key``, ``token``, ...)."""
    return bool(_SENSITIVE.match(key))


def compile_redact_patterns(
    patterns: Iterable[str | re.Pattern[str]] | str | re.Pattern[str] | None,
) -> re.Pattern[str] | None:
    """One compiled alternation of ``patterns`` (None when there are none).

    Raises TypeError for something that is not a str or compiled pattern, and ValueError for
    a pattern that does not compile or that matches the empty string (it would redact between
    every character).
    """
    if patterns is None:
        return None
    if isinstance(patterns, str | re.Pattern):
        patterns = [patterns]
    sources: list[str] = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            if not isinstance(pattern.pattern, str):
                raise TypeError(f"redact patterns must match str, not bytes: {pattern!r}")
            letters = "".join(
                letter for flag, letter in _SCOPED_FLAGS if pattern.flags & flag
            )  # a compiled pattern keeps its flags inside the alternation
            source = f"(?{letters}:{pattern.pattern})" if letters else pattern.pattern
        elif isinstance(pattern, str):
            source = pattern
        else:
            raise TypeError(f"redact patterns must be str or re.Pattern, got {pattern!r}")
        try:
            compiled = re.compile(source)
        except re.error as error:
            raise ValueError(f"redact pattern {source!r} does not compile: {error}") from None
        if compiled.fullmatch(""):
            raise ValueError(f"redact pattern {source!r} matches the empty string")
        sources.append(f"(?:{source})")
    return re.compile("|".join(sources)) if sources else None


def redact_pattern_from_env() -> re.Pattern[str] | None:
    """The pattern in ``SPANHOOKS_REDACT_PATTERN``, if set; ValueError if it is invalid.

    An invalid pattern is an error rather than a warning: ignoring it would record what the
    operator asked to hide.
    """
    raw = os.environ.get(REDACT_PATTERN_ENV, "")
    if not raw.strip():
        return None
    try:
        return compile_redact_patterns([raw])
    except ValueError as error:
        raise ValueError(f"{REDACT_PATTERN_ENV}: {error}") from None


_EVERYTHING = re.compile(r"(?s).+")
"""What an invalid ``SPANHOOKS_REDACT_PATTERN`` scrubs: everything (fail closed). Code that
builds a policy from it raises instead, so the mistake is reported where it can be."""

_installed: re.Pattern[str] | None = None


def install_pattern(pattern: re.Pattern[str] | None) -> re.Pattern[str] | None:
    """Make ``pattern`` the one :func:`scrub` applies (None: back to the environment's);
    returns the one it replaces. Called by :func:`spanhooks.setup` with its policy's."""
    global _installed
    previous, _installed = _installed, pattern
    return previous


def installed_pattern() -> re.Pattern[str] | None:
    """The pattern :func:`spanhooks.setup` installed (its own and the environment's), or None:
    one global read, for the export path."""
    return _installed


def current_pattern() -> re.Pattern[str] | None:
    """The pattern :func:`scrub` applies now: the installed one, else the environment's.

    The environment is read each time (a variable set after import still counts); its
    pattern is compiled once per value.
    """
    global _from_env
    if _installed is not None:
        return _installed
    raw = os.environ.get(REDACT_PATTERN_ENV, "")
    if raw != _from_env[0]:
        try:
            _from_env = (raw, redact_pattern_from_env())
        except ValueError:
            _from_env = (raw, _EVERYTHING)
    return _from_env[1]


_from_env: tuple[str, re.Pattern[str] | None] = ("", None)
"""The environment's text and its pattern, compiled once per value."""


def scrub(text: str, pattern: re.Pattern[str] | None = None) -> str:
    """``text`` with every match of ``pattern`` (default :func:`current_pattern`) replaced by
    ``[REDACTED]``."""
    if pattern is None:
        pattern = current_pattern()
    return text if pattern is None else pattern.sub(REDACTED, text)


def scrub_data(value: object, pattern: re.Pattern[str]) -> object:
    """A copy of JSON-like ``value`` (dicts, lists, tuples, strings) with every string, keys
    included, scrubbed of ``pattern``; other values as they are."""
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {scrub_data(k, pattern): scrub_data(v, pattern) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(item, pattern) for item in value]
    return value
