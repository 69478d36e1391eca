"""MCP (the ``mcp`` package, 2.3.x) traced with one line: ``instrument()``, on either side.

A request made over MCP (stdio or streamable HTTP) becomes a CLIENT span where it is sent and a
SERVER span where it is handled, in one trace: the W3C trace context of the client span
(``traceparent``, ``tracestate``, ``baggage``) goes in the request's ``params._meta`` (mcp's
dispatcher writes it with the configured propagators while spanhooks' span is current), and the
server's span takes it as its parent, as the OpenTelemetry MCP conventions say. What the spans
carry, on both sides:

- the name ``{mcp.method.name} {target}`` (``tools/call get_weather``, ``prompts/get review``;
  ``tools/list``, ``initialize``... have no target), ``mcp.method.name`` and
  ``jsonrpc.request.id`` (the client reads the id mcp allocates as it sends);
- ``gen_ai.tool.name`` and ``gen_ai.operation.name = execute_tool`` for ``tools/call``,
  ``gen_ai.prompt.name`` for ``prompts/get``, ``mcp.resource.uri`` for ``resources/read``,
  ``resources/subscribe`` and ``resources/unsubscribe``;
- ``mcp.protocol.version`` (the negotiated one; an ``initialize`` gets it from its result);
- ``network.transport``: ``pipe`` over stdio (``stdio_client``, ``stdio_server``), ``tcp``
  over HTTP, then also ``network.protocol.name = http`` and ``mcp.session.id`` (the
  ``Mcp-Session-Id`` of the HTTP session, once the server has given one), with
  ``server.address``/``server.port`` on the client and ``client.address``/``client.port`` on
  the server;
- on failure ERROR status and ``error.type``: the JSON-RPC error code (also as
  ``rpc.response.status_code``, the error message as the status description) for an error
  response, ``tool_error`` for a ``CallToolResult`` with ``isError``, the exception's type for
  anything else (a timeout is mcp's ``-32001`` error);
- ``gen_ai.tool.call.arguments`` and ``gen_ai.tool.call.result`` (the structured result, else
  the content blocks) only when the manager captures content.

A server span is linked to the span that was current where the request arrived (an HTTP server
span, say) when it has a parent from ``_meta``. Attributes pass through the manager's attribute
policy (bounds, ``redact_patterns``, redactor) like every spanhooks attribute.

Tool calls reach spanhooks' callbacks as the ``genai`` events every framework gives:
``tool_call_start(tool_name, arguments)`` and ``tool_call_end(tool_name, result, error)`` on the
manager of the side that traced them (the client's ``CallToolResult``, the server's result as
sent; ``error`` an exception, or a tool error's text). The events carry no span of their own:
the ``genai`` set's ``execute_tool`` pair is an INTERNAL span named ``execute_tool {name}``, and
an event's span kind and name are fixed by its declaration, while the conventions want this one
span per side as CLIENT or SERVER named ``tools/call {name}``, started under a remote parent with
a link; so the span is made with the manager's tracer provider (scope ``spanhooks.mcp``) and the
events are dispatched for it with :meth:`~spanhooks.CallbackManager.notify`, as spanhooks does
for the GenAI spans of other instrumentations.

mcp 2.x traces itself too, through the global tracer provider: a ``MCP send ...`` CLIENT span
around each request it sends and a SERVER span per message from its ``OpenTelemetryMiddleware``.
While instrumented, spanhooks' spans take their place, so a request is one span per side: the
``OpenTelemetryMiddleware`` of each server made from then on is replaced by spanhooks' (put back
by ``uninstrument()``), and mcp's client span is not made for a request spanhooks traces (mcp
still writes the trace context, which is then spanhooks' span's). Requests spanhooks does not
trace (a disabled manager, no tracer provider, servers made before ``instrument()``) keep mcp's
own spans.

How it hooks in: the public ``ClientSession.send_request`` (every typed request goes through
it), the ``Server.middleware`` list that mcp documents as its server hook (set up in
``Server.__init__``, which ``MCPServer`` also uses), and, to know the transport, the
``stdio_client``/``stdio_server`` context managers (wherever the ``mcp`` package exposes them;
a name imported from them before ``instrument()`` is not traced as ``pipe``) and the
``StreamableHTTPTransport`` that ``streamable_http_client`` makes. One name of mcp's own is
replaced: the ``otel_span`` helper that ``mcp.shared.jsonrpc_dispatcher`` calls, so that a
request spanhooks traces gets no second client span and its id reaches spanhooks' span; it is
looked up when ``instrument()`` runs and left alone, with mcp's span kept, if it is missing.
For a server made before ``instrument()``, put :func:`middleware` in its ``middleware`` list
(in place of mcp's ``OpenTelemetryMiddleware``). ``uninstrument()`` undoes it all; both are
idempotent and thread-safe. A failure inside spanhooks is logged and never reaches the request.

Importing this module does not import mcp; ``instrument()`` does, and raises ``ImportError``
(not installed) or ``RuntimeError`` (unsupported version or hook points) with the install hint.

Threading: a request is traced in the task that sends or handles it: its span is current there
while it runs (so spans made meanwhile nest under it, and the tool's under the server span),
and what a request needs is kept on a per-call object and context variables. The tables of
transports and patched servers are guarded by a lock; any thread or event loop may run MCP.

Not mapped: notifications (neither side makes a span for them; the client's carry no trace
context, the server's keep mcp's own span), server-to-client requests (sampling, elicitation,
roots: mcp's own spans), the SSE and in-memory transports' ``network.transport``, the
``mcp.client.*``/``mcp.server.*`` duration and session metrics, ``network.protocol.version``,
content of methods other than ``tools/call`` (prompt arguments and messages, resource
contents), the ``server/discover`` probe of the 2026-07-28 protocol (mcp sends it past
``send_request``; it keeps mcp's own span), and the conventions' option of adding the MCP
attributes to an outer ``execute_tool`` span instead of starting a new one.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import logging
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer, TracerProvider

from spanhooks._version import __version__
from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.events.scope import scope_name
from spanhooks.integrations._framework import install_hint, load, supported_range, unsupported
from spanhooks.integrations._runs import isolated
from spanhooks.tracing.attributes import AttributePolicy, coerce
from spanhooks.tracing.bounds import MAX_STATUS_DESCRIPTION_LENGTH, bounded_name
from spanhooks.tracing.spans import record_failure
from spanhooks.util.log import rate_limited
from spanhooks.util.text import safe_str, truncate
from spanhooks.vocab._genai import field
from spanhooks.vocab.genai import GenAIEvent

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_VERSIONS",
    "instrument",
    "is_instrumented",
    "middleware",
    "uninstrument",
]

_SUPPORTED = ((2, 3), (2, 4))
INSTALL_HINT = install_hint("mcp")
SUPPORTED_VERSIONS = supported_range(_SUPPORTED)
"""The mcp releases whose session, middleware and transports this module was written against
(mcp calls its server middleware provisional within 2.x)."""

# The MCP conventions' attributes (their constants in opentelemetry-semantic-conventions are
# deprecated there: the conventions moved to the GenAI repository).
METHOD_NAME = "mcp.method.name"
SESSION_ID = "mcp.session.id"
PROTOCOL_VERSION = "mcp.protocol.version"
RESOURCE_URI = "mcp.resource.uri"
REQUEST_ID = "jsonrpc.request.id"
STATUS_CODE = "rpc.response.status_code"
PROMPT_NAME = "gen_ai.prompt.name"
TRANSPORT = "network.transport"
PROTOCOL_NAME = "network.protocol.name"
ERROR_TYPE = "error.type"
TOOL_ERROR = "tool_error"
"""``error.type`` of a tool call whose result says ``isError``."""

_TOOLS_CALL = "tools/call"
_RESOURCE_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})
_INVALID_PARAMS = -32602  # what mcp answers for params that fail validation
_SESSION_HEADER = "mcp-session-id"

_isolated = isolated("MCP")


# -- what a traced request keeps -----------------------------------------------------------


class _Tracing:
    """The manager a set of hooks emits on, and whether they still trace."""

    def __init__(self, manager: CallbackManager | None) -> None:
        self.manager = get_callback_manager()
        self.enabled = True
        if manager is not None:
            self.use(manager)

    def use(self, manager: CallbackManager) -> None:
        """Emit on ``manager`` from the next request on."""
        if not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.manager = manager

    def active(self) -> CallbackManager | None:
        """The manager to trace a request on now, or None to let it pass untraced."""
        manager = self.manager
        return manager if self.enabled and manager.enabled else None


class _Peer:
    """The transport a client session or a served request runs over."""

    __slots__ = ("address", "http", "port", "session", "transport")

    def __init__(
        self,
        transport: str,
        *,
        http: Any = None,
        address: str | None = None,
        port: int | None = None,
        session: str | None = None,
    ) -> None:
        self.transport = transport
        self.http = http  # the client's StreamableHTTPTransport: its session id, once given
        self.address = address
        self.port = port
        self.session = session

    def attributes(self, *, server_side: bool) -> dict[str, Any]:
        attributes: dict[str, Any] = {TRANSPORT: self.transport}
        if self.transport == "tcp":
            attributes[PROTOCOL_NAME] = "http"
        prefix = "client" if server_side else "server"
        if self.address:
            attributes[f"{prefix}.address"] = self.address
            if self.port is not None:
                attributes[f"{prefix}.port"] = self.port
        attributes[SESSION_ID] = self.session_id()
        return attributes

    def session_id(self) -> str | None:
        found = self.session if self.session is not None else field(self.http, "session_id")
        return found if isinstance(found, str) and found else None


class _Call:
    """One request being traced: its span, what the end needs, and what to restore."""

    __slots__ = (
        "arguments",
        "claimed",
        "manager",
        "method",
        "peer",
        "sending",
        "span",
        "token",
        "tool",
    )

    def __init__(self, manager: CallbackManager, method: str) -> None:
        self.manager = manager
        self.method = method
        self.tool: str | None = None
        self.arguments: Any = None
        self.peer: _Peer | None = None
        self.span: trace.Span | None = None
        self.token: contextvars.Token[otel_context.Context] | None = None  # span made current
        self.sending: contextvars.Token[_Call | None] | None = None
        self.claimed = False  # mcp's client span for this request was replaced


_SENDING: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "spanhooks_mcp_sending", default=None
)
"""The client request spanhooks is sending in this task (mcp's own span is not made for it)."""
_CONNECTING: contextvars.ContextVar[_Peer | None] = contextvars.ContextVar(
    "spanhooks_mcp_connecting", default=None
)
"""The client transport being entered in this task, for the session made over it next."""
_SERVING: contextvars.ContextVar[_Peer | None] = contextvars.ContextVar(
    "spanhooks_mcp_serving", default=None
)
"""The transport this task (and the handlers it spawns) serves MCP over."""

_tables_lock = threading.Lock()
_peers: weakref.WeakKeyDictionary[Any, _Peer] = weakref.WeakKeyDictionary()
"""Client sessions and the transport each was made over."""

_tracers: weakref.WeakKeyDictionary[TracerProvider, Tracer] = weakref.WeakKeyDictionary()
_global_tracer: list[Tracer] = []  # the global provider's (a proxy until one is set)


def _tracer(manager: CallbackManager) -> Tracer:
    """The ``spanhooks.mcp`` tracer of ``manager``'s provider (the global one if it has none).
    Two threads making the same tracer at once only make it twice."""
    provider = manager.tracer_provider
    if provider is None:
        if not _global_tracer:
            _global_tracer.append(trace.get_tracer(scope_name("mcp"), __version__))
        return _global_tracer[0]
    try:
        tracer = _tracers.get(provider)
    except TypeError:  # a provider that cannot be a weak key: not cached
        return trace.get_tracer(scope_name("mcp"), __version__, tracer_provider=provider)
    if tracer is None:
        tracer = trace.get_tracer(scope_name("mcp"), __version__, tracer_provider=provider)
        with _tables_lock:
            _tracers[provider] = tracer
    return tracer


def _name(policy: AttributePolicy, method: str, target: str | None) -> str:
    """``{mcp.method.name} {target}``, scrubbed and bounded as every spanhooks span name."""
    return bounded_name(policy.scrub(f"{method} {target}" if target else method))


def _request_attributes(method: str, params: Any) -> tuple[str | None, dict[str, Any]]:
    """The target (tool or prompt name) of a request and the attributes its method gives."""
    attributes: dict[str, Any] = {METHOD_NAME: method}
    name = field(params, "name")
    target = name if isinstance(name, str) and name else None
    if method == _TOOLS_CALL:
        attributes[gen_ai.GEN_AI_OPERATION_NAME] = "execute_tool"
        attributes[gen_ai.GEN_AI_TOOL_NAME] = target
    elif method == "prompts/get":
        attributes[PROMPT_NAME] = target
    else:
        target = None
    if method in _RESOURCE_METHODS:
        uri = field(params, "uri")
        attributes[RESOURCE_URI] = safe_str(uri) if uri is not None else None
    return target, attributes


def _plain(value: Any) -> Any:
    """A pydantic model (mcp's results and content blocks) as its JSON form; else as it is."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    return value


def _tool_output(result: Any) -> Any:
    """What a tool call returned, for ``gen_ai.tool.call.result``: the structured result if
    there is one, else the content blocks."""
    structured = field(result, "structured_content", "structuredContent")
    if structured is not None:
        return _plain(structured)
    content = field(result, "content")
    if isinstance(content, list | tuple):
        return [_plain(block) for block in content]
    return _plain(result)


def _tool_error(result: Any) -> str | None:
    """A tool error's text (its first text block), or ``tool_error`` when it has none; None
    when the result is not an error."""
    if field(result, "is_error", "isError") is not True:
        return None
    content = field(result, "content")
    if isinstance(content, list | tuple) and content:
        text = field(content[0], "text")
        if isinstance(text, str) and text:
            return text
    return TOOL_ERROR


def _error_code(error: BaseException) -> int | None:
    """The JSON-RPC error code of an error response (mcp's ``MCPError``), or of params that
    failed validation; None for other exceptions."""
    code = field(field(error, "error"), "code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    kind = type(error)
    if kind.__name__ == "ValidationError" and kind.__module__.startswith("pydantic"):
        return _INVALID_PARAMS
    return None


def _extracted(meta: Any) -> otel_context.Context | None:
    """The context a request's ``_meta`` carries, or None when it names no valid parent."""
    if not isinstance(meta, Mapping) or not meta:
        return None
    try:
        found = propagate.extract(meta)
    except (TypeError, ValueError):
        return None
    return found if trace.get_current_span(found).get_span_context().is_valid else None


# -- opening and closing a request's span ------------------------------------------------------


def _begin(
    call: _Call,
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, Any],
    parent: otel_context.Context,
    links: list[Link] | None = None,
) -> None:
    """Start the request's span under ``parent`` and make it current."""
    manager = call.manager
    span = tracer.start_span(
        name,
        context=parent,
        kind=kind,
        attributes=manager.attribute_policy.recorded(attributes),
        links=links,
    )
    call.span = span
    if span.is_recording():
        call.token = otel_context.attach(trace.set_span_in_context(span, parent))


def _started(call: _Call) -> None:
    """Tell the callbacks a tool call started (inside its span, which their failures go to)."""
    if call.tool is not None:
        call.manager.notify(GenAIEvent.TOOL_CALL_START, call.tool, call.arguments, span=call.span)


def _tool_attributes(
    call: _Call, params: Any, target: str | None, attributes: dict[str, Any]
) -> None:
    """Note a ``tools/call``'s tool and arguments on ``call`` (arguments as content)."""
    if call.method != _TOOLS_CALL:
        return
    call.tool = target or "tool"
    call.arguments = field(params, "arguments")
    if call.manager.capture_content:
        attributes[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS] = _plain(call.arguments)


@_isolated
def _open_client(call: _Call, session: Any, request: Any) -> None:
    """The CLIENT span of a request ``session`` is about to send, under the current span."""
    params = field(request, "params")
    target, attributes = _request_attributes(call.method, params)
    with _tables_lock:
        call.peer = _peers.get(session)
    if call.peer is not None:
        attributes.update(call.peer.attributes(server_side=False))
    version = getattr(session, "protocol_version", None)
    if isinstance(version, str):
        attributes[PROTOCOL_VERSION] = version
    _tool_attributes(call, params, target, attributes)
    name = _name(call.manager.attribute_policy, call.method, target)
    tracer = _tracer(call.manager)
    _begin(call, tracer, name, SpanKind.CLIENT, attributes, otel_context.get_current())
    if call.span is not None and call.span.is_recording():
        call.sending = _SENDING.set(call)
    _started(call)


@_isolated
def _open_server(call: _Call, ctx: Any) -> None:
    """The SERVER span of a request being handled, under the span its ``_meta`` names (linked
    to the span current here), else under the current span."""
    params = field(ctx, "params")
    target, attributes = _request_attributes(call.method, params)
    attributes[REQUEST_ID] = safe_str(field(ctx, "request_id"))
    version = field(ctx, "protocol_version")
    if isinstance(version, str):
        attributes[PROTOCOL_VERSION] = version
    call.peer = _served_over(ctx)
    if call.peer is not None:
        attributes.update(call.peer.attributes(server_side=True))
    _tool_attributes(call, params, target, attributes)
    ambient = otel_context.get_current()
    parent = _extracted(field(ctx, "meta") or field(params, "_meta"))
    links = None
    if parent is None:
        parent = ambient
    else:  # linked to the span current here (an HTTP server span), unless it is the parent
        here = trace.get_current_span(ambient).get_span_context()
        remote = trace.get_current_span(parent).get_span_context()
        if here.is_valid and here.span_id != remote.span_id:
            links = [Link(here)]
    name = _name(call.manager.attribute_policy, call.method, target)
    _begin(call, _tracer(call.manager), name, SpanKind.SERVER, attributes, parent, links)
    _started(call)


def _served_over(ctx: Any) -> _Peer | None:
    """The transport of a request being handled: HTTP when it came with an HTTP request
    (streamable HTTP, SSE), else the one the serving task noted (stdio)."""
    request = field(ctx, "request")  # a Starlette request, which is a Mapping of its scope:
    headers = getattr(request, "headers", None)  # its attributes are read, not its keys
    if request is None or headers is None:
        return _SERVING.get()
    client = getattr(request, "client", None)
    host, port = getattr(client, "host", None), getattr(client, "port", None)
    session = headers.get(_SESSION_HEADER) if isinstance(headers, Mapping) else None
    return _Peer(
        "tcp",
        address=host if isinstance(host, str) else None,
        port=port if isinstance(port, int) else None,
        session=session if isinstance(session, str) else None,
    )


@_isolated
def _close(call: _Call, result: Any, error: BaseException | None) -> None:
    """End the request's span with its outcome, after telling the callbacks a tool call ended;
    restore the context it replaced. The span ends and the context is restored whatever
    fails on the way."""
    span = call.span
    try:
        if span is not None:
            try:
                _outcome(call, span, result, error)
            finally:
                span.end()
    finally:
        _restore(call)


def _outcome(call: _Call, span: trace.Span, result: Any, error: BaseException | None) -> None:
    """What the response says on the span (failure, late attributes, result as content) and
    the ``tool_call_end`` callbacks."""
    manager = call.manager
    tool_error = _tool_error(result) if error is None and call.tool is not None else None
    if span.is_recording():
        attributes: dict[str, Any] = {}
        if call.method == "initialize":
            attributes[PROTOCOL_VERSION] = field(result, "protocol_version", "protocolVersion")
        if call.peer is not None:
            attributes[SESSION_ID] = call.peer.session_id()  # the first response brings it
        succeeded = error is None and tool_error is None
        if call.tool is not None and succeeded and manager.capture_content:
            attributes[gen_ai.GEN_AI_TOOL_CALL_RESULT] = _tool_output(result)
        clean = manager.attribute_policy.recorded(attributes)
        if clean:
            span.set_attributes(clean)
        _failed(manager.attribute_policy, span, error, tool_error)
    if call.tool is not None:
        failure: BaseException | str | None = error if error is not None else tool_error
        manager.notify(GenAIEvent.TOOL_CALL_END, call.tool, result, failure, span=span)


def _restore(call: _Call) -> None:
    """Put back the context the request's span replaced (same task: the tokens are good)."""
    sending, call.sending = call.sending, None
    if sending is not None:
        try:
            _SENDING.reset(sending)
        except (ValueError, RuntimeError):  # ended in another context than it started
            _SENDING.set(None)
    token, call.token = call.token, None
    if token is not None:
        otel_context.detach(token)


def _failed(
    policy: AttributePolicy,
    span: trace.Span,
    error: BaseException | None,
    tool_error: str | None,
) -> None:
    """Record a failed request on its span as the conventions do: a JSON-RPC error's code as
    ``error.type``, its message as the status; ``tool_error``; else the exception."""
    if error is not None:
        code = _error_code(error)
        if code is None:
            record_failure(span, error, policy)
            return
        message = field(field(error, "error"), "message")
        if not isinstance(message, str):
            message = "Invalid request parameters" if code == _INVALID_PARAMS else safe_str(error)
        span.set_attributes({ERROR_TYPE: str(code), STATUS_CODE: str(code)})
        span.set_status(
            Status(StatusCode.ERROR, truncate(policy.scrub(message), MAX_STATUS_DESCRIPTION_LENGTH))
        )
    elif tool_error is not None:
        span.set_attribute(ERROR_TYPE, TOOL_ERROR)
        text = policy.scrub(tool_error) if tool_error != TOOL_ERROR else None
        description = truncate(text, MAX_STATUS_DESCRIPTION_LENGTH) if text else None
        span.set_status(Status(StatusCode.ERROR, description))


# -- the hooks -----------------------------------------------------------------------------------


def _send_request(original: Callable[..., Any], tracing: _Tracing) -> Callable[..., Any]:
    """``ClientSession.send_request`` sending each request inside its CLIENT span."""

    @functools.wraps(original)
    async def send_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        manager = tracing.active()
        method = field(request, "method") if manager is not None else None
        if manager is None or not isinstance(method, str):
            return await original(self, request, *args, **kwargs)
        call = _Call(manager, method)
        _open_client(call, self, request)
        try:
            result = await original(self, request, *args, **kwargs)
        except BaseException as exc:
            _close(call, None, exc)
            raise
        _close(call, result, None)
        return result

    return send_request


def _claim(call: _Call | None, kind: object, attributes: Any) -> bool:
    """Whether mcp's client span about to start is for ``call``, which spanhooks traces (then
    the request id mcp allocated is recorded on spanhooks' span)."""
    try:
        if call is None or call.claimed or kind is not SpanKind.CLIENT or call.span is None:
            return False
        if not isinstance(attributes, Mapping) or attributes.get(METHOD_NAME) != call.method:
            return False
        call.claimed = True
        request_id = attributes.get(REQUEST_ID)
        if request_id is not None and call.span.is_recording():
            value = coerce(safe_str(request_id), call.manager.attribute_policy)
            if value is not None:
                call.span.set_attribute(REQUEST_ID, value)
        return True
    except Exception as exc:
        rate_limited.log(logging.WARNING, "MCP:claim", "spanhooks: MCP span not claimed: %r", exc)
        return False


def _sdk_span(original: Callable[..., Any]) -> Callable[..., Any]:
    """mcp's ``otel_span`` helper, as its dispatcher calls it around a request it sends: for a
    request spanhooks traces, no span of mcp's own (spanhooks' span is the request's, and it
    is current, so mcp writes its context into ``_meta``); else mcp's span as before."""

    @contextlib.contextmanager
    @functools.wraps(original)
    def otel_span(
        name: str, *, kind: SpanKind, attributes: Any = None, **options: Any
    ) -> Iterator[Any]:
        call = _SENDING.get()
        if not _claim(call, kind, attributes):
            with original(name, kind=kind, attributes=attributes, **options) as span:
                yield span
            return
        assert call is not None and call.span is not None
        yield trace.NonRecordingSpan(call.span.get_span_context())

    return otel_span


def _session_init(original: Callable[..., None]) -> Callable[..., None]:
    """``ClientSession.__init__`` noting the transport the session is made over."""

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _bind_peer(self)

    return __init__


@_isolated
def _bind_peer(session: Any) -> None:
    """Remember the transport entered in this task as ``session``'s."""
    peer = _CONNECTING.get()
    if peer is None:
        return
    _CONNECTING.set(None)  # one transport, one session: a later one is not over it
    with _tables_lock:
        _peers[session] = peer


def _http_transport_init(original: Callable[..., None]) -> Callable[..., None]:
    """``StreamableHTTPTransport.__init__`` noting the transport for the session made next in
    this task (``streamable_http_client`` makes it in the caller's task, before yielding)."""

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _note_http(self)

    return __init__


@_isolated
def _note_http(transport: Any) -> None:
    """Note a streamable HTTP transport (its URL's host and port) for the next session."""
    url = field(transport, "url")
    address = port = None
    if isinstance(url, str):
        parts = urlsplit(url)
        address = parts.hostname
        try:
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:  # a port that is not a number: leave it out
            port = None
    _CONNECTING.set(_Peer("tcp", http=transport, address=address, port=port))


def _over_pipe(
    original: Callable[..., Any], variable: contextvars.ContextVar[_Peer | None]
) -> Callable[..., Any]:
    """A stdio transport (``stdio_client``, ``stdio_server``) that notes ``pipe`` in
    ``variable`` while it is entered."""

    @contextlib.asynccontextmanager
    @functools.wraps(original)
    async def transport(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        token = variable.set(_Peer("pipe"))
        try:
            async with original(*args, **kwargs) as streams:
                yield streams
        finally:
            with contextlib.suppress(ValueError, RuntimeError):  # left in another context
                variable.reset(token)

    return transport


class _Middleware:
    """spanhooks' server middleware (``(ctx, call_next)``, mcp's ``ServerMiddleware``): each
    request handled inside its SERVER span. Notifications, and requests while it does not
    trace, go to the middleware it replaced (mcp's own), if any."""

    def __init__(self, tracing: _Tracing, replaced: Any = None) -> None:
        self.tracing = tracing
        self.replaced = replaced

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        manager = self.tracing.active()
        method = field(ctx, "method")
        if manager is None or field(ctx, "request_id") is None or not isinstance(method, str):
            if self.replaced is not None:
                return await self.replaced(ctx, call_next)
            return await call_next(ctx)
        call = _Call(manager, method)
        _open_server(call, ctx)
        try:
            result = await call_next(ctx)
        except BaseException as exc:
            _close(call, None, exc)
            raise
        _close(call, result, None)
        return result


def middleware(manager: CallbackManager | None = None) -> Any:
    """A server middleware emitting on ``manager`` (default: the process-wide one), for a
    server made before :func:`instrument` or one you set up yourself: put it in place of mcp's
    ``OpenTelemetryMiddleware`` (``server.middleware[0] = middleware()``, ``MCPServer`` too),
    or first in the list. Needs no ``instrument()`` and does not import mcp."""
    return _Middleware(_Tracing(manager))


# -- instrument / uninstrument -----------------------------------------------------------------


class _Patch:
    """One attribute ``instrument()`` replaced, to put back."""

    __slots__ = ("attribute", "original", "owner", "replacement")

    def __init__(self, owner: Any, attribute: str, original: Any, replacement: Any) -> None:
        self.owner = owner
        self.attribute = attribute
        self.original = original
        self.replacement = replacement

    def apply(self) -> None:
        setattr(self.owner, self.attribute, self.replacement)

    def undo(self) -> None:
        current = (
            self.owner.__dict__.get(self.attribute)
            if isinstance(self.owner, type)
            else getattr(self.owner, self.attribute, None)
        )
        if current is self.replacement:  # else someone wrapped over ours: theirs stays
            setattr(self.owner, self.attribute, self.original)


class _Installed:
    """What ``instrument()`` changed, so that ``uninstrument()`` can put it back."""

    def __init__(self, tracing: _Tracing, otel_middleware: type | None) -> None:
        self.tracing = tracing
        self.otel_middleware = otel_middleware
        self.patches: list[_Patch] = []
        self.servers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.servers_lock = threading.Lock()


_lock = threading.Lock()
_installed: _Installed | None = None


def _module(name: str) -> ModuleType | None:
    """mcp's module ``name``, or None if this mcp has none such."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _class(module: ModuleType | None, name: str, method: str) -> type | None:
    """``module.name`` if it is a class defining ``method`` itself, else None."""
    found = getattr(module, name, None)
    if isinstance(found, type) and callable(found.__dict__.get(method)):
        return found
    return None


def _load_mcp() -> tuple[type, type, ModuleType | None]:
    """mcp's ``ClientSession`` and lowlevel ``Server`` classes and its dispatcher module, after
    checking the installed version and hook points."""
    _, version, supported = load("mcp", "mcp", "mcp", _SUPPORTED)
    session = _class(_module("mcp.client.session"), "ClientSession", "send_request")
    server = _class(_module("mcp.server.lowlevel.server"), "Server", "__init__")
    if not supported or session is None or "__init__" not in session.__dict__ or server is None:
        raise unsupported("mcp", "mcp", version, _SUPPORTED)
    return session, server, _module("mcp.shared.jsonrpc_dispatcher")


class _Exposed(_Patch):
    """A transport function replaced in every module of the ``mcp`` package that exposes it
    (mcp re-exports its transports); undone in those that took the replacement since too."""

    def apply(self) -> None:
        for module in self._modules(self.original):
            setattr(module, self.attribute, self.replacement)

    def undo(self) -> None:
        for module in self._modules(self.replacement):
            setattr(module, self.attribute, self.original)

    def _modules(self, value: Any) -> list[ModuleType]:
        return [
            module
            for name, module in list(sys.modules.items())
            if (name == "mcp" or name.startswith("mcp."))
            and getattr(module, self.attribute, None) is value
        ]


def _wrapped(owner: type, name: str, wrap: Callable[[Any], Any]) -> _Patch:
    """A patch replacing the method ``owner`` defines as ``name`` by ``wrap`` of it."""
    original = owner.__dict__[name]
    return _Patch(owner, name, original, wrap(original))


def _patches(installed: _Installed, session: type, server: type, dispatcher: Any) -> list[_Patch]:
    """Everything ``instrument()`` replaces: the required hooks, then those it can do without."""
    patches = [
        _wrapped(session, "send_request", lambda f: _send_request(f, installed.tracing)),
        _wrapped(session, "__init__", _session_init),
        _wrapped(server, "__init__", lambda f: _server_init(f, installed)),
    ]
    http = _class(_module("mcp.client.streamable_http"), "StreamableHTTPTransport", "__init__")
    if http is not None:
        patches.append(_wrapped(http, "__init__", _http_transport_init))
    for module_name, name, variable in (
        ("mcp.client.stdio", "stdio_client", _CONNECTING),
        ("mcp.server.stdio", "stdio_server", _SERVING),
    ):
        module = _module(module_name)
        original = getattr(module, name, None)
        if callable(original):
            patches.append(_Exposed(module, name, original, _over_pipe(original, variable)))
    span_helper = getattr(dispatcher, "otel_span", None)
    if callable(span_helper):
        patches.append(_Patch(dispatcher, "otel_span", span_helper, _sdk_span(span_helper)))
    return patches


def _server_init(original: Callable[..., None], installed: _Installed) -> Callable[..., None]:
    """``Server.__init__`` putting spanhooks' middleware in place of mcp's own."""

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if installed.tracing.enabled:
            _adopt(self, installed)

    return __init__


@_isolated
def _adopt(server: Any, installed: _Installed) -> None:
    """Put spanhooks' middleware in place of mcp's ``OpenTelemetryMiddleware`` on ``server``
    (first in its list if it has none), and remember the server for ``uninstrument()``."""
    chain = getattr(server, "middleware", None)
    if not isinstance(chain, list):
        return
    otel = installed.otel_middleware
    for index, found in enumerate(chain):
        if otel is not None and isinstance(found, otel):
            chain[index] = _Middleware(installed.tracing, replaced=found)
            break
    else:
        chain.insert(0, _Middleware(installed.tracing))
    with installed.servers_lock:
        installed.servers.add(server)


def instrument(manager: CallbackManager | None = None) -> None:
    """Trace every MCP request this process sends or serves from now on, emitting on
    ``manager`` (default: the process-wide one). Servers are traced when made after this call
    (see :func:`middleware` for others). Idempotent: a second call only points the events at
    ``manager`` when one is given."""
    global _installed
    with _lock:
        if _installed is not None:
            if manager is not None:
                _installed.tracing.use(manager)
            return
        tracing = _Tracing(manager)
        session, server, dispatcher = _load_mcp()
        otel = getattr(sys.modules[server.__module__], "OpenTelemetryMiddleware", None)
        installed = _Installed(tracing, otel if isinstance(otel, type) else None)
        installed.patches = _patches(installed, session, server, dispatcher)
        for patch in installed.patches:
            patch.apply()
        _installed = installed


def uninstrument() -> None:
    """Undo :func:`instrument`: mcp's own methods, transports and span helper are back, and the
    servers it traced have mcp's ``OpenTelemetryMiddleware`` again. Requests in flight still
    end their spans. Idempotent."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
        if installed is None:
            return
        installed.tracing.enabled = False
        for patch in reversed(installed.patches):
            patch.undo()
        with installed.servers_lock:
            servers = list(installed.servers)
            installed.servers.clear()
        for server in servers:
            chain = getattr(server, "middleware", None)
            if isinstance(chain, list):
                chain[:] = [
                    found.replaced if _ours(found, installed) else found
                    for found in chain
                    if not _ours(found, installed) or found.replaced is not None
                ]


def _ours(found: Any, installed: _Installed) -> bool:
    """Whether ``found`` is a middleware that ``instrument()`` put in."""
    return isinstance(found, _Middleware) and found.tracing is installed.tracing


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _installed is not None
