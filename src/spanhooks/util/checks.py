"""Argument checks at the API boundary: durations and counts that make sense, or a clear error.

A timeout of ``float("inf")`` or ``1e12`` passes a "positive number" test and then breaks deep
inside (``OverflowError`` from a lock or a timer, on every emit); a ``True`` passes an ``int``
test. Every public constructor and ``register_*`` call checks its numbers here, once, so the
error names the argument and the value when the mistake is made, not later.
"""

from __future__ import annotations

import math
from typing import overload

__all__ = ["MAX_COUNT", "MAX_SECONDS", "count", "seconds"]

MAX_SECONDS = 7 * 24 * 3600.0
"""The longest duration any setting takes: a week. Anything longer is a mistake in units."""

MAX_COUNT = 100_000_000
"""The largest size, cap or retry count any setting takes."""


@overload
def seconds(
    name: str, value: float, *, zero: bool = False, limit: float = ..., unit: str = ...
) -> float: ...
@overload
def seconds(
    name: str, value: float | None, *, zero: bool = False, limit: float = ..., unit: str = ...
) -> float | None: ...


def seconds(
    name: str,
    value: float | None,
    *,
    zero: bool = False,
    limit: float = MAX_SECONDS,
    unit: str = "seconds",
) -> float | None:
    """``value`` as seconds: None passes; else a finite number above 0 (or 0 when ``zero``)
    and at most ``limit``; anything else is a ``ValueError`` that names ``name``."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero)
        or value > limit
    ):
        floor = ">= 0" if zero else "> 0"
        raise ValueError(
            f"{name} must be a finite number of {unit} {floor} and <= {limit:g}, got {value!r}"
        )
    return float(value)


def count(name: str, value: int, *, minimum: int = 0, limit: int = MAX_COUNT) -> int:
    """``value`` as a whole number from ``minimum`` to ``limit``; else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= limit:
        raise ValueError(f"{name} must be an int from {minimum} to {limit}, got {value!r}")
    return value
