"""The public surface: what ``import spanhooks`` offers, and that it is typed."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import pytest

import spanhooks


def test_every_public_name_is_importable_and_nothing_private_leaks() -> None:
    for name in spanhooks.__all__:
        assert hasattr(spanhooks, name), name
    assert all(not name.startswith("_") or name == "__version__" for name in spanhooks.__all__)
    assert sorted(spanhooks.__all__) == sorted(set(spanhooks.__all__))


def test_the_package_ships_py_typed() -> None:
    assert resources.files("spanhooks").joinpath("py.typed").is_file()


def test_the_core_api_is_reachable_from_the_top_level() -> None:
    for name in (
        "CallbackManager",
        "AbstractCallback",
        "EventSet",
        "setup",
        "shutdown",
        "register",
        "emit",
        "on",
        "current_call",
        "JsonlSpanExporter",
        "read_spans",
        "CallbackEvent",
        "CallbackType",
        "MeetingEventType",
        "Priority",
    ):
        assert name in spanhooks.__all__


# Every name users import today, pinned: a rename or a move inside the package must keep these.
DOCUMENTED = {
    "spanhooks": (
        "AbstractCallback AttributePolicy BUILTIN_EVENT_SETS CallContext CallbackEvent "
        "CallbackManager CallbackSpanProcessor CallbackType ContentCapture ContextThreadPoolExecutor "
        "DispatchMode "
        "DispatchObserver Dispatcher EventRecord EventSet EventSpec FailureIn ForeignSpanBridge GENAI "
        "GenAIEvent IsolatedSpanProcessor JSONLCallback JsonlSpanExporter LLMPROC LOGILLM MEETING "
        "MeetingEventType Phase Priority ProcessTarget SessionSpanProcessor SpanNode THEA "
        "Telemetry __version__ add_span_processor agent build_trees child_env clear current_call "
        "current_session declare disable emit emit_async enable end evaluate force_flush format_trees "
        "get_callback_manager instrument is_enabled llm mark_process_dead on on_span point "
        "propagate read_spans register register_jsonl_logger session setup shutdown start tool "
        "trigger unregister workflow"
    ),
    "spanhooks.vocab": (
        "AbstractCallback BUILTIN_EVENT_SETS CallbackEvent CallbackType GENAI GenAICallback "
        "GenAIEvent LLMPROC LLMProcCallback LOGILLM LogiLLMCallback MEETING MeetingCallback "
        "MeetingEventType THEA TheaCallback"
    ),
    "spanhooks.vocab.genai": "GENAI GenAICallback GenAIEvent TIME_TO_FIRST_CHUNK",
    "spanhooks.vocab.llmproc": "CallbackEvent LLMPROC LLMProcCallback",
    "spanhooks.vocab.logillm": (
        "CallbackType EvaluationEndEvent EvaluationStartEvent HyperparameterUpdateEvent LOGILLM "
        "LogiLLMCallback ModuleEndEvent ModuleStartEvent OptimizationEndEvent "
        "OptimizationStartEvent ProviderErrorEvent ProviderRequestEvent ProviderResponseEvent"
    ),
    "spanhooks.vocab.meeting": (
        "MEETING MeetingCallback MeetingEndedEventData MeetingEvent MeetingEventType "
        "MeetingStartedEventData ParticipantJoinedEventData ParticipantLeftEventData "
        "TimeoutOccurredEventData TurnChangedEventData"
    ),
    "spanhooks.vocab.thea": "THEA TheaCallback",
    "spanhooks.ops": (
        "ALLOWED_TRANSITIONS Alert AlertSeverity CleanupPriority ErrorContext ErrorHandler "
        "ErrorInfo ErrorSeverity EventRouter HandlerContext HealthMonitor HealthResult "
        "HealthStatus MeetingEventHandler MessageContext PollingManager ResourceManager "
        "ResourceType SessionState SessionStatus SessionTransition TaskState clear_handlers "
        "get_error_handler get_handler get_health_monitor get_polling_manager "
        "get_resource_manager handle_error handle_error_async invoke_handler invoke_handler_sync "
        "register_cleanup register_conversation_handler register_error_handler "
        "register_health_check register_message_notification_handler register_one_way_handler "
        "register_polling_task sessions_by_status"
    ),
    "spanhooks.testing": "Capture CapturedEvent SequentialIdGenerator capture span_tree",
    "spanhooks.instrumentation": (
        "DSPyInstrumentor LangChainInstrumentor LlamaIndexInstrumentor LlmprocInstrumentor "
        "LogillmInstrumentor McpInstrumentor OpenAIAgentsInstrumentor SpanhooksInstrumentor"
    ),
    "spanhooks.integrations.installed": (
        "FRAMEWORK_MODULES INTEGRATIONS disabled_integrations entry_point_name "
        "instrument_installed instrument_integration integration_module is_installed "
        "uninstrument_all uninstrument_integration"
    ),
    "spanhooks.integrations.llmproc": (
        "INSTALL_HINT SUPPORTED_VERSIONS SpanhooksCallback callback instrument is_instrumented "
        "uninstrument"
    ),
    "spanhooks.integrations.logillm": (
        "INSTALL_HINT SUPPORTED_VERSIONS SpanhooksCallback callback instrument is_instrumented "
        "uninstrument"
    ),
    "spanhooks.integrations.langchain": (
        "INSTALL_HINT SUPPORTED_VERSIONS callback_handler instrument is_instrumented uninstrument"
    ),
    "spanhooks.integrations.llamaindex": (
        "INSTALL_HINT SUPPORTED_VERSIONS handlers instrument is_instrumented uninstrument"
    ),
    "spanhooks.integrations.openai_agents": (
        "INSTALL_HINT SUPPORTED_VERSIONS instrument is_instrumented tracing_processor uninstrument"
    ),
    "spanhooks.integrations.dspy": (
        "INSTALL_HINT SUPPORTED_VERSIONS callback instrument is_instrumented uninstrument"
    ),
    "spanhooks.integrations.mcp": (
        "INSTALL_HINT SUPPORTED_VERSIONS instrument is_instrumented middleware uninstrument"
    ),
}


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_every_documented_name_is_exported_where_users_import_it(module: str) -> None:
    found = importlib.import_module(module)
    names = DOCUMENTED[module].split()
    missing = [name for name in names if not hasattr(found, name)]
    assert missing == []
    exported = getattr(found, "__all__", None)
    if exported is not None:
        assert sorted(set(names) - set(exported)) == []


def test_the_top_level_exports_exactly_the_documented_names() -> None:
    assert sorted(spanhooks.__all__) == sorted(DOCUMENTED["spanhooks"].split())


def test_the_class_callback_base_offers_every_vocabulary_s_methods() -> None:
    from spanhooks.vocab import (
        GenAICallback,
        LLMProcCallback,
        LogiLLMCallback,
        MeetingCallback,
        TheaCallback,
    )

    for base in (LLMProcCallback, TheaCallback, LogiLLMCallback, MeetingCallback, GenAICallback):
        assert issubclass(spanhooks.AbstractCallback, base)
    declared = {spec.method_names[-1] for spec in spanhooks.CallbackManager().events()}
    offered = {name for name in dir(spanhooks.AbstractCallback) if name.startswith("on_")}
    assert declared == offered


@pytest.mark.parametrize(
    ("group", "name"),
    [
        ("console_scripts", "spanhooks"),
        ("pytest11", "spanhooks"),
        ("opentelemetry_instrumentor", "spanhooks"),
    ],
)
def test_every_entry_point_loads(group: str, name: str) -> None:
    [entry] = [ep for ep in metadata.entry_points(group=group) if ep.name == name]
    assert entry.load() is not None


def test_the_command_runs_as_a_module_and_as_a_script() -> None:
    script = str(Path(sys.executable).with_name("spanhooks"))
    for command in ([sys.executable, "-m", "spanhooks", "--help"], [script, "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "replay" in done.stdout
