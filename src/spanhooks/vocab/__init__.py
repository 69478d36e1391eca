"""Built-in event vocabularies, one module per seed system."""

from spanhooks.vocab.genai import GENAI, GenAIEvent
from spanhooks.vocab.llmproc import LLMPROC, CallbackEvent
from spanhooks.vocab.logillm import LOGILLM, CallbackType
from spanhooks.vocab.meeting import MEETING, MeetingEventType
from spanhooks.vocab.thea import THEA

BUILTIN_EVENT_SETS = (LLMPROC, THEA, LOGILLM, MEETING, GENAI)
"""Every built-in set; a :class:`~spanhooks.CallbackManager` declares these by default."""

__all__ = [
    "BUILTIN_EVENT_SETS",
    "GENAI",
    "LLMPROC",
    "LOGILLM",
    "MEETING",
    "THEA",
    "CallbackEvent",
    "CallbackType",
    "GenAIEvent",
    "MeetingEventType",
]
