"""spanhooks: callbacks for LLM and agent code whose every event is OpenTelemetry data.

Register callbacks in the style of any of the seed systems, emit events, and get spans, span
events and recorded exceptions in a trace, exported to JSONL and OTLP::

    import spanhooks
    from spanhooks import CallbackEvent

    spanhooks.setup()
    spanhooks.register(CallbackEvent.TOOL_START, lambda tool_name, tool_args: ...)
    spanhooks.emit(CallbackEvent.TOOL_START, "search", {"q": "otel"})
    spanhooks.emit(CallbackEvent.TOOL_END, "search", {"hits": 3})
"""

from spanhooks._version import __version__
from spanhooks.callbacks.dispatch import Dispatcher, DispatchMode, DispatchObserver
from spanhooks.callbacks.manager import CallbackManager, EventRecord, get_callback_manager
from spanhooks.callbacks.processors import CallbackSpanProcessor, IsolatedSpanProcessor
from spanhooks.callbacks.routes import Priority
from spanhooks.events.spec import EventSet, EventSpec, FailureIn, Phase, end, point, start
from spanhooks.export.jsonl import JsonlSpanExporter
from spanhooks.export.logillm_jsonl import JSONLCallback, register_jsonl_logger
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import SpanNode, build_trees, format_trees
from spanhooks.instrument.decorators import agent, instrument, llm, tool, workflow
from spanhooks.instrument.foreign import ForeignSpanBridge
from spanhooks.lifecycle.processes import ProcessTarget
from spanhooks.lifecycle.setup import (
    Telemetry,
    add_span_processor,
    force_flush,
    setup,
    shutdown,
)
from spanhooks.metrics.multiprocess import mark_process_dead
from spanhooks.tracing.attributes import AttributePolicy, ContentCapture
from spanhooks.tracing.context import (
    CallContext,
    ContextThreadPoolExecutor,
    child_env,
    current_call,
    propagate,
)
from spanhooks.tracing.evaluations import evaluate
from spanhooks.tracing.sessions import SessionSpanProcessor, current_session, session
from spanhooks.vocab import (
    BUILTIN_EVENT_SETS,
    GENAI,
    LLMPROC,
    LOGILLM,
    MEETING,
    THEA,
    AbstractCallback,
    CallbackEvent,
    CallbackType,
    GenAIEvent,
    MeetingEventType,
)

_default = get_callback_manager()
register = _default.register
unregister = _default.unregister
clear = _default.clear
on = _default.on
on_span = _default.on_span
emit = _default.emit
trigger = _default.trigger
emit_async = _default.emit_async
enable = _default.enable
disable = _default.disable
is_enabled = _default.is_enabled
declare = _default.declare

__all__ = [
    "BUILTIN_EVENT_SETS",
    "GENAI",
    "LLMPROC",
    "LOGILLM",
    "MEETING",
    "THEA",
    "AbstractCallback",
    "AttributePolicy",
    "CallContext",
    "CallbackEvent",
    "CallbackManager",
    "CallbackSpanProcessor",
    "CallbackType",
    "ContentCapture",
    "ContextThreadPoolExecutor",
    "DispatchMode",
    "DispatchObserver",
    "Dispatcher",
    "EventRecord",
    "EventSet",
    "EventSpec",
    "FailureIn",
    "ForeignSpanBridge",
    "GenAIEvent",
    "IsolatedSpanProcessor",
    "JSONLCallback",
    "JsonlSpanExporter",
    "MeetingEventType",
    "Phase",
    "Priority",
    "ProcessTarget",
    "SessionSpanProcessor",
    "SpanNode",
    "Telemetry",
    "__version__",
    "add_span_processor",
    "agent",
    "build_trees",
    "child_env",
    "clear",
    "current_call",
    "current_session",
    "declare",
    "disable",
    "emit",
    "emit_async",
    "enable",
    "end",
    "evaluate",
    "force_flush",
    "format_trees",
    "get_callback_manager",
    "instrument",
    "is_enabled",
    "llm",
    "mark_process_dead",
    "on",
    "on_span",
    "point",
    "propagate",
    "read_spans",
    "register",
    "register_jsonl_logger",
    "session",
    "setup",
    "shutdown",
    "start",
    "tool",
    "trigger",
    "unregister",
    "workflow",
]
