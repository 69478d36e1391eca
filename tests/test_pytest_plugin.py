"""The pytest plugin: a user's test suite gets ``spanhooks_capture`` with nothing to configure,
and it captures code that uses the decorators and module-level functions unchanged."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

AGENT = """
import spanhooks

@spanhooks.tool
def search(query):
    return [query]

@spanhooks.agent(name="bot")
def turn(question):
    return search(question) + search(question + "?")
"""


def test_a_users_suite_can_assert_what_one_agent_turn_did(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(agent=AGENT)
    pytester.makepyfile(
        test_agent=textwrap.dedent(
            """
            from agent import turn

            def test_one_turn_searches_twice(spanhooks_capture):
                turn("otel")
                [bot] = spanhooks_capture.spans("invoke_agent bot")
                searches = spanhooks_capture.children(bot, "execute_tool search")
                assert len(searches) == 2
                events = [e.name for e in spanhooks_capture.events()]
                assert events == ["agent_start", "tool_call_start", "tool_call_end",
                                  "tool_call_start", "tool_call_end", "agent_end"]

            def test_each_test_starts_empty(spanhooks_capture):
                assert spanhooks_capture.spans() == [] and spanhooks_capture.events() == []
                turn("again")
                assert len(spanhooks_capture.spans()) == 3
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_capture_gives_the_process_wide_manager_back_when_done() -> None:
    import spanhooks
    from spanhooks.testing import capture

    manager = spanhooks.get_callback_manager()
    before = manager.tracer_provider
    with capture(managers=(manager,)) as cap:
        spanhooks.emit("tool_start", "search", {})
        spanhooks.emit("tool_end", "search", "ok")
        assert [span.name for span in cap.spans()] == ["execute_tool search"]
        assert [(e.event_set, e.name) for e in cap.events()] == [
            ("llmproc", "tool_start"),
            ("llmproc", "tool_end"),
        ]
    assert manager.tracer_provider is before
    assert all(reg["name"] != "spanhooks.testing" for reg in manager.get_registered_callbacks())
