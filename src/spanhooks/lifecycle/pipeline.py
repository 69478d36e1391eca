"""The one span processor that ``setup()`` adds to a TracerProvider, holding all of spanhooks'.

The SDK cannot remove a processor from a provider; this one can be emptied, which is how
``uninstall()`` leaves an application's own provider as it found it. With redaction patterns
installed, every finished span is scrubbed here before any of them sees it
(:func:`spanhooks.tracing.redacted.redacted`): spans of other instrumentations and of managers
setup did not configure go out scrubbed too. With a price table, each model-call span then
gets its cost (:func:`spanhooks.metrics.cost.priced`).
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanhooks.metrics.cost import Prices, priced
from spanhooks.tracing.redacted import redacted
from spanhooks.util.log import logger
from spanhooks.util.redaction import installed_pattern

__all__ = ["Pipeline"]


class Pipeline(SpanProcessor):
    """spanhooks' processors as the one processor it adds to a TracerProvider.

    The SDK cannot remove a processor from a provider; this one can be emptied, which is how
    :func:`uninstall` leaves an application's own provider as it found it. The tuple is
    replaced, never mutated, so the span path reads it without a lock.
    """

    def __init__(self, prices: Prices | None = None) -> None:
        self.processors: tuple[SpanProcessor, ...] = ()
        self.prices = prices

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        pattern = installed_pattern()
        if pattern is not None:
            span = redacted(span, pattern)
        prices = self.prices
        if prices is not None:
            span = priced(span, prices)
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            try:
                processor.shutdown()
            except Exception:
                logger.exception("shutting down %s failed", type(processor).__name__)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        results = [processor.force_flush(timeout_millis) for processor in self.processors]
        return all(results)  # every processor flushed, even after one failed
