"""The redaction canary: with content capture ON and ``setup(redact_patterns=...)``, a secret
planted through every public entry point reaches no output spanhooks writes.

``test_privacy.py``'s canary runs with capture off, where content is simply not recorded; this
one records everything, so only redaction stands between the secret and the outputs. A child
application (a fresh interpreter, ``REDACTION_APP``) plants ``SECRET`` through each vocabulary,
each decorator, raising callbacks, each ``spanhooks.ops`` subsystem and the foreign-span bridge,
and is run twice: once exporting OTLP/HTTP, once OTLP/gRPC. Every output of both runs is then
searched byte for byte: the JSONL file, the LogiLLM event log, every OTLP request body (traces,
metrics, logs), the DEBUG log file, a ``/metrics`` scrape, the ``/health`` body, stdout (console
exporters for spans, metrics and log records) and stderr (the same log lines).

A leak fails ``test_the_canary_reaches_no_output`` with ``{output: count}`` and, for each leak,
the bytes around it, so the responsible writer can be found from the failure alone.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from spanhooks.util.redaction import REDACTED

from .test_privacy import clean_env

SECRET = "CANARY-sk-r3dact0rQz"
"""Matched by the app's ``redact_patterns=[r"CANARY-sk-\\w+"]``. Its tail is not hex, so no
trace id, span id or hash can contain any part of it by chance."""
FRAGMENT = SECRET.removeprefix("CANARY-sk-")
"""What would survive of the secret if a cut or a partial match left its prefix behind."""

SIGNALS = ("traces", "metrics", "logs")

# The child application. Each group of entry points is one function, listed in ENTRY_POINTS
# (sync) or ASYNC_ENTRY_POINTS (run under asyncio); `received` collects what callbacks were
# given, so the app can check that callbacks still get the real values (redaction is for
# outputs only) and that every group ran.
REDACTION_APP = r'''
import asyncio, json, logging, sys, time, urllib.error, urllib.request
from types import SimpleNamespace

S = sys.argv[1]
PATHS = json.loads(sys.argv[2])

# Logging: DEBUG to a file and to stderr, spanhooks' and its dependencies' loggers included.
logging.basicConfig(
    level=logging.DEBUG,
    format="%(asctime)s %(name)s %(levelname)s %(message)s",
    handlers=[logging.FileHandler(PATHS["log"]), logging.StreamHandler(sys.stderr)],
)
for name in ("spanhooks", "opentelemetry", "urllib3", "requests", "grpc", "app"):
    logging.getLogger(name).setLevel(logging.DEBUG)

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import spanhooks
from spanhooks import AbstractCallback, CallbackEvent, EventSet, GenAIEvent, MeetingEventType
from spanhooks import end, point, start
from spanhooks.ops import (
    CleanupPriority, ErrorContext, ErrorHandler, ErrorSeverity, EventRouter, HandlerContext,
    MeetingEventHandler, MessageContext, ResourceType, SessionState, SessionStatus,
    get_health_monitor, get_polling_manager, get_resource_manager, handle_error,
    handle_error_async, invoke_handler, invoke_handler_sync, register_cleanup,
    register_conversation_handler, register_error_handler, register_health_check,
    register_one_way_handler, register_polling_task,
)
from spanhooks.vocab.logillm import (
    EvaluationEndEvent, EvaluationStartEvent, HyperparameterUpdateEvent, ModuleEndEvent,
    ModuleStartEvent, OptimizationEndEvent, OptimizationStartEvent, ProviderErrorEvent,
    ProviderRequestEvent, ProviderResponseEvent,
)
from spanhooks.vocab.meeting import (
    MeetingEndedEventData, MeetingEvent, MeetingStartedEventData, ParticipantJoinedEventData,
    ParticipantLeftEventData, TimeoutOccurredEventData, TurnChangedEventData,
)

telemetry = spanhooks.setup(
    redact_patterns=[r"CANARY-sk-\w+"],
    capture_content=True,
    metrics_port=0,
    jsonl_path=PATHS["jsonl"],
    service_name="redaction-canary",
)
received = {}


def got(group, value):
    received.setdefault(group, []).append(value)


def raised(error):
    """``error`` with a traceback, as an application's caught exception has."""
    try:
        raise error
    except BaseException as caught:
        return caught


def wait_for(condition, what, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.02)


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.read()
    except urllib.error.HTTPError as error:  # /health answers 503 when unhealthy
        return error.read()


# -- callbacks registered by the application: receivers, raising ones, a slow one -----------

class LogiLLMWatcher(AbstractCallback):
    def on_provider_error(self, event):
        raise RuntimeError(f"watcher saw {event.error}")  # a class callback's traceback


def refuse(text):
    raise ValueError(f"callback refused {text}")  # logged with its traceback


def slow(text):
    time.sleep(0.3)  # times out: logged and counted under its (secret-bearing) name


slow.__qualname__ = f"slow_{S}"


def refuse_tool(tool_name, arguments):
    raise ValueError(f"bridge callback refused {tool_name}")


def refuse_span(span):
    raise RuntimeError(f"span callback refused {span.name}")


def plant_callbacks():
    spanhooks.register(CallbackEvent.TOOL_START, lambda tool_name, args: got("llmproc", args))
    spanhooks.register(CallbackEvent.RESPONSE, refuse)
    spanhooks.register(CallbackEvent.RESPONSE, slow, timeout=0.05)
    spanhooks.register(LogiLLMWatcher())
    spanhooks.register(GenAIEvent.LLM_START, lambda model, *rest: got("genai", model))
    spanhooks.register(GenAIEvent.TOOL_CALL_START, refuse_tool)
    spanhooks.on_span(refuse_span, attributes={"gen_ai.operation.name": "execute_tool"})
    spanhooks.register("on_message", lambda user_id, message, timestamp: got("thea", message))
    spanhooks.register(MeetingEventType.TURN_CHANGED, lambda e: got("meeting", e.meeting_id))
    spanhooks.register_jsonl_logger(PATHS["logillm"])  # LogiLLM's event log: another output
    got("callbacks", True)


# -- llmproc: CallbackEvent, every event, names and payloads ----------------------------------

def plant_llmproc():
    process = SimpleNamespace(
        display_name=f"agent-{S}", model_name=f"model-{S}", provider=f"prov-{S}"
    )
    spanhooks.emit(CallbackEvent.TURN_START, process)
    spanhooks.emit(CallbackEvent.TOOL_START, f"tool-{S}", {"q": S, "api_key": S})
    spanhooks.emit(CallbackEvent.TOOL_END, f"tool-{S}", {"hits": [S]})
    spanhooks.emit(CallbackEvent.TOOL_START, f"broken-{S}", [S, f"arg {S}"])
    spanhooks.emit(
        CallbackEvent.TOOL_END, f"broken-{S}", SimpleNamespace(is_error=True, error=f"failed {S}")
    )
    spanhooks.emit(
        CallbackEvent.API_REQUEST,
        {"model": f"gpt-{S}", "messages": [{"role": "user", "content": S}], "user": S},
    )
    spanhooks.emit(
        CallbackEvent.API_RESPONSE,
        {"id": f"resp-{S}", "model": f"gpt-{S}", "content": S,
         "usage": {"input_tokens": 3, "output_tokens": 5}},
    )
    spanhooks.emit(CallbackEvent.RESPONSE, S)
    spanhooks.emit(CallbackEvent.STDERR_WRITE, f"stderr says {S}\n")
    spanhooks.emit(CallbackEvent.TOOL_END, f"tool-{S}", S, call_id=f"call-{S}")  # matches nothing
    spanhooks.emit(f"unknown-{S}", S)  # an event nobody declared
    spanhooks.emit(CallbackEvent.TURN_END, process, {"content": S}, [S])


# -- managers: a declared event set, a forked manager, a manager of the application's own -----

BILLING = EventSet("billing", [
    start("charge_start", "customer_id", "amount", span_name="charge {customer_id}",
          attributes={"customer_id": "billing.customer.id"}),
    end("charge_end", "receipt", content={"receipt"}),
    point("charge_retry", "attempt"),
])


def plant_managers():
    spanhooks.declare(BILLING)
    spanhooks.emit("charge_start", f"cust-{S}", 10)
    spanhooks.emit("charge_retry", f"attempt {S}")
    spanhooks.emit("charge_end", f"receipt {S}")
    child = spanhooks.get_callback_manager().fork()  # LLMProc's fork_process
    child.emit(CallbackEvent.TOOL_START, f"forked-{S}", {"q": S})
    child.emit(CallbackEvent.TOOL_END, f"forked-{S}", S)
    own = spanhooks.CallbackManager()  # per-instance callbacks, as the README suggests
    own.declare(BILLING)
    own.register("charge_start", lambda customer_id, amount: got("managers", customer_id))
    own.emit("charge_start", f"own-cust-{S}", 10)
    own.emit("charge_end", f"receipt {S}")
    own.emit(CallbackEvent.TOOL_START, f"own-tool-{S}", {"q": S})
    own.emit(CallbackEvent.TOOL_END, f"own-tool-{S}", S)


# -- thea: named events triggered with keyword arguments --------------------------------------

def plant_thea():
    user = f"user-{S}"
    spanhooks.trigger("on_message", user_id=user, message=S, timestamp=1.0)
    spanhooks.trigger("on_state_change", user_id=user, old_state=f"idle-{S}", new_state=f"busy-{S}")
    spanhooks.trigger(
        "on_error", user_id=user, error=raised(RuntimeError(f"thea error {S}")),
        traceback=f"Traceback: {S}",
    )
    spanhooks.trigger("on_error", user_id=user, error=f"plain error {S}", traceback=None)
    spanhooks.trigger("on_session_timeout", user_id=user, session_id=f"sess-{S}")
    spanhooks.trigger("on_intent_detected", user_id=user, intent=f"intent-{S}", score=0.9)
    spanhooks.trigger("on_agent_delegated", user_id=user, agent=f"agent-{S}", intent=f"intent-{S}")


# -- logillm: typed events; module and optimizer class names are recorded too ----------------

Module = type(f"Module_{S}", (), {})
Optimizer = type(f"Optimizer_{S}", (), {})


def plant_logillm():
    module, optimizer = Module(), Optimizer()
    provider = SimpleNamespace(name=f"prov-{S}", model=f"model-{S}")
    request = dict(
        provider=provider, messages=[{"role": "user", "content": S}],
        parameters={"model": f"gpt-{S}", "api_key": S, "temperature": 0.1},
    )
    ours = dict(optimizer=optimizer, module=module)
    spanhooks.emit(OptimizationStartEvent(**ours, dataset=[S], config={"seed": S}))
    spanhooks.emit(HyperparameterUpdateEvent(**ours, parameters={"prompt": S}, iteration=1))
    spanhooks.emit(EvaluationStartEvent(**ours, dataset=[S]))
    spanhooks.emit(EvaluationEndEvent(**ours, score=0.5, duration=0.1))
    spanhooks.emit(ModuleStartEvent(module=module, inputs={"question": S}))
    spanhooks.emit(ProviderRequestEvent(**request))
    spanhooks.emit(ProviderResponseEvent(
        provider=provider, response={"text": S, "model": f"gpt-{S}"},
        usage={"input_tokens": 2, "output_tokens": 3}, duration=0.1,
    ))
    spanhooks.emit(ProviderRequestEvent(**request))
    spanhooks.emit(ProviderErrorEvent(
        provider=provider, error=raised(RuntimeError(f"provider said {S}")), messages=[S]
    ))
    spanhooks.emit(ModuleEndEvent(
        module=module, outputs={"answer": S}, prediction=S, duration=0.2, success=False,
        error=raised(ValueError(f"module failed {S}")),
    ))
    best = SimpleNamespace(best_score=0.5)
    spanhooks.emit(OptimizationEndEvent(optimizer=optimizer, result=best, success=False))
    got("logillm", True)


# -- meeting: MeetingEventType on the process-wide manager and on a MeetingEventHandler -------

def meeting_events(meeting_id):
    T = MeetingEventType
    return [
        MeetingEvent(T.MEETING_STARTED, meeting_id,
                     MeetingStartedEventData(host_id=f"host-{S}", participant_ids=(f"p-{S}",))),
        MeetingEvent(T.PARTICIPANT_JOINED, meeting_id, ParticipantJoinedEventData(f"p-{S}")),
        MeetingEvent(T.TURN_CHANGED, meeting_id, TurnChangedEventData(None, f"speaker-{S}")),
        MeetingEvent(T.TIMEOUT_OCCURRED, meeting_id, TimeoutOccurredEventData(f"speaker-{S}", 3.0)),
        MeetingEvent(T.TURN_CHANGED, meeting_id,
                     TurnChangedEventData(f"speaker-{S}", f"other-{S}")),
        MeetingEvent(T.PARTICIPANT_LEFT, meeting_id, ParticipantLeftEventData(f"p-{S}")),
        MeetingEvent(T.MEETING_ENDED, meeting_id, MeetingEndedEventData(f"host-{S}", f"done {S}")),
    ]


meetings = MeetingEventHandler()
meetings.register_handler(MeetingEventType.TURN_CHANGED, lambda event: got("meeting", event.data))


def plant_meeting():
    for event in meeting_events(f"meeting-{S}"):
        spanhooks.emit(event.event_type, event)
    for event in meeting_events(f"handled-{S}"):
        meetings.emit_sync(event)


async def plant_meeting_async():
    for event in meeting_events(f"async-{S}"):
        await meetings.emit(event)


# -- genai: GenAIEvent emitted directly, agent/tool/model names, errors ------------------------

def plant_genai():
    usage = {"input_tokens": 4, "output_tokens": 6}
    spanhooks.emit(GenAIEvent.WORKFLOW_START, f"flow-{S}", {"q": S})
    spanhooks.emit(GenAIEvent.AGENT_START, f"agent-{S}", {"q": S})
    spanhooks.emit(GenAIEvent.TOOL_CALL_START, f"tool-{S}", {"q": S})
    spanhooks.emit(GenAIEvent.TOOL_CALL_END, f"tool-{S}", {"hits": [S]}, None)
    spanhooks.emit(GenAIEvent.LLM_START, f"gpt-{S}", {"messages": [S]}, f"prov-{S}", "chat")
    spanhooks.emit(GenAIEvent.FIRST_CHUNK, f"gpt-{S}", 0.01)
    response = {"model": f"gpt-{S}", "content": S, "usage": usage}
    spanhooks.emit(GenAIEvent.LLM_END, f"gpt-{S}", response, None)
    spanhooks.emit(GenAIEvent.LLM_START, f"gpt-{S}", {"messages": [S]}, f"prov-{S}", "chat")
    spanhooks.emit(GenAIEvent.LLM_END, f"gpt-{S}", None, raised(RuntimeError(f"rate limited {S}")))
    spanhooks.emit(GenAIEvent.TASK_START, f"task-{S}", {"x": S})
    spanhooks.emit(GenAIEvent.TASK_END, f"task-{S}", S, f"task failed {S}")
    spanhooks.emit(GenAIEvent.AGENT_END, f"agent-{S}", S, None)
    spanhooks.emit(GenAIEvent.WORKFLOW_END, f"flow-{S}", S, None)


# -- decorators: arguments, results, exceptions, sync and async, streams ----------------------

LeakyError = type(f"LeakyError_{S}", (RuntimeError,), {})  # its name is error.type


@spanhooks.tool(name=f"lookup-{S}")
def lookup(query, api_key=None):
    return {"answer": S}


@spanhooks.llm(model=f"gpt-{S}", provider=f"prov-{S}")
def chat(messages):
    return {
        "id": f"chatcmpl-{S}", "model": f"gpt-{S}",
        "choices": [{"message": {"role": "assistant", "content": S}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }


@spanhooks.llm(provider=f"prov-{S}")  # the model comes from the call's own argument
def chat_with(model, messages):
    return {"model": model, "choices": [{"message": {"content": S}}]}


@spanhooks.llm(model=f"overloaded-{S}")
def overloaded(messages):
    raise LeakyError(f"overloaded {S}")


@spanhooks.llm(model=f"stream-{S}")
def stream(prompt):
    yield {"choices": [{"delta": {"content": S}}]}
    yield {"model": f"stream-{S}", "choices": [{"delta": {"content": S}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 2}}


@spanhooks.instrument
def fails(secret):
    raise ValueError(f"bad input {secret}")


@spanhooks.workflow(name=f"support-{S}")
def support(question):
    lookup(question, api_key=S)
    chat([{"role": "user", "content": question}])
    chat_with(f"gpt-{S}", [question])
    for _ in stream(question):
        pass
    for _ in stream(question):
        break  # left early
    for call in (lambda: fails(question), lambda: overloaded([question])):
        try:
            call()
        except (ValueError, RuntimeError):
            pass  # caught by the application; the span recorded it
    return f"answer {S}"


@spanhooks.tool
async def fetch_page(url):
    raise ConnectionError(f"refused {url}")


@spanhooks.instrument(name=f"chunks-{S}")
async def chunks(question):
    yield f"chunk {S}"
    yield f"chunk {question}"


@spanhooks.agent(name=f"helpdesk-{S}")
async def helpdesk(question):
    try:
        await fetch_page(f"https://{S}.example/")
    except ConnectionError:
        pass
    return [chunk async for chunk in chunks(question)]


def plant_decorators():
    assert support(S) == f"answer {S}"


async def plant_decorators_async():
    assert await helpdesk(S) == [f"chunk {S}", f"chunk {S}"]


# -- ops.errors: handle_error (sync, async, own logger), handlers, a raising handler ----------

def failing_error_handler(info):
    raise RuntimeError(f"handler failed on {info.operation}")


def plant_errors():
    register_error_handler(lambda info: got("errors", info.operation))
    register_error_handler(failing_error_handler, ErrorContext.TOOL)
    handle_error(
        raised(RuntimeError(f"token {S} expired")), ErrorContext.TOOL, ErrorSeverity.HIGH,
        operation=f"refresh {S}", metadata={"token": S, "user": S},
    )
    own = ErrorHandler(logger=logging.getLogger("app.errors"))
    own.handle_error(raised(ValueError(f"bad {S}")), "api", "critical", operation=f"call {S}")


async def plant_errors_async():
    await handle_error_async(
        raised(ConnectionError(f"WebSocket {S} disconnected")), context=ErrorContext.WEBSOCKET,
        severity=ErrorSeverity.HIGH, operation=f"websocket {S}",
    )


# -- ops.health: checks whose name, message and failure carry the secret ----------------------

def cannot_reach():
    raise ConnectionError(f"cannot reach {S}")


HEALTH = (f"db-{S}", f"cache-{S}", "queue")


def plant_health():
    monitor = get_health_monitor()
    monitor.register_alert_callback(lambda alert: got("health", alert.message))
    register_health_check(
        HEALTH[0], lambda: {"status": "degraded", "message": f"slow {S}", "dsn": S},
        interval=60.0, critical=True,
    )
    register_health_check(HEALTH[1], cannot_reach, interval=60.0)
    register_health_check(
        HEALTH[2], lambda: {"status": "unhealthy", "message": f"backlog {S}"}, interval=60.0
    )
    wait_for(
        lambda: all(c["last_check"] for c in monitor.get_health_status()["components"].values()),
        "every health check to run once",
    )


# -- ops.polling: a task that fails with the secret, a condition that raises ------------------

def sync_job():
    raise RuntimeError(f"poll failed {S}")


def broken_condition():
    raise RuntimeError(f"condition raised {S}")


def plant_polling():
    polling = get_polling_manager()
    register_polling_task(f"sync-{S}", sync_job, interval=60.0, max_retries=0)
    register_polling_task("guarded", lambda: None, interval=60.0, condition=broken_condition)
    wait_for(
        lambda: polling.get_task_status(f"sync-{S}")["runs"] >= 1
        and polling.get_task_status("guarded")["skipped"] >= 1,
        "the polling tasks to run once",
    )


# -- ops.resources: cleanups whose description carries the secret, one that fails ----------------

def bad_close():
    raise OSError(f"close failed {S}")


def plant_resources():
    resources = get_resource_manager()
    cleanup_id = register_cleanup(
        lambda: got("resources", True), ResourceType.WEBSOCKET, CleanupPriority.CRITICAL,
        f"socket {S}",
    )
    resources.cleanup(cleanup_id)
    label = f"file {S}"
    with resources.managed_resource(object(), bad_close, ResourceType.FILE, description=label):
        pass
    register_cleanup(lambda: None, ResourceType.SESSION, description=f"at exit {S}")  # runs at exit


# -- ops.router: event types, payloads, middleware, a raising handler, an unhandled type -------

def no_route(data):
    raise KeyError(f"no route for {data['text']}")


@spanhooks.workflow(name="routing")  # router events are recorded on the current span
def plant_router():
    router = EventRouter(name=f"router-{S}")
    router.register_middleware(lambda event_type, data: {**data, "seen_by": f"middleware {S}"})
    router.register_realtime_handler(f"session.created-{S}", lambda data: got("router", data))
    router.register_realtime_handler(f"session.created-{S}", no_route, priority=10)
    router.route(f"session.created-{S}", {"text": S, "api_key": S})
    router.route(f"unhandled-{S}", {"text": S})


# -- ops.session: ids, reasons, a timeout ------------------------------------------------------

def plant_session():
    session = SessionState(f"conv-{S}", user_id=f"user-{S}", inactivity_timeout=900)
    session.register_status_callback(lambda old, new, s: got("session", s.conversation_id))
    session.update_status(SessionStatus.ACTIVE, reason=f"user said {S}")
    session.check_timeout(now=time.monotonic() + 10_000)


# -- ops.messaging: sender, receiver, organization, session, content; a failing handler -------

def message_context(kind):
    return MessageContext(
        sender_id=f"sender-{S}", receiver_id=f"receiver-{S}", organization_id=f"org-{S}",
        handler_context=kind, message_id=7, session_id=f"sess-{S}", metadata={"token": S},
    )


@register_conversation_handler
def converse(message, context):
    got("messaging", message)
    return f"reply to {message}"


@register_one_way_handler
async def one_way(message, context):
    raise RuntimeError(f"one-way failed {message} from {context.sender_id}")


def plant_messaging():
    kind = HandlerContext.CONVERSATION
    reply = invoke_handler_sync(kind, S, message_context(kind))
    assert reply == f"reply to {S}", reply


async def plant_messaging_async():
    kind = HandlerContext.ONE_WAY
    await invoke_handler(kind, f"note {S}", message_context(kind))


# -- the bridge: another instrumentation's GenAI spans through the plain OpenTelemetry API ----

def plant_foreign_spans():
    tracer = trace.get_tracer("other-instrumentation")
    chat_attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": f"gpt-{S}",
        "gen_ai.provider.name": f"prov-{S}", "server.address": "api.example",
    }
    dispatched = len(received["genai"])
    with tracer.start_as_current_span(
        f"chat gpt-{S}", kind=SpanKind.CLIENT, attributes=chat_attributes
    ) as span:
        span.set_attribute("gen_ai.response.model", f"gpt-{S}")
        span.set_attribute("gen_ai.response.id", f"resp-{S}")
        span.set_attribute("gen_ai.usage.input_tokens", 5)
        span.set_attribute("gen_ai.usage.output_tokens", 7)
    assert received["genai"][dispatched:] == [f"gpt-{S}"]  # the bridge's llm_start
    tool_attributes = {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"tool-{S}",
        "gen_ai.tool.call.arguments": json.dumps({"q": S}),
    }
    with tracer.start_as_current_span(f"execute_tool tool-{S}", attributes=tool_attributes) as span:
        span.set_attribute("gen_ai.tool.call.result", S)
        span.set_status(Status(StatusCode.ERROR, f"tool broke {S}"))
    agent_attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": f"agent-{S}"}
    with tracer.start_as_current_span(f"invoke_agent agent-{S}", attributes=agent_attributes):
        pass
    with tracer.start_as_current_span("custom", attributes={"gen_ai.operation.name": f"op-{S}"}):
        pass  # its operation is a label of spanhooks_span_duration_seconds


# -- the table: every group, in order ---------------------------------------------------------

ENTRY_POINTS = [
    plant_callbacks,  # the app's callbacks: receivers, raising (function, class, span), slow
    plant_llmproc,  # CallbackEvent: every event, an unmatched call id, an unknown event
    plant_managers,  # a declared EventSet, manager.fork(), a CallbackManager of the app's own
    plant_thea,  # trigger() with keyword arguments, every Thea event
    plant_logillm,  # typed events, a ProviderErrorEvent, a failed module; LogiLLM's JSONL log
    plant_meeting,  # MeetingEventType on the process-wide manager and a MeetingEventHandler
    plant_genai,  # GenAIEvent emitted directly, errors as exceptions and as text
    plant_decorators,  # @workflow/@tool/@llm/@instrument: arguments, results, raises, streams
    plant_errors,  # handle_error, error handlers (one raising), an ErrorHandler with a logger
    plant_health,  # checks named after, reporting and raising the secret; alerts
    plant_polling,  # a task that fails with the secret, a condition that raises it
    plant_resources,  # cleanups described by it, one failing with it
    plant_router,  # event types, payloads, middleware, a raising handler, an unhandled type
    plant_session,  # conversation and user ids, a reason, a timeout
    plant_messaging,  # sender, receiver, organisation, session ids, message content
    plant_foreign_spans,  # the bridge: chat, execute_tool, invoke_agent spans of the OTel API
]
async def plant_logillm_integration():
    # The real logillm package, traced by its integration: a question and an answer that
    # carry the secret, through a Predict module over logillm's own MockProvider.
    from logillm.core.predict import Predict
    from logillm.providers.mock import MockProvider

    from spanhooks.integrations import logillm as traced_logillm

    traced_logillm.instrument()
    try:
        module = Predict("question -> answer", provider=MockProvider(response_text=f"answer: {S}"))
        prediction = await module(question=f"what is {S}?")
        got("integration", prediction.outputs)
    finally:
        traced_logillm.uninstrument()


ASYNC_ENTRY_POINTS = [
    plant_logillm_integration,  # spanhooks.integrations.logillm over the real logillm
    plant_meeting_async,  # await MeetingEventHandler.emit
    plant_decorators_async,  # an async @agent, a failing async @tool, an async generator
    plant_errors_async,  # await handle_error_async
    plant_messaging_async,  # await invoke_handler with a raising async handler
]


async def run_async_entry_points():
    for plant in ASYNC_ENTRY_POINTS:
        await plant()


for plant in ENTRY_POINTS:
    plant()
asyncio.run(run_async_entry_points())

# Callbacks got the real values: redaction applies to outputs, not to what callbacks see.
GROUPS = (
    "llmproc", "managers", "thea", "genai", "meeting", "errors", "health", "router", "session",
    "messaging", "integration",
)
for group in GROUPS:
    assert any(S in repr(value) for value in received.get(group, ())), (group, received.get(group))
assert received.get("callbacks") and received.get("logillm") and received.get("resources")

time.sleep(0.5)  # a few metric export intervals, so OTLP metrics carry every series
spanhooks.force_flush()
open(PATHS["scrape"], "wb").write(fetch(telemetry.metrics_server.url + "/metrics"))
open(PATHS["health"], "wb").write(fetch(telemetry.metrics_server.url + "/health"))
spanhooks.shutdown()
print(f"canary app: {len(ENTRY_POINTS) + len(ASYNC_ENTRY_POINTS)} entry point groups planted")
'''


# -- receivers: OTLP/HTTP and OTLP/gRPC, every signal, every body kept -------------------------


@dataclass
class Bodies:
    """The request bodies a receiver got, by signal (``traces``, ``metrics``, ``logs``)."""

    by_signal: dict[str, list[bytes]]

    def joined(self, signal: str) -> bytes:
        return b"".join(self.by_signal[signal])


def _empty() -> Bodies:
    return Bodies({signal: [] for signal in SIGNALS})


@pytest.fixture(scope="module")
def http_receiver() -> Iterator[tuple[str, Bodies]]:
    """A real OTLP/HTTP receiver that keeps every request's raw body by ``/v1/<signal>``."""
    bodies = _empty()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            signal = self.path.rstrip("/").rsplit("/", 1)[-1]
            bodies.by_signal.setdefault(signal, []).append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, bodies: Bodies) -> None:
        self.bodies = bodies

    def Export(self, request: Any, context: Any) -> Any:
        self.bodies.by_signal["traces"].append(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, bodies: Bodies) -> None:
        self.bodies = bodies

    def Export(self, request: Any, context: Any) -> Any:
        self.bodies.by_signal["metrics"].append(request.SerializeToString())
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, bodies: Bodies) -> None:
        self.bodies = bodies

    def Export(self, request: Any, context: Any) -> Any:
        self.bodies.by_signal["logs"].append(request.SerializeToString())
        return logs_service_pb2.ExportLogsServiceResponse()


@pytest.fixture(scope="module")
def grpc_receiver() -> Iterator[tuple[str, Bodies]]:
    """A real OTLP/gRPC receiver for traces, metrics and logs (conftest's ``grpc_sink`` has the
    trace service only); each request kept as ``SerializeToString()`` bytes."""
    bodies = _empty()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(bodies), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(bodies), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(bodies), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", bodies
    server.stop(grace=None)


# -- running the app ---------------------------------------------------------------------------

FILES = ("jsonl", "logillm", "log", "scrape", "health")
"""The app's files: spanhooks' JSONL, LogiLLM's event log, the DEBUG log, /metrics, /health."""


@dataclass
class Run:
    """One run of the app: its exit, stdout, stderr, files and what its receiver got."""

    protocol: str
    returncode: int
    stdout: bytes
    stderr: bytes
    files: dict[str, Path]
    bodies: Bodies

    def outputs(self) -> dict[str, bytes]:
        """Every output of this run by name, as the bytes that left the process."""
        files = {
            name: path.read_bytes() if path.exists() else b"" for name, path in self.files.items()
        }
        outputs = {
            "JSONL": files["jsonl"],
            "LogiLLM JSONL": files["logillm"],
            "log file": files["log"],
            "/metrics": files["scrape"],
            "/health": files["health"],
            "stdout": self.stdout,
            "stderr": self.stderr,
        }
        outputs.update({f"OTLP {signal}": self.bodies.joined(signal) for signal in SIGNALS})
        return {f"{self.protocol}: {name}": data for name, data in outputs.items()}


def otel_env(endpoint: str, protocol: str) -> dict[str, str]:
    """Every exporter on: OTLP for all three signals, and the console ones to stdout."""
    return clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_TRACES_EXPORTER="otlp,console",
        OTEL_METRICS_EXPORTER="otlp,console",
        # Supported since OTEL_LOGS_EXPORTER landed (lifecycle/logs.py): spanhooks' WARNING and
        # ERROR records as OTLP log records (/v1/logs) and as JSON on stdout.
        OTEL_LOGS_EXPORTER="otlp,console",
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_BSP_SCHEDULE_DELAY="100",
        PYTHONUNBUFFERED="1",
    )


def start_app(
    directory: Path, endpoint: str, protocol: str
) -> tuple[subprocess.Popen[bytes], dict[str, Path]]:
    directory.mkdir()
    script = directory / "app.py"
    script.write_text(textwrap.dedent(REDACTION_APP))
    files = {name: directory / f"{name}.out" for name in FILES}
    process = subprocess.Popen(
        [sys.executable, str(script), SECRET, json.dumps({k: str(v) for k, v in files.items()})],
        cwd=directory,
        env=otel_env(endpoint, protocol),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return process, files


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
    http_receiver: tuple[str, Bodies],
    grpc_receiver: tuple[str, Bodies],
) -> dict[str, Run]:
    """The app run once over OTLP/HTTP and once over OTLP/gRPC, side by side."""
    base = tmp_path_factory.mktemp("redaction-canary")
    receivers = {"http/protobuf": http_receiver, "grpc": grpc_receiver}
    started = {
        protocol: start_app(base / protocol.replace("/", "-"), endpoint, protocol)
        for protocol, (endpoint, _) in receivers.items()
    }
    finished: dict[str, Run] = {}
    for protocol, (process, files) in started.items():
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        name = "grpc" if protocol == "grpc" else "http"
        finished[name] = Run(
            name, process.returncode, stdout, stderr, files, receivers[protocol][1]
        )
    return finished


def all_outputs(runs: dict[str, Run]) -> dict[str, bytes]:
    return {name: data for run in runs.values() for name, data in run.outputs().items()}


def leaks_in(outputs: dict[str, bytes], needle: str) -> dict[str, int]:
    return {name: data.count(needle.encode()) for name, data in outputs.items()}


def where_in_spans(path: Path, needle: str) -> dict[str, int]:
    """Where ``needle`` is in a spanhooks-format JSONL file: ``scope: place`` -> count, the
    place being the span name, an attribute key, an event's attribute key or the status."""
    found: dict[str, int] = {}

    def note(scope: str, place: str, value: Any) -> None:
        count = json.dumps(value).count(needle)
        if count:
            found[f"{scope}: {place}"] = found.get(f"{scope}: {place}", 0) + count

    for line in path.read_text().splitlines():
        record = json.loads(line)
        scope = record["scope"]["name"]
        note(scope, "span name", record["name"])
        note(scope, "status", record["status"]["description"])
        for key, value in record["attributes"].items():
            note(scope, key, value)
        for event in record["events"]:
            note(scope, f"event {event['name']!r}", event["name"])
            for key, value in event["attributes"].items():
                note(scope, f"event {event['name']}: {key}", value)
    return dict(sorted(found.items()))


def leak_context(outputs: dict[str, bytes], needle: str, per_output: int = 4) -> str:
    """For each output that has ``needle``: the distinct bytes around its first occurrences."""
    lines: list[str] = []
    pattern = re.compile(rb".{0,90}" + re.escape(needle.encode()) + rb".{0,60}", re.DOTALL)
    for name, data in outputs.items():
        seen: list[bytes] = []
        for match in pattern.finditer(data):
            snippet = match.group()
            if snippet not in seen:
                seen.append(snippet)
            if len(seen) == per_output:
                break
        for snippet in seen:
            lines.append(f"  {name}: {snippet!r}")
    return "\n".join(lines)


# -- the assertions ----------------------------------------------------------------------------


def test_both_runs_planted_every_entry_point_group(runs: dict[str, Run]) -> None:
    for run in runs.values():
        assert run.returncode == 0, run.stderr.decode(errors="replace")[-4000:]
        assert b"canary app: 21 entry point groups planted" in run.stdout


def test_the_canary_reaches_no_output(runs: dict[str, Run]) -> None:
    outputs = all_outputs(runs)
    leaks = leaks_in(outputs, SECRET)
    found = {name: n for name, n in leaks.items() if n}
    spans = where_in_spans(runs["http"].files["jsonl"], SECRET)
    assert leaks == dict.fromkeys(outputs, 0), (
        f"{found}\nin the JSONL spans: {json.dumps(spans, indent=1)}\n"
        f"{leak_context(outputs, SECRET)}"
    )
    fragments = {name: n - leaks[name] for name, n in leaks_in(outputs, FRAGMENT).items()}
    assert fragments == dict.fromkeys(outputs, 0), leak_context(outputs, FRAGMENT)


CARRIERS = (
    "JSONL",
    "LogiLLM JSONL",
    "OTLP traces",
    "OTLP metrics",  # the GenAI metrics' model attributes
    "OTLP logs",  # the raising callbacks' scrubbed tracebacks
    "log file",
    "stdout",
    "stderr",
    "/metrics",
)
"""Outputs that must show the planted values as ``[REDACTED]``: else the canary never got
there and 0 bytes would prove nothing."""


def test_the_planted_values_reached_every_output_redacted(runs: dict[str, Run]) -> None:
    outputs = all_outputs(runs)
    carriers = {f"{run}: {name}" for run in runs for name in CARRIERS}
    redacted = {name: outputs[name].count(REDACTED.encode()) for name in sorted(carriers)}
    assert all(redacted.values()), redacted


def test_the_spans_of_every_entry_point_group_are_in_the_file(runs: dict[str, Run]) -> None:
    r = REDACTED
    expected = {
        f"invoke_agent agent-{r}",  # llmproc turn, genai agent
        f"execute_tool tool-{r}",  # llmproc tool, genai tool call
        f"chat gpt-{r}",  # llmproc API request, genai llm, logillm provider, decorator
        f"module Module_{r}",  # logillm
        "module Predict",  # the real logillm, through spanhooks.integrations.logillm
        f"optimize Optimizer_{r}",
        "meeting",
        f"workflow support-{r}",  # decorators
        f"execute_tool lookup-{r}",
        f"chat stream-{r}",
        f"invoke_agent helpdesk-{r}",
        "on_message",  # thea, a point event with no open span
        "handle_error tool",  # ops.errors
        "handle_error websocket",
        f"health_check db-{r}",  # ops.health
        f"poll sync-{r}",  # ops.polling
        "cleanup websocket",  # ops.resources
        "workflow routing",  # ops.router
        "session active",  # ops.session
        "session timed_out",
        "process conversation",  # ops.messaging
        "process one_way",
        "speaking_turn",  # ops.messaging's MeetingEventHandler
    }
    for run in runs.values():
        records = [json.loads(line) for line in run.files["jsonl"].read_text().splitlines()]
        names = {record["name"] for record in records}
        assert expected <= names, sorted(expected - names)
        foreign = [
            record["attributes"]
            for record in records
            if record["scope"]["name"] == "other-instrumentation"
        ]
        operations = sorted(str(attributes.get("gen_ai.operation.name")) for attributes in foreign)
        assert operations[:3] == ["chat", "execute_tool", "invoke_agent"], operations  # the bridge


def test_metric_label_values_that_carried_the_canary_are_redacted(runs: dict[str, Run]) -> None:
    for run in runs.values():
        scrape = run.files["scrape"].read_text()
        assert f'gen_ai_request_model="gpt-{REDACTED}"' in scrape
        assert f"slow_{REDACTED}" in scrape  # spanhooks_callback_timeouts_total{callback}
        assert f'operation="op-{REDACTED}"' in scrape  # the foreign span's operation


def test_the_log_file_and_stderr_carry_the_scrubbed_tracebacks(runs: dict[str, Run]) -> None:
    for run in runs.values():
        log = run.files["log"].read_text()
        assert "DEBUG" in log
        assert f"ValueError: callback refused {REDACTED}" in log  # the raising callback
        assert f"ValueError: callback refused {REDACTED}" in run.stderr.decode()


@pytest.mark.parametrize("signal", SIGNALS)
def test_each_receiver_got_every_signal(runs: dict[str, Run], signal: str) -> None:
    counts = {run.protocol: len(run.bodies.by_signal[signal]) for run in runs.values()}
    assert all(counts.values()), counts
