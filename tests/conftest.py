"""Shared fixtures: every test gets its own capture pipeline (see spanhooks.testing)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from spanhooks.util.log import rate_limited


@pytest.fixture(autouse=True)
def _fresh_log_limits() -> Iterator[None]:
    """Rate-limit windows are process-wide; reset them so each test sees its own logs."""
    rate_limited._windows.clear()
    yield
    rate_limited._windows.clear()


@pytest.fixture
def spanhooks_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="spanhooks")
    return caplog
