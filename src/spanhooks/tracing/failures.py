"""What spanhooks records about a failure: ``error.type``, ``exception.*`` attributes and the
status description, each scrubbed by the attribute policy's redaction and bounded by its length.

Never raises an Exception, even for an exception whose ``__str__``, ``__getattribute__`` or
class attributes do: every path that records a failure (a failed call, a failing callback, a
handled error) goes through here. Type names are read from the type slots, so neither the
exception nor its metaclass runs code for them, and are cut like everything else.
"""

from __future__ import annotations

from spanhooks.tracing.attributes import AttributePolicy
from spanhooks.tracing.bounds import MAX_STATUS_DESCRIPTION_LENGTH
from spanhooks.util.text import (
    MAX_TYPE_NAME_LENGTH,
    class_module,
    class_name,
    class_qualname,
    safe_str,
    traceback_text,
    truncate,
)

__all__ = ["error_description", "exception_attributes", "exception_type_name"]


def _tail(text: str, limit: int) -> str:
    """The end of a stack trace, where the failing frame and the message are."""
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]


def exception_attributes(
    error: BaseException, policy: AttributePolicy, *, stacktrace: bool = True
) -> dict[str, str]:
    """OpenTelemetry's ``exception.*`` attributes for ``error``, scrubbed by the policy's
    ``redact_patterns`` and bounded by its length limit. Never raises, even for an exception
    whose ``__str__`` does: everything spanhooks records about a failure goes through here."""
    attributes = {
        "exception.type": _tail(policy.scrub(exception_type_name(error)), policy.max_length),
        "exception.message": truncate(policy.scrub(safe_str(error)), policy.max_length),
    }
    if stacktrace:
        attributes["exception.stacktrace"] = _tail(
            policy.scrub(traceback_text(error)), policy.max_length
        )
    return attributes


def exception_type_name(error: BaseException) -> str:
    """``ValueError`` for built-ins, ``package.module.Class`` otherwise (OTel ``error.type``),
    at most :data:`~spanhooks.util.text.MAX_TYPE_NAME_LENGTH` characters from the
    end (where the class name is). ``__module__`` may be any object: only a str is used."""
    kind = type(error)
    qualname = class_qualname(kind)
    module = class_module(kind)
    if module and module != "builtins":
        qualname = f"{module}.{qualname}"
    return _tail(qualname, MAX_TYPE_NAME_LENGTH)


def error_description(error: BaseException, policy: AttributePolicy) -> str:
    """A span status description for ``error``: ``Kind: message``, scrubbed, at most
    :data:`~spanhooks.tracing.bounds.MAX_STATUS_DESCRIPTION_LENGTH` characters."""
    name = policy.scrub(class_name(type(error)))
    description = f"{name[:MAX_TYPE_NAME_LENGTH]}: {policy.scrub(safe_str(error))}"
    return truncate(description, MAX_STATUS_DESCRIPTION_LENGTH)
