"""LogiLLM's JSONL logging callback: one line per module, optimization or provider event.

Complements the span exporter for users of LogiLLM's ``JSONLCallback``,
``OptimizationJSONLCallback`` and ``register_jsonl_logger``: each event becomes a JSON object
with its name, time, call ids and the same privacy-respecting attributes its span gets, and,
for an event that marks a failure, the error's type and (scrubbed) message.

Content rules: a line follows the attribute policy :func:`spanhooks.setup` installed (content
capture, redaction patterns, redactor, lengths), read at each line, so that what a line holds is
what the event's span holds; before ``setup()``, the environment's (as a manager's default).
``capture_content=True`` or ``False`` overrides only the capture switch: redaction still applies,
and ``SPANHOOKS_REDACT_PATTERN`` (read when the callback is made) is applied on top of any
installed policy that lacks it.

Each line is one ``write`` and ``flush`` under a lock, and a torn tail left by a crash is cut
before the first append, as in the span exporter.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import weakref
from pathlib import Path
from typing import IO, Any, cast

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.export.jsonl import _repair_torn_tail, dumps
from spanhooks.tracing.attributes import AttributePolicy, active_policy, capture_content_from_env
from spanhooks.tracing.failures import exception_attributes
from spanhooks.tracing.spans import failure_of
from spanhooks.util.redaction import redact_pattern_from_env
from spanhooks.util.text import safe_str, truncate
from spanhooks.vocab.logillm import LOGILLM

__all__ = ["JSONLCallback", "OptimizationJSONLCallback", "register_jsonl_logger"]

_BEFORE_SETUP = active_policy()
"""The process-wide policy until ``setup()`` installs one (and after ``shutdown()``)."""

_CATEGORIES = {
    "module": ("module_start", "module_end"),
    "optimization": (
        "optimization_start",
        "optimization_end",
        "evaluation_start",
        "evaluation_end",
        "hyperparameter_update",
    ),
    "provider": ("provider_request", "provider_response", "provider_error"),
}


class JSONLCallback:
    """Writes the chosen LogiLLM events to ``filepath`` as JSON lines.

    Register it like any class callback (``manager.register(JSONLCallback("run.jsonl"))``).
    ``append_mode=False`` starts the file afresh. Thread-safe; call :meth:`close` when done.
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        *,
        include_module_events: bool = True,
        include_optimization_events: bool = True,
        include_provider_events: bool = True,
        append_mode: bool = True,
        capture_content: bool | None = None,
    ) -> None:
        self.path = Path(filepath)
        included = {
            "module": include_module_events,
            "optimization": include_optimization_events,
            "provider": include_provider_events,
        }
        self.events = frozenset(
            name for kind, names in _CATEGORIES.items() if included[kind] for name in names
        )
        pattern = redact_pattern_from_env()
        self._env_patterns = (pattern,) if pattern is not None else ()
        self._capture = capture_content
        self._env_policy = AttributePolicy(
            capture_content=capture_content_from_env()
            if capture_content is None
            else capture_content,
            redact_patterns=self._env_patterns,
        )
        self._chosen: tuple[AttributePolicy, AttributePolicy] | None = None
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._closer: weakref.finalize[Any, Any] | None = None
        if not append_mode:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")
        for name in self.events:  # one method per chosen event, e.g. on_module_end
            setattr(self, f"on_{name}", self._writer(name))

    @property
    def policy(self) -> AttributePolicy:
        """What a line may record now: the installed policy (see the module docstring)."""
        base = active_policy()
        if base is _BEFORE_SETUP:
            return self._env_policy
        chosen = self._chosen
        if chosen is None or chosen[0] is not base:
            chosen = (base, self._derive(base))
            self._chosen = chosen
        return chosen[1]

    def _derive(self, base: AttributePolicy) -> AttributePolicy:
        """``base`` with this callback's capture choice, and ``SPANHOOKS_REDACT_PATTERN`` (as
        read at construction) added if ``base`` lacks it: more redaction never shows more."""
        changes: dict[str, Any] = {}
        if self._capture is not None and base.capture_content != self._capture:
            changes["capture_content"] = self._capture
        missing = [p for p in self._env_patterns if p not in base.redact_patterns]
        if missing:
            changes["redact_patterns"] = (*base.redact_patterns, *missing)
        return dataclasses.replace(base, **changes) if changes else base

    def _writer(self, name: str) -> Any:
        spec = LOGILLM[name]

        def write(event: Any) -> None:
            policy = self.policy
            context = getattr(event, "context", None)
            bound = {"event": event}
            record: dict[str, Any] = {
                "event": name,
                "timestamp": datetime.datetime.fromtimestamp(
                    getattr(event, "timestamp", 0.0), tz=datetime.timezone.utc
                ).isoformat(),
                "call_id": getattr(context, "call_id", None),
                "parent_call_id": getattr(context, "parent_call_id", None),
                "trace_id": getattr(context, "trace_id", None),
                "attributes": policy.build(spec, bound),
            }
            failure = failure_of(spec, bound)
            if failure is not None:
                record["error"] = _error(failure, policy)
            self._append(dumps(record) + "\n")

        write.__name__ = f"on_{name}"
        return write

    def _append(self, line: str) -> None:
        data = line.encode("utf-8", errors="replace")
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _repair_torn_tail(self.path)
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across events
                # Closed with the callback even if nobody calls close().
                self._closer = weakref.finalize(self, self._file.close)
            self._file.write(data)
            self._file.flush()

    def close(self) -> None:
        """Close the file (a later event reopens it)."""
        with self._lock:
            if self._closer is not None:
                self._closer()
            self._file, self._closer = None, None


class OptimizationJSONLCallback(JSONLCallback):
    """A :class:`JSONLCallback` for optimization runs: optimization, evaluation and
    hyperparameter events; module and provider events only if asked for.

    What LogiLLM's migration section registers in place of the legacy ``OptimizationLogger``
    (``CallbackManager().register(OptimizationJSONLCallback("optimization.jsonl"))``).
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        *,
        include_module_events: bool = False,
        include_provider_events: bool = False,
        append_mode: bool = True,
        capture_content: bool | None = None,
    ) -> None:
        super().__init__(
            filepath,
            include_module_events=include_module_events,
            include_optimization_events=True,
            include_provider_events=include_provider_events,
            append_mode=append_mode,
            capture_content=capture_content,
        )


def _error(failure: BaseException | str, policy: AttributePolicy) -> dict[str, str]:
    """A failure as a line records it: its type and message, scrubbed and bounded (the stack
    trace is on the span's exception event)."""
    if issubclass(type(failure), BaseException):  # not isinstance: it may call user code
        attributes = exception_attributes(cast(BaseException, failure), policy, stacktrace=False)
        return {"type": attributes["exception.type"], "message": attributes["exception.message"]}
    return {
        "type": "error",
        "message": truncate(policy.scrub(safe_str(failure)), policy.max_length),
    }


def register_jsonl_logger(
    filepath: str | os.PathLike[str],
    include_module_events: bool = True,
    include_optimization_events: bool = True,
    include_provider_events: bool = True,
    *,
    manager: CallbackManager | None = None,
    append_mode: bool = True,
) -> int:
    """Register a :class:`JSONLCallback` and return its id; on the process-wide manager by
    default, the one LogiLLM's ``CallbackManager()`` is in :mod:`spanhooks.compat.logillm`."""
    if manager is None:
        manager = get_callback_manager()
    callback = JSONLCallback(
        filepath,
        include_module_events=include_module_events,
        include_optimization_events=include_optimization_events,
        include_provider_events=include_provider_events,
        append_mode=append_mode,
    )
    return manager.register(callback)
