"""The one span processor that ``setup()`` adds to a TracerProvider, holding all of spanhooks'.

The SDK cannot remove a processor from a provider; this one can be emptied, which is how
``uninstall()`` leaves an application's own provider as it found it. With redaction patterns
installed, every finished span is scrubbed here before any of them sees it
(:func:`spanhooks.tracing.redacted.redacted`): spans of other instrumentations and of managers
setup did not configure go out scrubbed too. With a price table, each model-call span then
gets its cost (:func:`spanhooks.metrics.cost.priced`). With content captured as events, each
model call's content event is sent, and in ``EVENT_ONLY`` mode the content left off the span,
here too (:class:`spanhooks.tracing.content_events.ContentEvents`). First of all, a span of
another instrumentation that describes the same call as the spanhooks span it is nested in is
merged into it (:class:`spanhooks.tracing.stacked.StackedSpans`).
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanhooks.metrics.cost import Prices, priced
from spanhooks.tracing.content_events import ContentEvents
from spanhooks.tracing.redacted import redacted
from spanhooks.tracing.stacked import StackedSpans
from spanhooks.util.log import logger
from spanhooks.util.redaction import installed_pattern

__all__ = ["Pipeline"]


class Pipeline(SpanProcessor):
    """spanhooks' processors as the one processor it adds to a TracerProvider.

    The SDK cannot remove a processor from a provider; this one can be emptied, which is how
    :func:`uninstall` leaves an application's own provider as it found it. The tuple is
    replaced, never mutated, so the span path reads it without a lock.
    """

    def __init__(
        self,
        prices: Prices | None = None,
        content_events: ContentEvents | None = None,
        stacked: StackedSpans | None = None,
    ) -> None:
        self.processors: tuple[SpanProcessor, ...] = ()
        self.prices = prices
        self.content_events = content_events
        self.stacked = stacked

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        stacked = self.stacked
        if stacked is not None and stacked.on_start(span, parent_context):
            return  # merged into its outer span: nothing here sees it
        for processor in self.processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        stacked = self.stacked
        if stacked is not None:
            kept = stacked.on_end(span)
            if kept is None:
                return  # merged into its outer span
            span = kept
        pattern = installed_pattern()
        if pattern is not None:
            span = redacted(span, pattern)
        content_events = self.content_events
        if content_events is not None:
            span = content_events(span)
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
