"""What spanhooks records about a failure: ``error.type``, ``exception.*`` attributes and the
status description, each scrubbed by the attribute policy's redaction and bounded by its length.

Never raises, even for an exception whose ``__str__`` does: every path that records a failure
(a failed call, a failing callback, a handled error) goes through here.
"""

from __future__ import annotations

import traceback

from spanhooks.tracing.attributes import AttributePolicy, safe_str, truncate

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
        "exception.type": exception_type_name(error),
        "exception.message": truncate(policy.scrub(safe_str(error)), policy.max_length),
    }
    if stacktrace:
        attributes["exception.stacktrace"] = _tail(
            policy.scrub(_stack_trace(error)), policy.max_length
        )
    return attributes


def exception_type_name(error: BaseException) -> str:
    """``ValueError`` for built-ins, ``package.module.Class`` otherwise (OTel ``error.type``)."""
    kind = type(error)
    module, qualname = kind.__module__, kind.__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


def error_description(error: BaseException, policy: AttributePolicy) -> str:
    """A span status description for ``error``: ``Kind: message``, scrubbed, at most 1024."""
    return f"{type(error).__name__}: {policy.scrub(safe_str(error))}"[:1024]


def _stack_trace(error: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except Exception:
        return type(error).__qualname__
