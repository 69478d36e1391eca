"""LogiLLM's JSONL logging callback: one line per module, optimization or provider event.

Complements the span exporter for users of LogiLLM's ``JSONLCallback`` and
``register_jsonl_logger``: each event becomes a JSON object with its name, time, call ids and
the same privacy-respecting attributes its span gets (content only when capture is on).
Each line is one ``write`` and ``flush`` under a lock, and a torn tail left by a crash is cut
before the first append, as in the span exporter.
"""

from __future__ import annotations

import datetime
import os
import threading
import weakref
from pathlib import Path
from typing import IO, Any

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.export.jsonl import _repair_torn_tail, dumps
from spanhooks.tracing.attributes import AttributePolicy, capture_content_from_env
from spanhooks.util.redaction import redact_pattern_from_env
from spanhooks.vocab.logillm import LOGILLM

__all__ = ["JSONLCallback", "register_jsonl_logger"]

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
        self._policy = AttributePolicy(
            capture_content=capture_content_from_env()
            if capture_content is None
            else capture_content,
            redact_patterns=(pattern,) if pattern is not None else (),
        )
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._closer: weakref.finalize[Any, Any] | None = None
        if not append_mode:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")
        for name in self.events:  # one method per chosen event, e.g. on_module_end
            setattr(self, f"on_{name}", self._writer(name))

    def _writer(self, name: str) -> Any:
        spec = LOGILLM[name]

        def write(event: Any) -> None:
            context = getattr(event, "context", None)
            record = {
                "event": name,
                "timestamp": datetime.datetime.fromtimestamp(
                    getattr(event, "timestamp", 0.0), tz=datetime.timezone.utc
                ).isoformat(),
                "call_id": getattr(context, "call_id", None),
                "parent_call_id": getattr(context, "parent_call_id", None),
                "trace_id": getattr(context, "trace_id", None),
                "attributes": self._policy.build(spec, {"event": event}),
            }
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


def register_jsonl_logger(
    filepath: str | os.PathLike[str],
    include_module_events: bool = True,
    include_optimization_events: bool = True,
    include_provider_events: bool = True,
    *,
    manager: CallbackManager | None = None,
    append_mode: bool = True,
) -> int:
    """Register a :class:`JSONLCallback` (on the process-wide manager by default); its id."""
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
