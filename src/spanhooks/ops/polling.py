"""Polling manager: named periodic tasks with conditions, retries and per-task control.

Replaces hard-coded ``while True: ...; sleep(n)`` loops (seed 000). One scheduler thread keeps
the tasks in due-time order and hands due runs to a small worker pool, so a slow task delays
no other. A task never overlaps itself, and a run slower than its interval does not pile up:
the next run is scheduled from when the last one finished, skipping missed ticks. Each run is
a span (``poll {name}``, or ``{span_prefix} {name}``) with the task's name
(``spanhooks.polling.task``) and outcome, and is counted for ``/metrics``; ``on_result`` hears
the run while its span is still current, so what it records lands on that span. The callback's
result is not recorded (it is the application's data). A run carries the W3C baggage that was
current where its task was registered (a ``spanhooks.session(...)``'s ids, so its span is the
session's too), but not the span that was: each run is a trace of its own.

Threading contract: callbacks run on the pool's threads (async callbacks on that thread's own
event loop, through the dispatch core); registering, pausing and stopping are safe from any
thread.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher, DispatchMode
from spanhooks.callbacks.routes import Registration, Route
from spanhooks.metrics.families import (
    POLLING_RUN_DURATION_SECONDS,
    POLLING_RUNS,
    POLLING_TASK_STATE,
    BucketHistogram,
    counter,
    gauge,
    register_source,
)
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.bounds import bounded_name
from spanhooks.util import checks
from spanhooks.util.lazy import ProcessWide
from spanhooks.util.log import rate_limited

__all__ = ["PollingManager", "TaskState", "get_polling_manager", "register_polling_task"]

logger = logging.getLogger("spanhooks")


class TaskState(str, Enum):
    """Where a polling task is in its life."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class Outcome(str, Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


@dataclass(eq=False)
class _Task:
    name: str
    interval: float
    condition: Callable[[], bool] | None
    max_retries: int
    retry_delay: float
    registration: Registration
    baggage: Context | None = None
    """The baggage current at registration (a session's ids), which every run carries."""
    state: TaskState = TaskState.SCHEDULED
    next_run: float = 0.0
    runs: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    consecutive_failures: int = 0
    last_run: float | None = None
    last_duration: float | None = None
    last_error: str | None = None
    last_result: Any = None
    resume_state: TaskState = TaskState.SCHEDULED

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "interval": self.interval,
            "runs": self.runs,
            "successes": self.outcomes[Outcome.SUCCESS],
            "failures": self.outcomes[Outcome.FAILURE],
            "timeouts": self.outcomes[Outcome.TIMEOUT],
            "skipped": self.outcomes[Outcome.SKIPPED],
            "consecutive_failures": self.consecutive_failures,
            "last_run": self.last_run,
            "last_duration": self.last_duration,
            "last_error": self.last_error,
            "next_run_in": max(0.0, self.next_run - time.monotonic())
            if self.state is TaskState.SCHEDULED
            else None,
        }


class PollingManager:
    """Runs registered tasks every ``interval`` seconds on a scheduler thread and worker pool.

    ``on_result(name, result, outcome)``, if given, hears every finished run, inside the
    run's span (the health monitor is built on it). ``span_prefix`` starts each run's span
    name; ``name`` labels threads and the tracer (``spanhooks.{name}``). The scheduler starts
    with the first task and stops at :meth:`shutdown`.
    """

    def __init__(
        self,
        *,
        max_workers: int = 4,
        tracer_provider: TracerProvider | None = None,
        on_result: Callable[[str, Any, str], None] | None = None,
        name: str = "polling",
        metrics: bool = True,
        span_prefix: str = "poll",
    ) -> None:
        checks.count("max_workers", max_workers, minimum=1, limit=1_024)
        self.name = name
        self._span_prefix = span_prefix
        self._dispatcher: Dispatcher[str] = Dispatcher(name=name)
        self._tasks: dict[str, _Task] = {}
        self._wake = threading.Condition()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=f"spanhooks-{name}"
        )
        self._thread: threading.Thread | None = None
        self._closed = False
        self._tracer = trace.get_tracer(f"spanhooks.{name}", tracer_provider=tracer_provider)
        self._on_result = on_result
        self.durations = BucketHistogram()
        if metrics:  # the health monitor reports its checks under its own names instead
            register_source(self)

    # -- registration and control ------------------------------------------------------------

    def register_polling_task(
        self,
        name: str,
        callback: Callable[[], Any],
        interval: float,
        condition: Callable[[], bool] | None = None,
        *,
        max_retries: int = 3,
        retry_delay: float | None = None,
        timeout: float | None = None,
        start: bool = True,
    ) -> str:
        """Register ``callback`` to run every ``interval`` seconds while ``condition()`` holds.

        A failed run is retried after ``retry_delay`` (doubling, at most ``max_retries``
        times, never beyond the interval) before the task falls back to its interval.
        Returns ``name``; a name already in use raises ``ValueError``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a polling task needs a non-empty name, got {name!r}")
        checks.seconds("interval", interval)
        checks.seconds("retry_delay", retry_delay)
        checks.count("max_retries", max_retries, limit=1_000)
        if condition is not None and not callable(condition):
            raise TypeError(f"condition must be callable, got {condition!r}")
        delay = retry_delay if retry_delay is not None else min(1.0, interval / 4)
        with self._wake:
            if self._closed:
                raise RuntimeError("this polling manager has been shut down")
            if name in self._tasks:
                raise ValueError(f"a polling task named {name!r} is already registered")
            registration = self._dispatcher.add(
                callback, {name: callback}, timeout=timeout, name=f"poll:{name}"
            )
            task = _Task(
                name, float(interval), condition, max_retries, delay, registration, _baggage()
            )
            task.state = TaskState.SCHEDULED if start else TaskState.STOPPED
            task.next_run = time.monotonic()
            self._tasks[name] = task
            self._ensure_thread()
            self._wake.notify()
        return name

    def unregister_polling_task(self, name: str) -> bool:
        """Remove a task; a run in progress finishes. True if it existed."""
        with self._wake:
            task = self._tasks.pop(name, None)
        if task is None:
            return False
        self._dispatcher.remove(task.registration.id)
        return True

    def start_task(self, name: str) -> None:
        """(Re)start a stopped or paused task now."""
        self._set_state(name, TaskState.SCHEDULED, run_now=True)

    def stop_task(self, name: str) -> None:
        """Stop a task until :meth:`start_task` (a run in progress finishes)."""
        self._set_state(name, TaskState.STOPPED)

    def pause_task(self, name: str) -> None:
        """Pause a task; :meth:`resume_task` continues on its schedule."""
        self._set_state(name, TaskState.PAUSED)

    def resume_task(self, name: str) -> None:
        self._set_state(name, TaskState.SCHEDULED)

    def _set_state(self, name: str, state: TaskState, run_now: bool = False) -> None:
        with self._wake:
            task = self._tasks.get(name)
            if task is None:
                raise KeyError(f"no polling task named {name!r}")
            if task.state is TaskState.RUNNING:
                task.resume_state = state  # applied when the current run finishes
            else:
                task.state = state
            if run_now:
                task.next_run = time.monotonic()
            self._wake.notify()

    def get_task_status(self, name: str) -> dict[str, Any]:
        with self._wake:
            task = self._tasks.get(name)
            if task is None:
                raise KeyError(f"no polling task named {name!r}")
            return task.status()

    def get_all_tasks_status(self) -> dict[str, dict[str, Any]]:
        """Every task's state, counts, last run and error, and time to its next run."""
        with self._wake:
            return {name: task.status() for name, task in self._tasks.items()}

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop scheduling and wait up to ``timeout`` seconds for runs in progress. Idempotent."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- scheduling ----------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._schedule, name=f"spanhooks-{self.name}-scheduler", daemon=True
            )
            self._thread.start()

    def _schedule(self) -> None:
        while True:
            with self._wake:
                if self._closed:
                    return
                now = time.monotonic()
                due = [
                    t
                    for t in self._tasks.values()
                    if t.state is TaskState.SCHEDULED and t.next_run <= now
                ]
                if not due:
                    upcoming = [
                        t.next_run for t in self._tasks.values() if t.state is TaskState.SCHEDULED
                    ]
                    self._wake.wait(timeout=max(0.0, min(upcoming) - now) if upcoming else None)
                    continue
                for task in due:
                    task.state = TaskState.RUNNING
                    task.resume_state = TaskState.SCHEDULED
            for task in due:
                try:
                    self._pool.submit(self._run, task)
                except RuntimeError:  # the pool shut down meanwhile
                    return

    def _run(self, task: _Task) -> None:
        token = otel_context.attach(task.baggage) if task.baggage is not None else None
        try:
            self._run_in_context(task)
        finally:
            if token is not None:
                otel_context.detach(token)

    def _run_in_context(self, task: _Task) -> None:
        started = time.monotonic()
        if task.condition is not None and not self._condition_holds(task):
            self._finish(task, Outcome.SKIPPED, None, started, None)
            return
        reg = task.registration
        errors, timeouts = reg.errors, reg.timeouts
        routes: tuple[Route, ...] = self._dispatcher.routes(task.name)
        policy = active_policy()
        with self._tracer.start_as_current_span(
            bounded_name(policy.scrub(f"{self._span_prefix} {task.name}")),
            attributes=policy.recorded({"spanhooks.polling.task": task.name}),
        ) as span:
            results = self._dispatcher.dispatch(
                routes, task.name, (), {}, span, DispatchMode.COLLECT
            )
            if reg.timeouts > timeouts:
                outcome, error = Outcome.TIMEOUT, f"timed out after {reg.timeout}s"
            elif reg.errors > errors or not results:
                outcome, error = Outcome.FAILURE, "the callback raised (see the spanhooks log)"
            else:
                outcome, error = Outcome.SUCCESS, None
            span.set_attribute("spanhooks.polling.outcome", outcome.value)
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
            self._finish(task, outcome, results[0] if results else None, started, error, span)

    def _condition_holds(self, task: _Task) -> bool:
        try:
            return bool(task.condition() if task.condition else True)
        except Exception as exc:
            rate_limited.log(
                logging.WARNING,
                f"poll-condition:{task.name}",
                "polling task %s: condition raised %r; skipping this run",
                task.name,
                exc,
            )
            return False

    def _finish(
        self,
        task: _Task,
        outcome: Outcome,
        result: Any,
        started: float,
        error: str | None,
        span: trace.Span | None = None,
    ) -> None:
        finished = time.monotonic()
        with self._wake:
            task.outcomes[outcome] += 1
            if outcome is not Outcome.SKIPPED:
                task.runs += 1
                task.last_run, task.last_duration = time.time(), finished - started
                task.last_result, task.last_error = result, error
            if outcome in (Outcome.FAILURE, Outcome.TIMEOUT):
                task.consecutive_failures += 1
                retry = task.consecutive_failures <= task.max_retries
                delay = task.retry_delay * 2 ** (task.consecutive_failures - 1)
                task.next_run = finished + (min(delay, task.interval) if retry else task.interval)
            else:
                if outcome is Outcome.SUCCESS:
                    task.consecutive_failures = 0
                task.next_run = finished + task.interval  # from the finish: no pile-up
            if task.state is TaskState.RUNNING:
                task.state = task.resume_state
            self._wake.notify()
        if outcome is not Outcome.SKIPPED:
            trace_id = None
            if span is not None and span.get_span_context().is_valid:
                trace_id = format(span.get_span_context().trace_id, "032x")
            self.durations.observe((task.name,), finished - started, trace_id)
        if self._on_result is not None:
            try:
                self._on_result(task.name, result, outcome.value)
            except Exception:
                logger.exception("polling result handler failed for %s", task.name)

    # -- metrics ------------------------------------------------------------------------------

    def metric_families(self) -> Iterable[Metric]:
        with self._wake:
            tasks = list(self._tasks.values())
            runs = [((t.name, o.value), float(n)) for t in tasks for o, n in t.outcomes.items()]
            states = [((t.name, s.value), float(t.state is s)) for t in tasks for s in TaskState]
        yield counter(POLLING_RUNS, runs)
        yield gauge(
            POLLING_TASK_STATE,
            states,
        )
        yield self.durations.family(POLLING_RUN_DURATION_SECONDS)


_default = ProcessWide(PollingManager)


def get_polling_manager() -> PollingManager:
    """The process-wide polling manager (created on first use)."""
    return _default.get()


def register_polling_task(
    name: str,
    callback: Callable[[], Any],
    interval: float,
    condition: Callable[[], bool] | None = None,
    **options: Any,
) -> str:
    """Register a task on the process-wide manager (seed 000's module-level function)."""
    return get_polling_manager().register_polling_task(
        name, callback, interval, condition, **options
    )


def _baggage() -> Context | None:
    """A context holding only the current baggage, or None when there is none."""
    entries = baggage.get_all()
    if not entries:
        return None
    context = Context()
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    return context
