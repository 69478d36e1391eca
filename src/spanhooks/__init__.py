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

from spanhooks._attributes import AttributePolicy
from spanhooks._context import (
    CallContext,
    ContextThreadPoolExecutor,
    child_env,
    current_call,
    propagate,
)
from spanhooks._decorators import agent, instrument, llm, tool, workflow
from spanhooks._dispatch import Dispatcher, DispatchMode, DispatchObserver, Priority
from spanhooks._events import EventSet, EventSpec, Phase, end, point, start
from spanhooks._foreign import ForeignSpanBridge
from spanhooks._jsonl import JsonlSpanExporter
from spanhooks._jsonl_callback import JSONLCallback, register_jsonl_logger
from spanhooks._manager import AbstractCallback, CallbackManager, EventRecord
from spanhooks._multiprocess import mark_process_dead
from spanhooks._processes import ProcessTarget
from spanhooks._processors import CallbackSpanProcessor, IsolatedSpanProcessor
from spanhooks._reader import SpanNode, build_trees, format_trees, read_spans
from spanhooks._setup import (
    Telemetry,
    add_span_processor,
    force_flush,
    get_callback_manager,
    setup,
    shutdown,
)
from spanhooks._version import __version__
from spanhooks.vocab import (
    BUILTIN_EVENT_SETS,
    GENAI,
    LLMPROC,
    LOGILLM,
    MEETING,
    THEA,
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
    "ContextThreadPoolExecutor",
    "DispatchMode",
    "DispatchObserver",
    "Dispatcher",
    "EventRecord",
    "EventSet",
    "EventSpec",
    "ForeignSpanBridge",
    "GenAIEvent",
    "IsolatedSpanProcessor",
    "JSONLCallback",
    "JsonlSpanExporter",
    "MeetingEventType",
    "Phase",
    "Priority",
    "ProcessTarget",
    "SpanNode",
    "Telemetry",
    "__version__",
    "add_span_processor",
    "agent",
    "build_trees",
    "child_env",
    "clear",
    "current_call",
    "declare",
    "disable",
    "emit",
    "emit_async",
    "enable",
    "end",
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
    "setup",
    "shutdown",
    "start",
    "tool",
    "trigger",
    "unregister",
    "workflow",
]
