"""Environment switches: spanhooks' and OpenTelemetry's variables, read with one set of rules.

A value that cannot be read keeps the default and is logged once per read, never raised: a typo
in a deployment's environment must not stop the application.
"""

from __future__ import annotations

import os

from spanhooks.util.log import logger

__all__ = ["env_flag", "env_float", "env_int"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_flag(name: str, default: bool) -> bool:
    """A boolean environment switch; unrecognised values keep the default (and are logged)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    logger.warning("ignoring %s=%r: expected true or false", name, raw)
    return default


def env_int(name: str, default: int) -> int:
    """An integer setting; unset keeps the default, an unreadable value too (and is logged)."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: expected an integer", name, raw)
        return default


def env_float(name: str, default: float) -> float:
    """A positive number of seconds; anything else keeps the default (and is logged)."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        logger.warning("ignoring %s=%r: expected a positive number of seconds", name, raw)
        return default
    return value
