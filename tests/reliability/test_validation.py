"""Numbers that cannot work are refused where they are given, with the argument's name.

A timeout of ``inf`` or ``1e12`` used to be accepted and then make every emit log an
``OverflowError``. Every duration, interval, retry count and size of the public API is listed
here with the values that must be refused: non-finite, beyond a week, zero or negative where
that means nothing, booleans, and counts out of range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

import spanhooks
from spanhooks import CallbackEvent, CallbackManager
from spanhooks.ops import HealthMonitor, PollingManager, SessionState, get_error_handler
from spanhooks.ops.router import EventRouter
from spanhooks.util.checks import MAX_SECONDS

BAD_SECONDS = [math.inf, -math.inf, math.nan, 1e12, MAX_SECONDS * 2, 0, -1, True]


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _calls_with_bad_seconds() -> list[tuple[str, Callable[[Any], object]]]:
    return [
        ("timeout", lambda v: CallbackManager().register(CallbackEvent.RESPONSE, _noop, timeout=v)),
        ("default_timeout", lambda v: CallbackManager(default_timeout=v)),
        ("max_span_age", lambda v: CallbackManager(max_span_age=v)),
        ("timeout", lambda v: CallbackManager().on_span(_noop, timeout=v)),
        ("interval", lambda v: PollingManager(metrics=False).register_polling_task("t", _noop, v)),
        (
            "retry_delay",
            lambda v: PollingManager(metrics=False).register_polling_task(
                "t", _noop, 1.0, retry_delay=v
            ),
        ),
        (
            "timeout",
            lambda v: PollingManager(metrics=False).register_polling_task(
                "t", _noop, 1.0, timeout=v
            ),
        ),
        ("interval", lambda v: HealthMonitor().register_health_check("c", _noop, v)),
        ("timeout", lambda v: HealthMonitor().register_health_check("c", _noop, 1.0, timeout=v)),
        ("default_timeout", lambda v: HealthMonitor(default_timeout=v)),
        ("history_retention_hours", lambda v: HealthMonitor(history_retention_hours=v)),
        ("timeout", lambda v: HealthMonitor().register_alert_callback(_noop, timeout=v)),
        ("inactivity_timeout", lambda v: SessionState("conversation", inactivity_timeout=v)),
        ("timeout", lambda v: get_error_handler().register_error_handler(_noop, timeout=v)),
        ("timeout", lambda v: EventRouter().register_realtime_handler("e", _noop, timeout=v)),
        ("otlp_timeout", lambda v: spanhooks.setup(otlp_timeout=v)),
        ("shutdown_timeout", lambda v: spanhooks.setup(shutdown_timeout=v)),
        ("metrics_timeout", lambda v: spanhooks.setup(metrics_timeout=v)),
    ]


@pytest.mark.parametrize("value", BAD_SECONDS, ids=repr)
@pytest.mark.parametrize(
    ("name", "call"),
    _calls_with_bad_seconds(),
    ids=[f"{name}-{index}" for index, (name, _) in enumerate(_calls_with_bad_seconds())],
)
def test_a_duration_that_cannot_work_is_refused_naming_the_argument(
    name: str, call: Callable[[Any], object], value: object
) -> None:
    with pytest.raises(ValueError, match=name):
        call(value)


@pytest.mark.parametrize(
    ("name", "call", "value"),
    [
        ("alert_debounce_seconds", lambda v: HealthMonitor(alert_debounce_seconds=v), math.inf),
        ("alert_debounce_seconds", lambda v: HealthMonitor(alert_debounce_seconds=v), -1),
        ("max_history", lambda v: HealthMonitor(max_history=v), 0),
        (
            "max_retries",
            lambda v: PollingManager(metrics=False).register_polling_task(
                "t", _noop, 1.0, max_retries=v
            ),
            10**6,
        ),
        (
            "max_retries",
            lambda v: PollingManager(metrics=False).register_polling_task(
                "t", _noop, 1.0, max_retries=v
            ),
            -1,
        ),
        ("max_workers", lambda v: PollingManager(max_workers=v, metrics=False), 0),
        ("max_open_spans", lambda v: CallbackManager(max_open_spans=v), 0),
        ("max_open_spans", lambda v: CallbackManager(max_open_spans=v), 1.5),
        ("history_size", lambda v: CallbackManager(history_size=v), -1),
        ("history_size", lambda v: SessionState("c", history_size=v), True),
        ("max_attribute_length", lambda v: CallbackManager(max_attribute_length=v), 10**12),
        ("max_attribute_length", lambda v: spanhooks.setup(max_attribute_length=v), 8),
        ("metrics_port", lambda v: spanhooks.setup(metrics_port=v), 70_000),
        ("metrics_port", lambda v: spanhooks.setup(metrics_port=v), -1),
        ("metrics_timeout", lambda v: spanhooks.setup(metrics_timeout=v), 7200.0),  # > 1 hour
        ("metrics_max_connections", lambda v: spanhooks.setup(metrics_max_connections=v), 0),
        ("metrics_max_connections", lambda v: spanhooks.setup(metrics_max_connections=v), -1),
        ("metrics_max_connections", lambda v: spanhooks.setup(metrics_max_connections=v), 10**6),
        ("metrics_max_connections", lambda v: spanhooks.setup(metrics_max_connections=v), True),
    ],
)
def test_a_count_or_size_out_of_range_is_refused_naming_the_argument(
    name: str, call: Callable[[Any], object], value: object
) -> None:
    with pytest.raises(ValueError, match=name):
        call(value)


def test_zero_seconds_of_alert_debounce_is_allowed() -> None:
    assert HealthMonitor(alert_debounce_seconds=0).alert_debounce_seconds == 0


def test_a_refused_setup_leaves_nothing_set_up() -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        spanhooks.setup(shutdown_timeout=math.inf)
    from spanhooks.lifecycle.setup import active

    assert active() is None


def test_the_longest_allowed_timeout_still_dispatches() -> None:
    manager = CallbackManager(raise_errors=True)
    seen: list[str] = []
    manager.register(CallbackEvent.RESPONSE, seen.append, timeout=MAX_SECONDS)
    manager.emit(CallbackEvent.RESPONSE, "x")
    assert seen == ["x"]
