"""The library logger, a rate limiter that keeps a failing callback from flooding logs, and
:func:`safe_url` for printing an endpoint without the credentials it may carry.

Every record of the ``spanhooks`` logger passes :class:`OutgoingRecords` before any handler
sees it: its message is formatted (arguments that fight back cannot make logging print its own
"Logging error" traceback), scrubbed of the redaction pattern and cut to
:data:`MAX_LOG_MESSAGE_LENGTH`; a traceback is formatted, scrubbed and cut to its last
:data:`MAX_LOG_TRACEBACK_LENGTH` characters, and carried as ``exc_text`` (``exc_info`` is
cleared, so no handler can format the original again).
"""

from __future__ import annotations

import logging
import time
import urllib.parse

from spanhooks.util.forksafe import fork_safe_lock
from spanhooks.util.redaction import current_pattern, scrub
from spanhooks.util.text import safe_str, traceback_text, truncate

logger = logging.getLogger("spanhooks")

MAX_LOG_MESSAGE_LENGTH = 2048
"""Characters of one log message spanhooks writes (ids and names are cut well before this)."""
MAX_LOG_TRACEBACK_LENGTH = 16384
"""Characters of the traceback a record carries, kept from the end (where the error is)."""


class OutgoingRecords(logging.Filter):
    """Formats, scrubs and bounds a record in place (see the module docstring); never drops
    one and never raises an Exception. Runs on the logging thread, reads no shared state but
    the redaction pattern (replaced whole, so no lock)."""

    def filter(self, record: logging.LogRecord) -> bool:
        pattern = current_pattern()
        try:
            message = record.getMessage()
        except Exception:  # an argument whose __str__ or __repr__ raises
            message = f"{safe_str(record.msg)} (arguments not representable)"
        if pattern is not None:
            message = scrub(message, pattern)
        record.msg, record.args = truncate(message, MAX_LOG_MESSAGE_LENGTH), None
        if record.exc_info:
            error = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
            text = traceback_text(error) if error is not None else ""
            if pattern is not None:
                text = scrub(text, pattern)
            if len(text) > MAX_LOG_TRACEBACK_LENGTH:
                text = "…" + text[-(MAX_LOG_TRACEBACK_LENGTH - 1) :]
            record.exc_info, record.exc_text = None, text.rstrip("\n")
        return True


logger.addFilter(OutgoingRecords())


class RateLimitedLog:
    """Logs at most ``burst`` records per key in each ``interval`` seconds, then one summary.

    Keys are bounded by the caller (callback names, event names); a suppressed record is
    counted and reported with the next record that gets through. Thread-safe: the lock is
    taken only on the error path, never on the dispatch path.
    """

    def __init__(self, interval: float = 60.0, burst: int = 5, max_keys: int = 1024) -> None:
        self._interval = interval
        self._burst = burst
        self._max_keys = max_keys
        self._lock = fork_safe_lock(self)
        self._windows: dict[str, tuple[float, int, int]] = {}

    def log(
        self,
        level: int,
        key: str,
        msg: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            start, count, suppressed = self._windows.get(key, (now, 0, 0))
            if now - start >= self._interval:
                start, count = now, 0
            if count >= self._burst:
                self._windows[key] = (start, count, suppressed + 1)
                return
            if len(self._windows) >= self._max_keys and key not in self._windows:
                self._windows.clear()
            self._windows[key] = (start, count + 1, 0)
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        logger.log(level, msg, *args, exc_info=exc_info)


rate_limited = RateLimitedLog()


def safe_url(url: str) -> str:
    """``url`` fit to print or log: user and password, and every query value, replaced.

    ``https://user:secret@host/v1/traces?key=abc`` becomes
    ``https://[REDACTED]@host/v1/traces?key=[REDACTED]``. Anything unparseable is withheld.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "[REDACTED]@" + netloc.rsplit("@", 1)[1]
        query = "&".join(
            f"{key}=[REDACTED]" if value else key
            for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        )
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<url withheld>"
