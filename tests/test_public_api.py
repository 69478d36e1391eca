"""The public surface: what ``import spanhooks`` offers, and that it is typed."""

from __future__ import annotations

from importlib import resources

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
