"""The local file's processor: every finished span reaches the JSONL file, whatever the burst.

The SDK's BatchSpanProcessor drops spans once its queue is full; the local file is where users
look when everything else failed, so it gets a processor that does not. An ended span goes onto
a pending deque (``deque.append`` is atomic: no lock on the emit path) and one writer thread
takes whatever is pending and writes it in one export, so the busier the emitters, the larger
each write (group commit). When the writer falls :data:`MAX_PENDING` spans behind, an emitting
thread waits for room (backpressure) instead of dropping; only a writer that made no progress
for :data:`MAX_BLOCK` seconds (a hung disk) makes it give the span up, counted as
``queue_full``. Memory is bounded by ``max_pending`` spans plus the batch being written.

Accounting (:class:`~spanhooks.export.accounting.AccountedExporter`): every span handed here is
written, failed (the disk refused its batch), dropped ``queue_full`` (counted where it
happens) or dropped ``shutdown`` (it ended after shutdown, or the shutdown deadline came first).

Threading: ``on_end`` from any thread; one writer thread, started here and again in a forked
child (whose parent's pending spans are the parent's to write); ``force_flush`` and
``shutdown`` from any thread, each bounded in time.
"""

from __future__ import annotations

import collections
import threading
import time

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanhooks.export.accounting import AccountedExporter
from spanhooks.util.deadline import SharedDeadline
from spanhooks.util.forksafe import renew_in_child

__all__ = ["MAX_BATCH", "MAX_BLOCK", "MAX_PENDING", "LocalFileProcessor"]

MAX_PENDING = 2048
"""Spans that may wait for the writer before emitting threads wait for room."""

MAX_BATCH = 512
"""Spans written by one export at most."""

MAX_BLOCK = 5.0
"""Seconds an emitting thread waits for a writer that makes no progress before it drops."""


class LocalFileProcessor(SpanProcessor):
    """Writes every ended, sampled span through ``exporter`` on a writer thread, without loss.

    ``deadline`` is shared with the other exporters' processors, so that shutting them all down
    takes at most its seconds.
    """

    def __init__(
        self,
        exporter: AccountedExporter,
        deadline: SharedDeadline | None = None,
        *,
        max_pending: int = MAX_PENDING,
        max_batch: int = MAX_BATCH,
        max_block: float = MAX_BLOCK,
    ) -> None:
        if not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive int, got {max_pending!r}")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
        if not 0 < max_block < 3600:
            raise ValueError(f"max_block must be between 0 and 3600 seconds, got {max_block!r}")
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.max_block = max_block
        self.closed = False
        """True once shutdown finished: whatever was not written by then is dropped."""
        self.counts_drops = True
        """Every drop is counted where it happens (the accounting need not infer them)."""
        self._exporter = exporter
        exporter.processor = self
        self._deadline = deadline or SharedDeadline(30.0)
        self._rejecting = False
        self._start_writer()
        renew_in_child(self)

    def _start_writer(self) -> None:
        self._pending: collections.deque[ReadableSpan] = collections.deque()
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())
        self._taking = 0  # spans being taken off the deque, before the exporter counts them
        self._busy = False  # a batch is being written
        self._batches = 0  # batches written: progress, for the emitters that wait for room
        self._stopping = False
        self._writer = threading.Thread(
            target=self._run, name=f"spanhooks-writer-{self._exporter.name}", daemon=True
        )
        self._writer.start()

    def queued(self) -> int:
        """Spans waiting for the writer, the batch being taken off the deque included."""
        return len(self._pending) + self._taking

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        exporter = self._exporter
        exporter.handed()
        if self._rejecting:
            exporter.late()
            return
        pending = self._pending
        if len(pending) >= self.max_pending and not self._wait_for_room():
            exporter.full()
            return
        pending.append(span)
        wake = self._wake
        if not wake.is_set():
            wake.set()

    def _wait_for_room(self) -> bool:
        """Wait while the writer makes progress; False when it made none for ``max_block``
        seconds, or when this is the writer's own thread (a span ended inside an export)."""
        if threading.current_thread() is self._writer:
            return len(self._pending) < self.max_pending * 2
        room = self._room
        with room:
            progress = self._batches
            give_up = time.monotonic() + self.max_block
            # Wait for half the room, not one slot: sixteen threads woken for every batch
            # would spend the writer's time switching between them.
            while len(self._pending) >= self.max_pending // 2:
                if self._rejecting:
                    return False
                now = time.monotonic()
                if self._batches != progress:  # the writer moved: wait on, from now
                    progress, give_up = self._batches, now + self.max_block
                elif now >= give_up:
                    return False
                room.wait(give_up - now)
        return True

    def _run(self) -> None:
        pending, exporter = self._pending, self._exporter
        while True:
            self._wake.wait()
            self._wake.clear()  # before draining: an append from now on wakes us again
            while pending:
                count = min(len(pending), self.max_batch)
                self._taking = count  # off the deque, not yet in flight: still queued
                self._busy = True
                batch = [pending.popleft() for _ in range(count)]
                self._taking = 0
                exporter.export(batch)  # accounted (in flight, then written or failed)
                with self._room:
                    self._busy = False
                    self._batches += 1
                    self._room.notify_all()
            if self._stopping:
                return

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write every pending span; True if done within ``timeout_millis``."""
        give_up = time.monotonic() + timeout_millis / 1000
        room = self._room
        with room:
            self._wake.set()
            while self.queued() or self._busy:
                remaining = give_up - time.monotonic()
                if remaining <= 0 or not self._writer.is_alive():
                    return False
                room.wait(remaining)
        return True

    def shutdown(self) -> None:
        """Write what is pending within the shared deadline, then stop. Idempotent.

        Spans ending from now on are counted as dropped (``shutdown``), as is whatever the
        deadline left unwritten; a write still in progress is abandoned to its daemon thread.
        """
        if self._rejecting:
            return
        self._rejecting = True
        with self._room:
            self._room.notify_all()  # emitters waiting for room give up
        self._stopping = True
        self._wake.set()
        self._writer.join(self._deadline.remaining())
        self.closed = True
        self._exporter.shutdown(timeout_millis=max(1, self._deadline.remaining_millis()))
        self._exporter.drop_log.note(self._exporter.name, self._exporter.dropped(), final=True)

    def after_fork_in_child(self) -> None:
        """The parent's writer does not exist here: start the child's own, with nothing
        pending (spans pending in the parent are the parent's to write)."""
        if not self._rejecting:
            self._start_writer()
