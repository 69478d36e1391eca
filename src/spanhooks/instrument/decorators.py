"""Decorators that turn a function into a traced call: ``@instrument``, ``@workflow``,
``@agent``, ``@tool`` and ``@llm``.

Each call of a decorated function emits the matching start and end event of the ``genai`` set
(:class:`~spanhooks.GenAIEvent`), so it becomes a span named and attributed by the GenAI
conventions and every callback registered for those events runs. Functions, coroutine
functions, generators and async generators are all supported; the wrapper is of the same kind,
so ``inspect.iscoroutinefunction`` and friends, ``functools.wraps`` metadata and the signature
are preserved. Return values pass through untouched and exceptions are recorded on the span and
re-raised unchanged.

Streams: a generator's span starts at its first ``next()`` and ends when the stream is exhausted
(OK), fails (ERROR, exception recorded), or is closed early by ``break``, ``return``, an
exception in the consumer or garbage collection (``spanhooks.stream.closed_early``, status
unset). Cancelling a task while the stream is producing a chunk is an error, as in the SDK's
own ``use_span``; a cancellation that reaches the stream between chunks or while it is being
closed (``break``, then the task or the loop's finaliser cancelled during ``aclose()``) comes
after the consumer stopped reading, so the stream counts as closed early, and the cancellation
still propagates. The first item yielded records ``gen_ai.response.time_to_first_chunk`` and
fires ``first_chunk``; at the end the span gets the number of items yielded
(``spanhooks.stream.chunks``) and, after two or more, the mean time per item after the first
(``spanhooks.stream.time_per_output_chunk``: the time from the first item to the end of the
stream over the items after the first), which ``gen_ai.client.operation.time_per_output_chunk``
is recorded from. Per item a stream does no more than count it: the clock is read at the first
item and at the end only. The span is current only while the generator's own code runs,
attached and detached around each step in the same thread or task, never across a ``yield``:
that is what lets a stream be abandoned, finalised in another task or collected by the GC
without OpenTelemetry's "Failed to detach context" error.

``@llm(prompt_name=..., prompt_version=...)`` records the prompt a model call was made from:
``gen_ai.prompt.name`` (GenAI conventions) and ``spanhooks.prompt.version`` (the conventions
name no version attribute), set on the span as it starts.

Threading contract: a decorated function may be called from any thread or task at once; each
call keeps its own span and context.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Protocol, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.vocab._messages import chunk_text, streamed_text
from spanhooks.vocab.genai import TIME_PER_OUTPUT_CHUNK, TIME_TO_FIRST_CHUNK, GenAIEvent

__all__ = ["NamedDecorator", "agent", "instrument", "llm", "tool", "workflow"]

F = TypeVar("F", bound=Callable[..., Any])

CLOSED_EARLY = "spanhooks.stream.closed_early"
CHUNKS = "spanhooks.stream.chunks"
PROMPT_NAME = "gen_ai.prompt.name"
PROMPT_VERSION = "spanhooks.prompt.version"

_LEAVING = (asyncio.CancelledError, GeneratorExit)
"""What an async stream ends with when it is left: cancelled, or closed while it handled the
cancellation (an ``aclose()`` whose task was cancelled before it ran throws the cancellation
in first, then closes the stream)."""


class _Plan:
    """What one decorated function emits, worked out once when it is decorated."""

    __slots__ = (
        "end",
        "extra",
        "label",
        "manager",
        "model_param",
        "params",
        "skip",
        "stamp",
        "start",
        "varargs",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        start: GenAIEvent,
        end: GenAIEvent,
        label: str,
        manager: CallbackManager | None,
        extra: tuple[Any, ...] = (),
        model_param: bool = False,
        stamp: dict[str, str] | None = None,
    ) -> None:
        self.start = start
        self.end = end
        self.label = label
        self.extra = extra
        self.model_param = model_param
        self.stamp = stamp or None
        """Attributes every call's span gets as it starts (a prompt's name and version)."""
        if manager is None:
            manager = get_callback_manager()
        self.manager = manager
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # some builtins and C functions have no signature
            parameters = []  # type: ignore[assignment]
        positional = [
            p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self.skip = 1 if positional and positional[0] in ("self", "cls") else 0
        self.params = tuple(positional)
        self.varargs = any(p.kind is p.VAR_POSITIONAL for p in parameters)

    def inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name (``self``/``cls`` left out; extra
        positionals under ``args``)."""
        skip = self.skip
        inputs = dict(zip(self.params[skip:], args[skip:], strict=False))
        if self.varargs and len(args) > len(self.params):
            inputs["args"] = args[len(self.params) :]
        if kwargs:
            inputs.update(kwargs)
        return inputs

    def start_args(self, inputs: dict[str, Any]) -> tuple[Any, ...]:
        if self.model_param:  # @llm without model=: the call's own ``model`` argument
            model = inputs.get("model")
            return (model if isinstance(model, str) else self.label, inputs, *self.extra)
        return (self.label, inputs, *self.extra)


class _Call:
    """One running call of a decorated function: its call id, span context and stream state."""

    __slots__ = (
        "call_id",
        "chunks",
        "ctx",
        "first_chunk",
        "label",
        "last",
        "plan",
        "started",
        "texts",
    )

    def __init__(self, plan: _Plan, label: Any, call_id: str | None, ctx: Context | None) -> None:
        self.plan = plan
        self.label = label
        self.call_id = call_id
        self.ctx = ctx
        self.started = time.monotonic()
        self.chunks = 0
        self.first_chunk = 0.0
        self.last: Any = None
        # a model stream's text, joined at its end for the output message: only when content
        # is captured (otherwise no work per chunk)
        self.texts: list[str] | None = (
            [] if plan.end is GenAIEvent.LLM_END and plan.manager.capture_content else None
        )

    def span(self) -> trace.Span:
        return trace.get_current_span(self.ctx) if self.ctx is not None else trace.INVALID_SPAN

    def chunk(self, item: Any) -> float | None:
        """Note one yielded item; on the first, set time to first chunk and return it."""
        self.chunks += 1
        self.last = item
        if self.texts is not None:
            text = chunk_text(item)
            if text:
                self.texts.append(text)
        if self.chunks != 1:
            return None
        self.first_chunk = time.monotonic() - self.started
        self.span().set_attribute(TIME_TO_FIRST_CHUNK, self.first_chunk)
        return self.first_chunk

    def stream_end(self, closed_early: bool) -> None:
        span = self.span()
        chunks = self.chunks
        span.set_attribute(CHUNKS, chunks)
        if chunks > 1:  # from the first chunk to the end, over the chunks after the first
            after_first = time.monotonic() - self.started - self.first_chunk
            span.set_attribute(TIME_PER_OUTPUT_CHUNK, max(after_first, 0.0) / (chunks - 1))
        if closed_early:
            span.set_attribute(CLOSED_EARLY, True)


def _open(plan: _Plan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    inputs = plan.inputs(args, kwargs)
    return plan.start_args(inputs)


def _begin(plan: _Plan, start_args: tuple[Any, ...], call_id: str | None) -> _Call:
    """The call after its start was emitted: the start left the new span's context current."""
    _stamp(plan, call_id)
    ctx = otel_context.get_current() if call_id is not None else None
    return _Call(plan, start_args[0], call_id, ctx)


def _stamp(plan: _Plan, call_id: str | None) -> None:
    """Set the plan's fixed attributes on the call's span, current right after its start."""
    if plan.stamp is not None and call_id is not None:
        trace.get_current_span().set_attributes(plan.stamp)


def _restore(caller: Context) -> None:
    """Make the caller's context current again (the start attached the call's, token-less)."""
    if otel_context.get_current() is not caller:
        otel_context.attach(caller)


def _attach(ctx: Context | None) -> object:
    return otel_context.attach(ctx) if ctx is not None else None


def _detach(token: object) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def _wrap(fn: F, plan: _Plan) -> F:
    manager = plan.manager
    start, end = plan.start, plan.end
    if inspect.isasyncgenfunction(fn):
        return _wrap_async_generator(fn, plan)  # type: ignore[return-value]
    if inspect.isgeneratorfunction(fn):
        return _wrap_generator(fn, plan)  # type: ignore[return-value]
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            if not manager.enabled:
                return await fn(*args, **kwargs)
            caller = otel_context.get_current()
            start_args = _open(plan, args, kwargs)
            call_id = await manager.emit_async(start, *start_args)
            _stamp(plan, call_id)
            label = start_args[0]
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                await manager.emit_async(end, label, None, exc, call_id=call_id)
                _restore(caller)
                raise
            await manager.emit_async(end, label, result, None, call_id=call_id)
            _restore(caller)
            return result

        return call_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not manager.enabled:
            return fn(*args, **kwargs)
        caller = otel_context.get_current()
        start_args = _open(plan, args, kwargs)
        call_id = manager.emit(start, *start_args)
        _stamp(plan, call_id)
        label = start_args[0]
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            manager.emit(end, label, None, exc, call_id=call_id)
            _restore(caller)
            raise
        manager.emit(end, label, result, None, call_id=call_id)
        _restore(caller)
        return result

    return call  # type: ignore[return-value]


def _wrap_generator(
    fn: Callable[..., Generator[Any, Any, Any]], plan: _Plan
) -> Callable[..., Generator[Any, Any, Any]]:
    manager = plan.manager

    @functools.wraps(fn)
    def stream(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        inner = fn(*args, **kwargs)
        if not manager.enabled:
            return (yield from inner)
        caller = otel_context.get_current()
        start_args = _open(plan, args, kwargs)
        call = _begin(plan, start_args, manager.emit(plan.start, *start_args))
        _restore(caller)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = _attach(call.ctx)
            try:
                item = inner.throw(thrown) if thrown is not None else inner.send(sent)
            except StopIteration as stop:
                _detach(token)
                _finish(call, stop.value, None)
                return stop.value
            except BaseException as exc:
                _detach(token)
                _finish(call, None, exc)
                raise
            try:
                if call.chunk(item) is not None:
                    manager.emit(GenAIEvent.FIRST_CHUNK, call.label, call.first_chunk)
            finally:
                _detach(token)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:  # close(): break, return, GC of an unfinished stream
                token = _attach(call.ctx)
                try:
                    inner.close()
                except BaseException as exc:
                    _detach(token)
                    _finish(call, None, exc)
                    raise
                _detach(token)
                _finish(call, None, None, closed_early=True)
                raise
            except BaseException as exc:  # throw(): passed on to the stream's own code
                thrown = exc

    return stream


def _wrap_async_generator(
    fn: Callable[..., AsyncGenerator[Any, Any]], plan: _Plan
) -> Callable[..., AsyncGenerator[Any, Any]]:
    manager = plan.manager

    @functools.wraps(fn)
    async def stream(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        inner = fn(*args, **kwargs)
        if not manager.enabled:
            async for item in inner:
                yield item
            return
        caller = otel_context.get_current()
        start_args = _open(plan, args, kwargs)
        call = _begin(plan, start_args, await manager.emit_async(plan.start, *start_args))
        _restore(caller)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = _attach(call.ctx)
            try:
                if thrown is not None:
                    item = await inner.athrow(thrown)
                else:
                    item = await inner.asend(sent)
            except StopAsyncIteration:
                _detach(token)
                await _finish_async(call, None, None)
                return
            except BaseException as exc:
                _detach(token)
                # a cancellation thrown in between chunks, ending the stream as it passes
                left = isinstance(thrown, asyncio.CancelledError) and isinstance(exc, _LEAVING)
                await _fail_async(call, exc, left)
                raise
            try:
                if call.chunk(item) is not None:
                    await manager.emit_async(GenAIEvent.FIRST_CHUNK, call.label, call.first_chunk)
            finally:
                _detach(token)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:  # aclose(): break, return, cancellation, GC finaliser
                token = _attach(call.ctx)
                try:
                    await inner.aclose()
                except BaseException as exc:
                    _detach(token)
                    await _fail_async(call, exc, isinstance(exc, asyncio.CancelledError))
                    raise
                _detach(token)
                await _finish_async(call, None, None, closed_early=True)
                raise
            except BaseException as exc:  # athrow(); a cancellation here comes between chunks
                thrown = exc

    return stream


def _end_args(call: _Call, value: Any, error: BaseException | None, closed_early: bool) -> Any:
    """The end event's (label, output, error) for a stream; an LLM stream's output is its last
    chunk, which is where streaming APIs put the model and token usage."""
    call.stream_end(closed_early)
    if value is None and call.plan.end is GenAIEvent.LLM_END:
        value = call.last
    return call.label, value, error


def _joined(call: _Call) -> str:
    """A stream's text: each chunk scrubbed by the redaction patterns before they are joined
    (adjacent secrets would otherwise run together past a pattern), and the whole scrubbed
    again as it is recorded (a secret split across chunks)."""
    scrub = call.plan.manager.attribute_policy.scrub
    return "".join(scrub(text) for text in call.texts or ())


def _finish(
    call: _Call, value: Any, error: BaseException | None, closed_early: bool = False
) -> None:
    args = _end_args(call, value, error, closed_early)
    token = streamed_text.set(_joined(call)) if call.texts else None
    try:
        call.plan.manager.emit(call.plan.end, *args, call_id=call.call_id)
    finally:
        if token is not None:
            streamed_text.reset(token)


async def _finish_async(
    call: _Call, value: Any, error: BaseException | None, closed_early: bool = False
) -> None:
    args = _end_args(call, value, error, closed_early)
    token = streamed_text.set(_joined(call)) if call.texts else None
    try:
        await call.plan.manager.emit_async(call.plan.end, *args, call_id=call.call_id)
    finally:
        if token is not None:
            streamed_text.reset(token)


async def _fail_async(call: _Call, error: BaseException, left: bool) -> None:
    """End an async stream's span for ``error``, or, when the consumer had ``left`` (``error``
    is a cancellation that reached a stream no longer being read), as closed early."""
    await _finish_async(call, None, None if left else error, closed_early=left)


def _decorator(
    fn: Callable[..., Any] | None,
    make: Callable[[Callable[..., Any]], _Plan],
) -> Any:
    def decorate(target: Callable[..., Any]) -> Any:
        if not callable(target):
            raise TypeError(f"can only decorate a function or method, got {target!r}")
        return _wrap(target, make(target))

    return decorate(fn) if fn is not None else decorate


def _check_name(name: str | None) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty str or None, got {name!r}")


def _name_of(fn: Callable[..., Any], name: str | None, *, qualified: bool = True) -> str:
    """``name`` if given, else the function's qualified name (or plain name)."""
    if name is not None:
        return name
    found = getattr(fn, "__qualname__" if qualified else "__name__", None)
    return found if isinstance(found, str) else getattr(fn, "__name__", None) or repr(fn)


class NamedDecorator(Protocol):
    """``@decorator``, or ``@decorator(name=..., manager=...)``."""

    @overload
    def __call__(self, fn: F, /) -> F: ...
    @overload
    def __call__(
        self, *, name: str | None = None, manager: CallbackManager | None = None
    ) -> Callable[[F], F]: ...


def _named(start: GenAIEvent, end: GenAIEvent, doc: str, qualified: bool = True) -> NamedDecorator:
    """A decorator whose calls emit ``start``/``end`` labelled with ``name`` (by default the
    function's qualified name, or plain name when ``qualified`` is false)."""

    def decorator(
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        manager: CallbackManager | None = None,
    ) -> Any:
        _check_name(name)
        return _decorator(
            fn,
            lambda f: _Plan(f, start, end, _name_of(f, name, qualified=qualified), manager),
        )

    decorator.__doc__ = doc
    return decorator


instrument = _named(
    GenAIEvent.TASK_START,
    GenAIEvent.TASK_END,
    "Trace each call as a span named after the function (``task_start``/``task_end``).",
)
workflow = _named(
    GenAIEvent.WORKFLOW_START,
    GenAIEvent.WORKFLOW_END,
    "Trace each call as a ``workflow {name}`` span: the root of a pipeline run.",
)
agent = _named(
    GenAIEvent.AGENT_START,
    GenAIEvent.AGENT_END,
    "Trace each call as an ``invoke_agent {name}`` span with ``gen_ai.agent.name``.",
)
tool = _named(
    GenAIEvent.TOOL_CALL_START,
    GenAIEvent.TOOL_CALL_END,
    "Trace each call as an ``execute_tool {name}`` span (``name`` defaults to the function's "
    "own name); its arguments and result are the tool call's, recorded only when content "
    "capture is on.",
    qualified=False,
)


@overload
def llm(fn: F, /) -> F: ...
@overload
def llm(
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: str = "chat",
    manager: CallbackManager | None = None,
    prompt_name: str | None = None,
    prompt_version: str | int | None = None,
) -> Callable[[F], F]: ...
def llm(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: str = "chat",
    manager: CallbackManager | None = None,
    prompt_name: str | None = None,
    prompt_version: str | int | None = None,
) -> Any:
    """Trace each call as a model call: a CLIENT span ``{operation} {model}``.

    Without ``model`` the call's own ``model`` argument names it. Response model, finish
    reasons and token usage are read from the return value (an OpenAI- or Anthropic-shaped
    response or dict), or from the last chunk a streaming call yields.

    ``prompt_name`` (and ``prompt_version``, which needs it) name the prompt or template the
    call is made from; every call's span records them as ``gen_ai.prompt.name`` and
    ``spanhooks.prompt.version``. They are fixed per function; a name that varies per call
    can be set from inside the function, where the call's span is current:
    ``opentelemetry.trace.get_current_span().set_attribute("gen_ai.prompt.name", name)``.
    They are span attributes only: the conventions list neither for any metric.
    """
    if not isinstance(operation, str) or not operation:
        raise ValueError(f"operation must be a non-empty str, got {operation!r}")
    for label, value in (("model", model), ("provider", provider), ("prompt_name", prompt_name)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{label} must be a non-empty str or None, got {value!r}")
    stamp = _prompt_attributes(prompt_name, prompt_version)
    return _decorator(
        fn,
        lambda f: _Plan(
            f,
            GenAIEvent.LLM_START,
            GenAIEvent.LLM_END,
            model or "",
            manager,
            extra=(provider, operation),
            model_param=model is None,
            stamp=stamp,
        ),
    )


def _prompt_attributes(name: str | None, version: str | int | None) -> dict[str, str]:
    """The span attributes naming a model call's prompt; raises for a version without a name."""
    if version is None:
        return {PROMPT_NAME: name} if name is not None else {}
    if isinstance(version, bool) or not isinstance(version, str | int) or version == "":
        raise ValueError(f"prompt_version must be a non-empty str, an int or None, got {version!r}")
    if name is None:
        raise ValueError("prompt_version needs prompt_name")
    return {PROMPT_NAME: name, PROMPT_VERSION: str(version)}
