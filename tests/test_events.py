"""Declaring events: bad declarations fail when declared, unknown names when registered."""

from __future__ import annotations

from enum import Enum

import pytest

import spanhooks
from spanhooks import CallbackManager, EventSet, Phase, end, point, start


def test_start_and_end_pair_is_inferred_from_their_names() -> None:
    events = EventSet("billing", [start("charge_start", "customer"), end("charge_end", "receipt")])
    assert events["charge_start"].pair == events["charge_end"].pair == "charge"
    assert events["charge_start"].phase is Phase.START


def test_a_start_without_an_end_is_rejected() -> None:
    with pytest.raises(ValueError, match="has a start but no end"):
        EventSet("billing", [start("charge_start", "customer")])


def test_an_end_without_a_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="has an end but no start"):
        EventSet("billing", [end("charge_end")])


def test_an_uninferable_pair_must_be_named() -> None:
    with pytest.raises(ValueError, match="pass pair="):
        EventSet("jobs", [start("launch", "job_id"), end("land")])
    events = EventSet("jobs", [start("launch", "job_id", pair="job"), end("land", pair="job")])
    assert events["land"].pair == "job"


def test_duplicate_names_and_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        EventSet("x", [point("ping"), point("ping")])
    with pytest.raises(ValueError, match="duplicate argument"):
        EventSet("x", [point("ping", "a", "a")])


def test_argument_names_must_be_identifiers_and_not_reserved() -> None:
    with pytest.raises(ValueError, match="identifier"):
        EventSet("x", [point("ping", "not valid")])
    with pytest.raises(ValueError, match="reserved"):
        EventSet("x", [point("ping", "call_id")])


def test_templates_attributes_and_content_must_name_declared_arguments() -> None:
    with pytest.raises(ValueError, match="unknown arguments"):
        EventSet("x", [start("a_start", "tool", span_name="run {tol}"), end("a_end")])
    with pytest.raises(ValueError, match="attributes name unknown"):
        EventSet("x", [point("ping", "a", attributes={"b": "x.b"})])
    with pytest.raises(ValueError, match="content name unknown"):
        EventSet("x", [point("ping", "a", content={"b"})])


def test_an_enum_needs_an_event_for_every_member() -> None:
    class Kinds(str, Enum):
        PING = "ping"
        PONG = "pong"

    with pytest.raises(ValueError, match="PONG"):
        EventSet("x", [point("ping")], enum=Kinds)


def test_registering_an_unknown_event_fails_with_suggestions() -> None:
    manager = CallbackManager()
    with pytest.raises(ValueError, match="did you mean 'on_message'"):
        manager.register("on_mesage", lambda **kw: None)


def test_a_user_set_is_declared_like_the_built_in_ones() -> None:
    manager = CallbackManager()
    manager.declare(EventSet("billing", [start("charge_start", "amount"), end("charge_end")]))
    seen: list[float] = []
    manager.register("charge_start", seen.append)
    manager.emit("charge_start", 9.5)
    assert seen == [9.5]


def test_declaring_a_name_twice_across_sets_is_rejected() -> None:
    manager = CallbackManager()
    with pytest.raises(ValueError, match="already declared by set 'thea'"):
        manager.declare(EventSet("mine", [point("on_message")]))


def test_every_seed_vocabulary_is_built_in_with_its_exact_names() -> None:
    names = {spec.name: (spec.phase.value, spec.args) for spec in CallbackManager().events()}
    assert names["tool_start"] == ("start", ("tool_name", "tool_args"))
    assert names["tool_end"] == ("end", ("tool_name", "result"))
    assert names["turn_end"] == ("end", ("process", "response_obj", "tool_results"))
    assert names["response"] == ("point", ("text",))
    assert names["stderr_write"] == ("point", ("text",))
    assert names["api_request"] == ("start", ("payload_dict",))
    assert names["api_response"] == ("end", ("response_obj",))
    assert names["on_message"] == ("point", ("user_id", "message", "timestamp"))
    assert names["on_agent_delegated"] == ("point", ("user_id", "agent", "intent"))
    assert names["on_session_timeout"] == ("point", ("user_id", "session_id"))
    assert names["provider_error"] == ("end", ("event",))
    assert names["hyperparameter_update"] == ("point", ("event",))
    assert names["meeting_started"] == ("start", ("event",))
    assert names["timeout_occurred"] == ("point", ("event",))
    assert {member.value for member in spanhooks.CallbackEvent} <= names.keys()
    assert {member.value for member in spanhooks.CallbackType} <= names.keys()
    assert {member.value for member in spanhooks.MeetingEventType} <= names.keys()
