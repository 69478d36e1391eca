"""Thea's callback documentation, run on spanhooks: every code block of the seed document, with
only its import lines changed (``tests/seeds/import_maps.py``'s ``THEA``), and the trace a Thea
user should see for it.

The document does not fence its code: a line reading just ``python`` (or ``text``) starts a
block, which runs until the prose resumes (:func:`thea_blocks`). How a block runs: the
completion the table states is added (written with the seed's own import lines, so the rewrite
applies to it too), the text goes through ``rewrite_imports`` and is executed in a fresh
namespace; the managers it makes are captured on an in-memory OpenTelemetry SDK pipeline
(``spanhooks.testing.capture``). Network services the examples call (Sentry, Mixpanel, an
analytics client) are in-memory stand-ins that record what they were given.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import re
import sys
import threading
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from tests.seeds.blocks import Block, document
from tests.seeds.import_maps import THEA, rewrite_imports

import spanhooks
import spanhooks.compat.thea as compat
from spanhooks import AttributePolicy
from spanhooks.compat.thea import CallbackManager, Priority, TheaCallback
from spanhooks.testing import Capture, capture

# -- the document's blocks --------------------------------------------------------------------

_TAGS = ("python", "text")
_PROSE = re.compile(r"^(?:\S*[^\x00-\x7f]|\d+\.\s|[A-Za-z]\w*:\s)")
"""A line at column 0 where the prose resumes: a heading (its garbled emoji, or ``2. ...``), a
word with a garbled accent (``CuÃ¡ndo:``) or a label (``Ventaja: ...``). Code at column 0
(``callbacks = ...``, ``# comment``, ``def``, a diagram's ``TheaRouter (core)``) is none."""


def thea_blocks(path: Any) -> list[Block]:
    """Every code block of Thea's document: a line reading just ``python`` or ``text`` opens
    one; it ends where the prose resumes (see :data:`_PROSE`) or the next block opens; trailing
    blank lines are not part of it. ``Block.line`` is its first line of code."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        tag = lines[index]
        if tag not in _TAGS:
            index += 1
            continue
        first, body = index + 2, []
        index += 1
        while index < len(lines):
            line = lines[index]
            if line in _TAGS or (line and not line[0].isspace() and _PROSE.match(line)):
                break
            body.append(line)
            index += 1
        while body and not body[-1].strip():
            body.pop()
        blocks.append(Block(tag, first, "\n".join(body) + "\n"))
    return blocks


BLOCKS = thea_blocks(document("thea"))
BLOCK = {block.line: block for block in BLOCKS}

AS_IS = "runnable as is"
COMPLETED = "runnable after a stated completion"
NOT_CODE = "not code to run"

IMPORT_MANAGER = "from src.theaia.core.callbacks import CallbackManager\n"
IMPORT_CALLBACKS = "from src.theaia.core.callbacks import callbacks\n"
EVENT_BLOCK = (
    COMPLETED,
    "a fragment: `callbacks`, the manager it triggers on, is imported first (the compat "
    "module's process-wide `callbacks`)",
)

TABLE: dict[int, tuple[str, str]] = {
    24: (
        COMPLETED,
        "the seed's own implementation, which spanhooks.compat.thea.CallbackManager replaces: "
        "run as a reference, with the names it uses and does not import (Dict, List, Callable "
        "from typing; logger = logging.getLogger('theaia')), and the compat manager is "
        "checked against it on the same registrations and triggers",
    ),
    47: (
        COMPLETED,
        "a fragment: `callbacks` imported first (the compat module's process-wide `callbacks`) "
        "and `from datetime import datetime`",
    ),
    56: EVENT_BLOCK,
    65: (
        COMPLETED,
        "a fragment: `callbacks` imported first; `exception` and `traceback_str` are a caught "
        "ValueError and its traceback.format_exc()",
    ),
    74: EVENT_BLOCK,
    82: EVENT_BLOCK,
    91: EVENT_BLOCK,
    100: (
        COMPLETED,
        "`from datetime import datetime` added (handle_request uses datetime without importing "
        "it); then handle_request('alvaro_123', 'Agendar reuniÃ³n'), which the block defines "
        "but never calls, is called",
    ),
    131: (
        COMPLETED,
        "continues example 1: its CallbackManager import line is added and `logger` defined "
        "(logging.getLogger('theaia')); sentry_sdk is an in-memory stand-in; then on_error and "
        "on_session_timeout, which it registers for, are triggered",
    ),
    152: (
        COMPLETED,
        "continues example 1: its CallbackManager import line is added; mixpanel.Mixpanel is an "
        "in-memory stand-in; then the three events it registers for are triggered",
    ),
    182: (
        COMPLETED,
        "sentry_sdk and analytics.Analytics are in-memory stand-ins; then on_message, "
        "on_state_change, on_error and on_intent_detected, which it registers for, are triggered",
    ),
    217: (
        COMPLETED,
        "a method of the seed's class (line 24): run as that class's trigger, and the compat "
        "manager is checked against it with a failing callback before a working one",
    ),
    238: (NOT_CODE, "a diagram: TheaRouter -> CallbackManager (broker) -> subscribers"),
    245: (
        COMPLETED,
        "pseudo-code: the function's body is only the comment `# custom logic` (a SyntaxError); "
        "the body records the call instead; `callbacks`, which it uses undefined, is bound to a "
        "compat CallbackManager; then on_message is triggered",
    ),
    252: (
        COMPLETED,
        "pseudo-code: the names it uses undefined are bound first: sentry_handler, slack_handler "
        "and pagerduty_handler (each records its call) and `callbacks` (a compat "
        "CallbackManager); then on_error is triggered",
    ),
    260: (
        COMPLETED,
        "pseudo-code: the `...` of trigger('on_message', ...) stands for on_message's arguments "
        "and is replaced by user_id=, message=, timestamp= keywords; `callbacks`, which it uses "
        "undefined, is bound to a compat CallbackManager with a failing callback registered "
        "before a working one",
    ),
}


def source(line: int, *, before: str = "", after: str = "", replace: tuple[str, str] = ()) -> str:
    """Block ``line`` as it runs: ``before`` + its text (``replace`` = (old, new) applied, for
    the completions the table states) + ``after``, with the import lines rewritten."""
    text = BLOCK[line].text
    if replace:
        old, new = replace
        assert old in text, f"line {line}: {old!r} not in the block"
        text = text.replace(old, new)
    return rewrite_imports(before + text + after, THEA)


def run(code: str, **names: Any) -> dict[str, Any]:
    """Execute ``code`` in a fresh namespace holding ``names``; the namespace afterwards."""
    namespace: dict[str, Any] = {"__name__": "thea_block", **names}
    exec(compile(code, "<thea block>", "exec"), namespace)
    return namespace


@contextmanager
def traced(manager: Any, **policy: Any) -> Iterator[Capture]:
    """Capture ``manager``'s spans on an in-memory SDK pipeline (``policy``: an
    AttributePolicy's options for the duration)."""
    before = manager.attribute_policy
    if policy:
        manager.set_attribute_policy(AttributePolicy(**policy))
    try:
        with capture(managers=(manager,)) as cap:
            yield cap
    finally:
        manager.set_attribute_policy(before)


def event(span: ReadableSpan, name: str) -> dict[str, Any]:
    """The attributes of ``span``'s one span event called ``name``."""
    [found] = [e for e in span.events if e.name == name]
    return dict(found.attributes or {})


def the_span(cap: Capture, name: str) -> ReadableSpan:
    span = cap.span(name)
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "spanhooks.thea"
    assert span.parent is None
    return span


class Recorder:
    """An in-memory stand-in for a network client: every call it gets, as (name, args, kwargs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [("__init__", args, kwargs)]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """sentry_sdk, mixpanel and analytics as importable modules that record their calls."""
    sentry = Recorder()
    sentry_module = types.ModuleType("sentry_sdk")
    sentry_module.capture_exception = sentry.capture_exception  # type: ignore[attr-defined]
    sentry_module.capture_message = sentry.capture_message  # type: ignore[attr-defined]
    made: dict[str, Any] = {"sentry": sentry}

    def client(label: str) -> type[Recorder]:
        class Client(Recorder):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                made[label] = self

        return Client

    mixpanel_module = types.ModuleType("mixpanel")
    mixpanel_module.Mixpanel = client("mixpanel")  # type: ignore[attr-defined]
    analytics_module = types.ModuleType("analytics")
    analytics_module.Analytics = client("analytics")  # type: ignore[attr-defined]
    for module in (sentry_module, mixpanel_module, analytics_module):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return made


@pytest.fixture
def shared_callbacks() -> Iterator[CallbackManager]:
    """The compat module's process-wide ``callbacks``, left as it was found."""
    before = {reg["id"] for reg in compat.callbacks.get_registered_callbacks()}
    yield compat.callbacks
    for reg in compat.callbacks.get_registered_callbacks():
        if reg["id"] not in before:
            compat.callbacks.unregister(reg["id"])


# -- (a) the blocks, counted and classified ---------------------------------------------------


def test_the_document_has_sixteen_code_blocks_twelve_python_and_four_text() -> None:
    assert [(b.language, b.line) for b in BLOCKS] == [
        ("python", 24),
        ("python", 47),
        ("python", 56),
        ("python", 65),
        ("python", 74),
        ("python", 82),
        ("python", 91),
        ("python", 100),
        ("python", 131),
        ("python", 152),
        ("python", 182),
        ("python", 217),
        ("text", 238),
        ("text", 245),
        ("text", 252),
        ("text", 260),
    ]


def test_a_block_ends_where_the_prose_resumes() -> None:
    assert BLOCK[47].text.splitlines()[-1] == "    timestamp=datetime.now())"
    assert (
        BLOCK[182].text.splitlines()[-1]
        == "# Ahora todos los eventos se registran, monitorean y trackean"
    )
    assert BLOCK[217].text.splitlines()[-1].strip().startswith("# Contin")
    assert BLOCK[238].text.splitlines()[-1] == "Logging, Monitoring, Analytics (subscribers)"
    assert all("CuÃ¡ndo" not in b.text and "Ventaja" not in b.text for b in BLOCKS)


def test_every_block_is_classified_and_every_runnable_one_has_a_test() -> None:
    assert sorted(TABLE) == [b.line for b in BLOCKS]
    assert {kind for kind, _ in TABLE.values()} <= {AS_IS, COMPLETED, NOT_CODE}
    tests = [name for name in globals() if name.startswith("test_line")]
    for line, (kind, reason) in TABLE.items():
        assert reason
        has_test = any(name.startswith(f"test_line{line}_") for name in tests)
        assert has_test == (kind != NOT_CODE), line
    runnable = [line for line, (kind, _) in TABLE.items() if kind != NOT_CODE]
    assert (len(BLOCKS), len(runnable)) == (16, 15)


def test_every_python_block_compiles_after_the_import_rewrite() -> None:
    for block in BLOCKS:
        if block.language == "python":
            compile(rewrite_imports(block.text, THEA), f"line{block.line}", "exec")


def test_the_import_map_points_the_seeds_module_at_the_compat_module() -> None:
    assert rewrite_imports(IMPORT_MANAGER, THEA) == (
        "from spanhooks.compat.thea import CallbackManager\n"
    )
    assert "src.theaia" not in source(182)


# -- (b) each runnable block ------------------------------------------------------------------

REFERENCE_NAMES = "from typing import Callable, Dict, List\nimport logging\nlogger = logging.getLogger('theaia')\n"


def scenario(manager: Any, log: list[Any]) -> None:
    """The same registrations and triggers, for the seed's class and the compat one."""

    def on_message(user_id: str, message: str, timestamp: Any) -> None:
        log.append(("message", user_id, message, timestamp))

    def failing(**kwargs: Any) -> None:
        raise RuntimeError("analytics down")

    def log_all(user_id: str, **kwargs: Any) -> None:
        log.append(("all", user_id, sorted(kwargs)))

    manager.register("on_message", failing)
    manager.register("on_message", on_message)
    manager.register("on_message", log_all)
    manager.register("on_state_change", log_all)
    manager.register("on_state_change", log_all)  # twice: called twice
    manager.register("my_own_event", log_all)  # a name nobody declared
    manager.trigger("on_message", user_id="u1", message="hola", timestamp=1)
    manager.trigger("on_state_change", user_id="u1", old_state="initial", new_state="agent")
    manager.trigger("my_own_event", user_id="u1", detail=3)
    manager.trigger("nobody_listens", user_id="u1")


def test_line24_the_compat_manager_behaves_as_the_seeds_own_class() -> None:
    reference = run(source(24, before=REFERENCE_NAMES))["CallbackManager"]
    theirs: list[Any] = []
    ours: list[Any] = []
    scenario(reference(), theirs)
    manager = CallbackManager()
    with traced(manager) as cap:
        scenario(manager, ours)
    assert ours == theirs
    assert theirs[0] == ("message", "u1", "hola", 1)
    assert list(manager.callbacks) == ["on_message", "on_state_change", "my_own_event"]
    assert len(manager.callbacks["on_state_change"]) == 2
    assert [s.name for s in cap.spans()] == [
        "on_message",
        "on_state_change",
        "my_own_event",
        "nobody_listens",
    ]
    assert event(cap.span("my_own_event"), "my_own_event") == {"user.id": "u1", "thea.detail": 3}


def test_line24_a_failing_callback_is_logged_as_in_the_seed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = CallbackManager()
    manager.register("on_message", lambda **kwargs: 1 / 0)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    [record] = [r for r in caplog.records if r.name == "spanhooks" and r.levelno == logging.ERROR]
    assert "ZeroDivisionError while handling on_message" in record.getMessage()
    assert manager.stats()["callback_errors"] == 1


def trigger_on_shared(
    line: int, shared: CallbackManager, event_name: str, before: str = "", **names: Any
) -> tuple[list[dict[str, Any]], ReadableSpan]:
    """Run event block ``line`` on the process-wide ``callbacks`` with a callback registered
    for its event; what the callback got, and the event's span."""
    got: list[dict[str, Any]] = []
    shared.register(event_name, lambda **kwargs: got.append(kwargs))
    with traced(shared) as cap:
        run(source(line, before=IMPORT_CALLBACKS + before), **names)
        span = the_span(cap, event_name)
    return got, span


def test_line47_on_message_records_the_user_and_time_but_not_the_text(
    shared_callbacks: CallbackManager,
) -> None:
    got, span = trigger_on_shared(47, shared_callbacks, "on_message", datetime=datetime.datetime)
    [kwargs] = got
    assert kwargs["user_id"] == "alvaro_123" and kwargs["message"] == "Agendar reuniÃ³n"
    assert isinstance(kwargs["timestamp"], datetime.datetime)
    assert event(span, "on_message") == {
        "user.id": "alvaro_123",
        "thea.timestamp": kwargs["timestamp"].isoformat(),
    }


def test_line47_the_message_text_is_recorded_on_opt_in_and_redacted(
    shared_callbacks: CallbackManager,
) -> None:
    code = source(47, before=IMPORT_CALLBACKS + "from datetime import datetime\n")
    code = code.replace("Agendar reuniÃ³n", "Agendar con card 4111-1111-1111-1111")
    with traced(
        shared_callbacks, capture_content=True, redact_patterns=[r"\d{4}(-\d{4}){3}"]
    ) as cap:
        run(code)
        attributes = event(cap.span("on_message"), "on_message")
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Agendar con card [REDACTED]"}]}
    ]


def test_line56_on_state_change_records_both_states(shared_callbacks: CallbackManager) -> None:
    got, span = trigger_on_shared(56, shared_callbacks, "on_state_change")
    assert got == [
        {"user_id": "alvaro_123", "old_state": "initial", "new_state": "agent_delegated"}
    ]
    assert event(span, "on_state_change") == {
        "user.id": "alvaro_123",
        "thea.old_state": "initial",
        "thea.new_state": "agent_delegated",
    }


def record(log: list[str], label: str, **kwargs: Any) -> None:
    """A callback that notes ``label`` in ``log`` (bound with functools.partial)."""
    log.append(label)


def caught() -> tuple[ValueError, str]:
    try:
        raise ValueError("calendar unreachable for user secret-42")
    except ValueError as exc:
        return exc, traceback.format_exc()


def test_line65_on_error_is_an_exception_with_error_status_and_no_traceback_string(
    shared_callbacks: CallbackManager,
) -> None:
    exception, traceback_str = caught()
    got, span = trigger_on_shared(
        65, shared_callbacks, "on_error", exception=exception, traceback_str=traceback_str
    )
    assert got == [{"user_id": "alvaro_123", "error": exception, "traceback": traceback_str}]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: calendar unreachable for user secret-42"
    assert event(span, "exception")["exception.type"] == "ValueError"
    attributes = event(span, "on_error")
    assert attributes["user.id"] == "alvaro_123"
    assert "thea.traceback" not in attributes  # content: only on opt-in


def test_line65_the_traceback_string_follows_the_content_rules(
    shared_callbacks: CallbackManager,
) -> None:
    exception, traceback_str = caught()
    with traced(shared_callbacks, capture_content=True, redact_patterns=[r"secret-\d+"]) as cap:
        run(source(65, before=IMPORT_CALLBACKS), exception=exception, traceback_str=traceback_str)
        span = cap.span("on_error")
    recorded = event(span, "on_error")["thea.traceback"]
    assert recorded.startswith("Traceback (most recent call last)")
    assert "secret-42" not in recorded and "[REDACTED]" in recorded
    assert "secret-42" not in event(span, "exception")["exception.message"]


def test_line74_on_session_timeout_records_the_session_id(
    shared_callbacks: CallbackManager,
) -> None:
    got, span = trigger_on_shared(74, shared_callbacks, "on_session_timeout")
    assert got == [{"user_id": "alvaro_123", "session_id": "sess_xxx"}]
    assert event(span, "on_session_timeout") == {"user.id": "alvaro_123", "session.id": "sess_xxx"}


def test_line82_on_intent_detected_records_intent_and_score(
    shared_callbacks: CallbackManager,
) -> None:
    got, span = trigger_on_shared(82, shared_callbacks, "on_intent_detected")
    assert got == [{"user_id": "alvaro_123", "intent": "agenda", "score": 0.95}]
    assert event(span, "on_intent_detected") == {
        "user.id": "alvaro_123",
        "thea.intent": "agenda",
        "thea.score": 0.95,
    }


def test_line91_on_agent_delegated_records_the_agent_by_its_convention_name(
    shared_callbacks: CallbackManager,
) -> None:
    got, span = trigger_on_shared(91, shared_callbacks, "on_agent_delegated")
    assert got == [{"user_id": "alvaro_123", "agent": "AgendaAgent", "intent": "agenda"}]
    assert event(span, "on_agent_delegated") == {
        "user.id": "alvaro_123",
        "gen_ai.agent.name": "AgendaAgent",
        "thea.intent": "agenda",
    }


EXAMPLE_1_CALL = "\nhandle_request('alvaro_123', 'Agendar reuniÃ³n')\n"


def test_line100_the_logging_example_logs_each_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    namespace = run(source(100, before="from datetime import datetime\n"))
    with traced(namespace["callbacks"]) as cap:
        run(EXAMPLE_1_CALL, **namespace)
    messages = [r.getMessage() for r in caplog.records if r.name == "root"]
    assert messages[0].startswith("[alvaro_123] Agendar reuniÃ³n (")
    assert (
        messages[1] == "[alvaro_123] initial \u00e2\u2020\u2019 agent_delegated"
    )  # the seed's garbled arrow
    # No span is open: each event is a zero-length span of its own, in Thea's scope.
    assert [the_span(cap, n).name for n in ("on_message", "on_state_change")] == [
        "on_message",
        "on_state_change",
    ]


def test_line100_inside_a_request_span_the_events_are_that_spans_events() -> None:
    namespace = run(source(100, before="from datetime import datetime\n"))
    with traced(namespace["callbacks"]) as cap, cap.tracer.start_as_current_span("POST /chat"):
        run(EXAMPLE_1_CALL, **namespace)
    assert cap.tree() == [
        {
            "name": "POST /chat",
            "status": "UNSET",
            "events": ["on_message", "on_state_change"],
            "children": [],
        }
    ]


def test_line131_the_sentry_example_reports_errors_and_timeouts(
    stand_ins: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    namespace = run(
        source(
            131, before=IMPORT_MANAGER + "import logging\nlogger = logging.getLogger('theaia')\n"
        )
    )
    exception = ConnectionError("calendar API down")
    callbacks = namespace["callbacks"]
    with traced(callbacks) as cap, cap.tracer.start_as_current_span("handle_request"):
        callbacks.trigger("on_error", user_id="alvaro_123", error=exception, traceback="tb")
        callbacks.trigger("on_session_timeout", user_id="alvaro_123", session_id="sess_1")
    assert stand_ins["sentry"].calls[1:] == [
        ("capture_exception", (exception,), {}),
        ("capture_message", ("Session timeout for alvaro_123",), {"level": "warning"}),
    ]
    assert [r.getMessage() for r in caplog.records if r.name == "theaia"] == [
        "[alvaro_123] Error: calendar API down\ntb"
    ]
    span = cap.span("handle_request")
    assert [e.name for e in span.events] == ["on_error", "exception", "on_session_timeout"]
    assert span.status.status_code is StatusCode.ERROR
    assert event(span, "on_session_timeout")["session.id"] == "sess_1"


def test_line152_the_mixpanel_example_tracks_three_events(stand_ins: dict[str, Any]) -> None:
    namespace = run(source(152, before=IMPORT_MANAGER))
    callbacks = namespace["callbacks"]
    with traced(callbacks) as cap:
        callbacks.trigger("on_message", user_id="u1", message="hola", timestamp=7)
        callbacks.trigger("on_state_change", user_id="u1", old_state="a", new_state="b")
        callbacks.trigger("on_intent_detected", user_id="u1", intent="agenda", score=0.9)
    assert stand_ins["mixpanel"].calls == [
        ("__init__", ("PROJECT_TOKEN",), {}),
        ("track", ("u1", "Message Sent", {"message_length": 4, "timestamp": 7}), {}),
        ("track", ("u1", "State Change", {"from": "a", "to": "b"}), {}),
        ("track", ("u1", "Intent Detected", {"intent": "agenda", "confidence": 0.9}), {}),
    ]
    assert [s.name for s in cap.spans()] == ["on_message", "on_state_change", "on_intent_detected"]
    assert all(s.instrumentation_scope.name == "spanhooks.thea" for s in cap.spans())  # type: ignore[union-attr]


def test_line182_the_combined_example_logs_monitors_and_tracks(
    stand_ins: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    namespace = run(source(182))
    callbacks = namespace["callbacks"]
    error = TimeoutError("agent slow")
    with traced(callbacks) as cap, cap.tracer.start_as_current_span("turn"):
        callbacks.trigger("on_message", user_id="u1", message="hola", timestamp=1)
        callbacks.trigger("on_state_change", user_id="u1", old_state="a", new_state="b")
        callbacks.trigger("on_error", user_id="u1", error=error, traceback="tb")
        callbacks.trigger("on_intent_detected", user_id="u1", intent="agenda", score=0.5)
    logged = [r.getMessage() for r in caplog.records if r.name == "root"]
    assert logged == [
        "[u1] {'message': 'hola', 'timestamp': 1}",
        "[u1] {'old_state': 'a', 'new_state': 'b'}",
        f"[u1] {{'error': {error!r}, 'traceback': 'tb'}}",
    ]
    assert stand_ins["sentry"].calls[1:] == [("capture_exception", (error,), {})]
    assert [call[1][2] for call in stand_ins["analytics"].calls[1:]] == [
        {"message": "hola", "timestamp": 1},
        {"old_state": "a", "new_state": "b"},
        {"intent": "agenda", "score": 0.5},
    ]
    [turn] = cap.tree()
    assert turn["status"] == "ERROR"
    assert turn["events"] == [
        "on_message",
        "on_state_change",
        "on_error",
        "exception",
        "on_intent_detected",
    ]


def test_line217_a_failing_callback_does_not_stop_the_next_one() -> None:
    reference = run(source(24, before=REFERENCE_NAMES))["CallbackManager"]
    reference.trigger = run(source(217, before=REFERENCE_NAMES))["trigger"]

    def failing(**kwargs: Any) -> None:
        raise OSError("log disk full")

    for manager in (reference(), CallbackManager()):
        calls: list[str] = []
        manager.register("on_message", failing)
        manager.register("on_message", functools.partial(record, calls, "monitoring"))
        manager.trigger("on_message", user_id="u", message="m", timestamp=0)
        assert calls == ["monitoring"], type(manager)


def test_line217_the_failure_is_on_the_trace_of_the_span_it_happened_in() -> None:
    manager = CallbackManager()
    manager.register("on_message", lambda **kwargs: 1 / 0, name="logging")
    with traced(manager) as cap, cap.tracer.start_as_current_span("turn"):
        manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert event(cap.span("turn"), "spanhooks.callback.error") == {
        "spanhooks.callback": "logging",
        "exception.type": "ZeroDivisionError",
        "exception.message": "division by zero",
    }


def test_line245_a_custom_metric_is_added_without_touching_the_router() -> None:
    code = source(
        245,
        before="seen = []\n",
        replace=("    # custom logic\n", "    seen.append((user_id, kwargs))\n"),
        after="callbacks.trigger('on_message', user_id='u1', message='hi', timestamp=2)\n",
    )
    manager = CallbackManager()
    with traced(manager) as cap:
        namespace = run(code, callbacks=manager)
    assert namespace["seen"] == [("u1", {"message": "hi", "timestamp": 2})]
    assert event(cap.span("on_message"), "on_message") == {"user.id": "u1", "thea.timestamp": 2}


def test_line252_every_handler_of_an_event_runs_in_registration_order() -> None:
    order: list[str] = []
    handlers = {
        name: functools.partial(record, order, name)
        for name in ("sentry_handler", "slack_handler", "pagerduty_handler")
    }
    manager = CallbackManager()
    with traced(manager) as cap:
        run(source(252), callbacks=manager, **handlers)
        manager.trigger("on_error", user_id="u1", error=KeyError("slot"), traceback="tb")
    assert order == ["sentry_handler", "slack_handler", "pagerduty_handler"]
    span = the_span(cap, "on_error")
    assert [e.name for e in span.events] == ["on_error", "exception"]
    assert span.status.status_code is StatusCode.ERROR


ON_MESSAGE_ARGUMENTS = "user_id='u1', message='hola', timestamp=3"


def test_line260_trigger_is_error_safe() -> None:
    manager = CallbackManager()
    got: list[dict[str, Any]] = []

    def failing(**kwargs: Any) -> None:
        raise RuntimeError("analytics down")

    manager.register("on_message", failing)
    manager.register("on_message", lambda **kwargs: got.append(kwargs))
    with traced(manager) as cap, cap.tracer.start_as_current_span("turn"):
        run(source(260, replace=("...", ON_MESSAGE_ARGUMENTS)), callbacks=manager)
    assert got == [{"user_id": "u1", "message": "hola", "timestamp": 3}]
    turn = cap.span("turn")
    assert [e.name for e in turn.events] == ["on_message", "spanhooks.callback.error"]
    assert event(turn, "spanhooks.callback.error")["exception.message"] == "analytics down"


def test_line260_a_failure_with_no_span_open_is_on_the_events_own_span() -> None:
    """Outside any span the event is a zero-length span of its own; the callback failure must
    be on it too (today that span ends before the callbacks run: see the report)."""
    manager = CallbackManager()

    def failing(**kwargs: Any) -> None:
        raise RuntimeError("analytics down")

    manager.register("on_message", failing)
    with traced(manager) as cap:
        run(source(260, replace=("...", ON_MESSAGE_ARGUMENTS)), callbacks=manager)
    span = the_span(cap, "on_message")
    assert [e.name for e in span.events] == ["on_message", "spanhooks.callback.error"]


# -- the seed's Known Issues, which spanhooks provides ----------------------------------------


def test_known_issue_v10_no_timeout_a_callback_has_one() -> None:
    manager = CallbackManager()
    release = threading.Event()
    finished = threading.Event()

    def hung(**kwargs: Any) -> None:
        release.wait(30)
        finished.set()

    manager.register("on_message", hung, timeout=0.05)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert not finished.is_set()  # trigger came back while the callback still waited
    assert manager.stats()["callback_timeouts"] == 1
    release.set()


def test_known_issue_v10_no_priority_callbacks_have_one() -> None:
    manager = CallbackManager()
    order: list[str] = []
    manager.register("on_message", lambda **kwargs: order.append("analytics"))
    manager.register("on_message", lambda **kwargs: order.append("audit"), priority=Priority.HIGH)
    manager.register("on_message", lambda **kwargs: order.append("cleanup"), priority=-10)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert order == ["audit", "analytics", "cleanup"]


async def test_known_issue_v11_no_async_callbacks_they_are_awaited() -> None:
    manager = CallbackManager()
    seen: list[str] = []

    async def notify(user_id: str, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        seen.append(user_id)

    manager.register("on_intent_detected", notify)
    await manager.trigger_async("on_intent_detected", user_id="u1", intent="agenda", score=1.0)
    assert seen == ["u1"]


def test_known_issue_v11_an_async_callback_runs_on_a_synchronous_trigger() -> None:
    manager = CallbackManager()
    seen: list[str] = []

    async def notify(user_id: str, **kwargs: Any) -> None:
        seen.append(user_id)

    manager.register("on_message", notify)
    manager.trigger("on_message", user_id="u2", message="m", timestamp=0)
    assert seen == ["u2"]


def test_known_issue_v11_no_history_the_manager_keeps_one() -> None:
    manager = CallbackManager(history_size=2)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    manager.trigger("on_state_change", user_id="u", old_state="a", new_state="b")
    manager.trigger("user_logged_in", user_id="u")
    assert [(r.event_set, r.name) for r in manager.history()] == [
        ("thea", "on_state_change"),
        ("thea", "user_logged_in"),
    ]


# -- open event names -------------------------------------------------------------------------


def test_any_event_name_can_be_registered_and_triggered() -> None:
    manager = CallbackManager()
    got: list[dict[str, Any]] = []
    manager.register("payment.completed", lambda **kwargs: got.append(kwargs))
    manager.trigger("payment.completed", user_id="u1", order_id="o-9", amount=12.5)
    manager.trigger("never-registered", user_id="u1")
    assert got == [{"user_id": "u1", "order_id": "o-9", "amount": 12.5}]


def test_spanhooks_own_manager_still_refuses_an_undeclared_name() -> None:
    with pytest.raises(ValueError, match="unknown event 'payment_completed'"):
        spanhooks.CallbackManager().register("payment_completed", print)


def test_an_undeclared_events_ids_and_numbers_are_recorded_and_its_text_only_on_opt_in() -> None:
    manager = CallbackManager()
    kwargs = {
        "user_id": "u1",
        "conversation_id": "c-7",
        "order_id": "o-9",
        "amount": 12.5,
        "note": "deliver to 5 Main St",
        "items": ["book"],
        "api_key": "sk-live",
    }
    with traced(manager) as cap:
        manager.trigger("payment.completed", **kwargs)
    assert event(the_span(cap, "payment.completed"), "payment.completed") == {
        "user.id": "u1",
        "gen_ai.conversation.id": "c-7",
        "thea.order_id": "o-9",
        "thea.amount": 12.5,
        "thea.api_key": "[REDACTED]",
    }
    with traced(manager, capture_content=True) as cap:
        manager.trigger("payment.completed", **kwargs)
    recorded = event(cap.span("payment.completed"), "payment.completed")
    assert recorded["thea.note"] == "deliver to 5 Main St"
    assert recorded["thea.items"] == ("book",)
    assert recorded["thea.api_key"] == "[REDACTED]"


def test_an_undeclared_event_carrying_an_exception_records_it() -> None:
    manager = CallbackManager()
    with traced(manager) as cap:
        manager.trigger("on_tool_error", user_id="u1", error=LookupError("no slot"))
    span = cap.span("on_tool_error")
    assert span.status.status_code is StatusCode.ERROR
    assert event(span, "exception")["exception.type"] == "LookupError"


def test_a_long_event_name_is_cut_where_it_is_recorded() -> None:
    manager = CallbackManager()
    name = "custom_" + "x" * 1000
    got: list[int] = []
    manager.register(name, lambda **kwargs: got.append(1))
    with traced(manager) as cap:
        manager.trigger(name, user_id="u")
    assert got == [1]
    [span] = cap.spans()
    assert len(span.name) == 256 and span.name.startswith("custom_x")
    assert [len(e.name) for e in span.events] == [256]


def test_undeclared_names_are_capped_per_manager(caplog: pytest.LogCaptureFixture) -> None:
    manager = CallbackManager(max_open_events=2)
    manager.trigger("first", user_id="u")
    manager.register("second", print)
    with pytest.raises(ValueError, match=r"undeclared names are accepted .* but not this one"):
        manager.register("third", print)
    manager.trigger("fourth", user_id="u")  # ignored, with a warning, never raised
    assert any("emit ignored: unknown event 'fourth'" in r.getMessage() for r in caplog.records)
    assert [spec.name for spec in manager.events()][-2:] == ["first", "second"]


def test_generic_and_class_callbacks_see_undeclared_events_too() -> None:
    manager = CallbackManager()
    seen: list[Any] = []

    class Audit(TheaCallback):
        def on_custom(self, **kwargs: Any) -> None:
            seen.append(("class", kwargs))

        def on_message(self, user_id: Any, message: Any, timestamp: Any) -> None:
            seen.append(("class", "on_message"))

    manager.register(lambda event, *args, **kwargs: seen.append((event, kwargs)))
    manager.register(Audit())
    manager.trigger("on_custom", user_id="u")
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert seen == [
        ("on_custom", {"user_id": "u"}),
        ("class", {"user_id": "u"}),
        ("on_message", {"user_id": "u", "message": "m", "timestamp": 0}),
        ("class", "on_message"),
    ]


def test_threads_that_first_use_one_name_at_once_get_one_event() -> None:
    manager = CallbackManager()
    got: list[int] = []
    manager.register(lambda event, *args, **kwargs: got.append(1))
    start = threading.Barrier(8)

    def first_use() -> None:
        start.wait()
        manager.trigger("brand_new", user_id="u")

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8
    assert [spec.name for spec in manager.events()].count("brand_new") == 1


def test_only_theas_vocabulary_is_declared_by_default() -> None:
    manager = CallbackManager()
    names = [spec.name for spec in manager.events()]
    assert names == [
        "on_message",
        "on_state_change",
        "on_error",
        "on_session_timeout",
        "on_intent_detected",
        "on_agent_delegated",
    ]
    with traced(manager) as cap:
        manager.trigger("tool_start", tool="search")  # a name of the user's, not LLMProc's pair
    assert cap.span("tool_start").events[0].name == "tool_start"


def test_the_callbacks_attribute_is_a_snapshot_by_event_name() -> None:
    manager = CallbackManager()

    def a(**kwargs: Any) -> None: ...

    def b(**kwargs: Any) -> None: ...

    first = manager.register("on_message", a)
    manager.register(["on_message", "on_error"], b)
    assert manager.callbacks == {"on_message": [a, b], "on_error": [b]}
    manager.callbacks.clear()
    manager.unregister(first)
    assert manager.callbacks == {"on_message": [b], "on_error": [b]}
    manager.clear()
    assert manager.callbacks == {}


# -- (c) the compat module's names ------------------------------------------------------------


def test_the_compat_module_exports_exactly_theas_names() -> None:
    assert compat.__all__ == ["THEA", "CallbackManager", "Priority", "TheaCallback", "callbacks"]
    assert isinstance(compat.callbacks, CallbackManager)
    assert issubclass(CallbackManager, spanhooks.CallbackManager)
