"""A child forked while another thread holds one of spanhooks' span-path locks can still use
it: each such lock is replaced in the child (a real ``os.fork()``, the lock held on purpose)."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from spanhooks.export.accounting import DROP_REASONS, DropLog
from spanhooks.metrics.cardinality import LabelLimiter, SeriesLimiter
from spanhooks.metrics.families import BucketHistogram
from spanhooks.util.log import RateLimitedLog

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="os.fork is POSIX only")


def _cases() -> list[tuple[str, Any, Callable[[Any], object]]]:
    return [
        ("histogram", BucketHistogram(), lambda h: h.observe(("tool",), 0.1, None)),
        ("label limiter", LabelLimiter(10), lambda limiter: limiter.limit("model-a")),
        ("series limiter", SeriesLimiter(("model",), max_values=10), lambda s: s.limit(["m"])),
        (
            "drop log",
            DropLog(),
            lambda log: log.note("otlp", dict.fromkeys(DROP_REASONS, 1), final=True),
        ),
        (
            "rate-limited log",
            RateLimitedLog(),
            lambda log: log.log(logging.DEBUG, "key", "message"),
        ),
    ]


@posix_only
@pytest.mark.parametrize(
    ("owner", "use"), [(c[1], c[2]) for c in _cases()], ids=[c[0] for c in _cases()]
)
def test_a_child_forked_while_the_lock_is_held_does_not_deadlock(
    owner: Any, use: Callable[[Any], object]
) -> None:
    owner._lock.acquire()  # as if another thread were inside it at the moment of the fork
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                use(owner)
                code = 0
            finally:
                os._exit(code)
    finally:
        owner._lock.release()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the child deadlocked on a lock inherited from the parent")
