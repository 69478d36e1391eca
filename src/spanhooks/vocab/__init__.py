"""Built-in event vocabularies, one module per seed system, each with its class-callback base."""

from spanhooks.vocab.genai import GENAI, GenAICallback, GenAIEvent
from spanhooks.vocab.llmproc import LLMPROC, CallbackEvent, LLMProcCallback
from spanhooks.vocab.logillm import LOGILLM, CallbackType, LogiLLMCallback
from spanhooks.vocab.meeting import MEETING, MeetingCallback, MeetingEventType
from spanhooks.vocab.thea import THEA, TheaCallback

BUILTIN_EVENT_SETS = (LLMPROC, THEA, LOGILLM, MEETING, GENAI)
"""Every built-in set; a :class:`~spanhooks.CallbackManager` declares these by default."""


class AbstractCallback(
    LLMProcCallback, TheaCallback, LogiLLMCallback, MeetingCallback, GenAICallback
):
    """Base class for class callbacks: one no-op method per built-in event; override any.

    Methods may be sync or async. Methods a subclass leaves alone are not called at all.
    Set ``priority`` (a class attribute or property) to order this callback among others;
    higher runs first. Any object with suitably named methods works too, and each vocabulary's
    own base (``LLMProcCallback``, ``LogiLLMCallback``...) offers just its events; this class
    documents every name and gives editors something to complete.
    """

    priority: int = 0
    """Higher runs first; the named levels are :class:`~spanhooks.Priority` (NORMAL is 0)."""


__all__ = [
    "BUILTIN_EVENT_SETS",
    "GENAI",
    "LLMPROC",
    "LOGILLM",
    "MEETING",
    "THEA",
    "AbstractCallback",
    "CallbackEvent",
    "CallbackType",
    "GenAICallback",
    "GenAIEvent",
    "LLMProcCallback",
    "LogiLLMCallback",
    "MeetingCallback",
    "MeetingEventType",
    "TheaCallback",
]
