"""The JSONL span exporter: one JSON document per line, written so that a crash tears at most one.

Plug it into the SDK's own processors (``BatchSpanProcessor(JsonlSpanExporter(path))``); it
does no batching of its own. Two formats:

- ``spanhooks``: one object per span (hex ids, parent, name, kind, times in ns and ISO-8601,
  duration, status, attributes, events, links, resource, scope, dropped counts), the
  :class:`~spanhooks.export.reader.SpanRecord` schema;
- ``otlp``: one OTLP/JSON ``ExportTraceServiceRequest`` per export call, as the OpenTelemetry
  Collector's ``otlpjsonfile`` receiver reads it, so a file can be replayed into any backend.

The file is only ever appended to. Each export is a single unbuffered ``write()`` under the
exporter's lock, so the file is current after every batch and a crash can tear only its last
line; a torn last line left by a killed process is cut off before the next append, so it cannot
swallow the next record. A file renamed or deleted while open (log rotation) is opened anew at
its path before the next write. A forked child gets its own lock and handle; processes sharing
a file coordinate through an advisory lock (``flock``) so a repair never cuts another's write
short.

The ``spanhooks`` lines are written by a specialised encoder (:func:`span_lines`, about four
times the speed of building each record and ``json.dumps``-ing it) that produces the same text
as :func:`span_to_dict` encoded with ``json.dumps``, byte for byte, and hands anything unusual
to that general way; the format is defined by :func:`span_to_dict`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import logging
import math
import os
import stat
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence, Set
from io import FileIO
from pathlib import Path
from typing import IO, Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from spanhooks.events.scope import event_set_of
from spanhooks.export.reader import (
    DroppedCounts,
    EventRecord,
    LinkRecord,
    ScopeRecord,
    SpanRecord,
    SpanStatus,
    iso_time,
)
from spanhooks.util.forksafe import renew_in_child
from spanhooks.util.log import rate_limited

if sys.platform != "win32":
    import fcntl

__all__ = [
    "DEFAULT_PATH",
    "EVENT_SET_ATTRIBUTE",
    "FORMATS",
    "JsonlSpanExporter",
    "dumps",
    "json_safe",
    "otlp_request",
    "span_lines",
    "span_to_dict",
]

logger = logging.getLogger("spanhooks")

DEFAULT_PATH = "spanhooks-traces.jsonl"
FORMATS = ("spanhooks", "otlp")
EVENT_SET_ATTRIBUTE = "spanhooks.event_set"
"""An attribute naming a span's event set, for spans whose tracer is not ``spanhooks.<set>``."""


class JsonlSpanExporter(SpanExporter):
    """Appends finished spans to a JSONL file, one line per span (or per batch for ``otlp``).

    ``event_sets`` keeps only the spans of those spanhooks event sets (like LogiLLM's
    ``include_module_events``); spans of other instrumentations are kept if
    ``include_foreign``; ``predicate``, if given, must also accept a span for it to be written.
    Thread-safe (one lock per exporter) and fork-safe: a forked child opens its own handle.
    Several processes may append to the same file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        format: str = "spanhooks",
        event_sets: Collection[str] | None = None,
        include_foreign: bool = True,
        predicate: Callable[[ReadableSpan], bool] | None = None,
    ) -> None:
        if format not in FORMATS:
            allowed = " or ".join(map(repr, FORMATS))
            raise ValueError(f"unknown JSONL format {format!r}: expected {allowed}")
        if isinstance(event_sets, str):
            raise TypeError(
                f"event_sets must be a collection of names, not the string {event_sets!r}"
            )
        self.path = Path(
            path if path is not None else os.environ.get("SPANHOOKS_JSONL_PATH") or DEFAULT_PATH
        )
        self.format = format
        self._event_sets = frozenset(event_sets) if event_sets is not None else None
        self._include_foreign = include_foreign
        self._predicate = predicate
        self._filters = event_sets is not None or not include_foreign or predicate is not None
        self._lock = threading.Lock()
        self._file: FileIO | None = None
        self._shutdown = False
        renew_in_child(self)
        _repair_torn_tail(self.path)  # at start, not only before the first write

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append the spans the filters keep, in one write.

        Never raises: an I/O error is logged (rate-limited) and, like any export after
        :meth:`shutdown`, returns ``FAILURE``.
        """
        written = self.write(spans)
        return SpanExportResult.SUCCESS if written == len(spans) else SpanExportResult.FAILURE

    def write(self, spans: Sequence[ReadableSpan]) -> int:
        """Append the spans the filters keep, in one write; how many of ``spans`` are done.

        A span the filters leave out is done (there is nothing to write). When the disk refuses
        part of the write (full, or gone read-only), the spans whose whole line reached the file
        are done and the torn rest is cut off at once, so the file still ends with a complete
        line. Never raises.
        """
        if self._shutdown:
            return 0
        kept = [span for span in spans if self._keep(span)] if self._filters else spans
        skipped = len(spans) - len(kept)
        try:
            lines = self._encode(kept) if kept else []
            # One encode for the whole batch: the same bytes as line by line, in one C call.
            payload = "".join(lines).encode("utf-8", errors="replace")
        except Exception as exc:  # the encoders are defensive; an exporter must still not raise
            self._log_failure("encoding", len(kept), exc)
            return skipped
        with self._lock:
            if self._shutdown:
                return 0
            if not lines:
                return skipped
            try:
                self._append(payload)
            except _PartialWrite as partial:
                self._close()
                encoded = [line.encode("utf-8", errors="replace") for line in lines]
                complete = _lines_within(encoded, partial.written)
                self._log_failure("writing", len(lines) - complete, partial.error)
                if partial.written:
                    _repair_torn_tail(self.path)
                return skipped + (complete if self.format == "spanhooks" else 0)
        return len(spans)

    def append_lines(self, lines: Sequence[str]) -> bool:
        """Append other records' JSON lines (log records, say) to the file, in one write
        under the same lock as spans; whether all of them reached it. Never raises."""
        if not lines:
            return True
        payload = "".join(line + "\n" for line in lines).encode("utf-8", errors="replace")
        with self._lock:
            if self._shutdown:
                return False
            try:
                self._append(payload)
            except _PartialWrite as partial:
                self._close()
                self._log_failure("writing", len(lines), partial.error)
                if partial.written:
                    _repair_torn_tail(self.path)
                return False
        return True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Always True: nothing is buffered, every export is written before it returns."""
        return True

    def shutdown(self) -> None:
        """Close the file; later exports fail. Safe to call more than once."""
        with self._lock:
            self._shutdown = True
            self._close()

    def _keep(self, span: ReadableSpan) -> bool:
        event_set = _event_set(span)
        if event_set is None:
            kept = self._include_foreign
        else:
            kept = self._event_sets is None or event_set in self._event_sets
        return kept and self._accepts(span)

    def _accepts(self, span: ReadableSpan) -> bool:
        if self._predicate is None:
            return True
        try:
            return bool(self._predicate(span))
        except Exception as exc:
            rate_limited.log(
                logging.ERROR,
                f"jsonl-predicate:{self.path}",
                "the JSONL predicate for %s raised %r; writing the span anyway",
                self.path,
                exc,
                exc_info=exc,
            )
            return True

    def _encode(self, spans: Sequence[ReadableSpan]) -> list[str]:
        """One line (newline included) per span (``spanhooks``), or one for the whole batch
        (``otlp``); UTF-8 encoding, with lone surrogates replaced, is the caller's."""
        if self.format == "otlp":
            return [dumps(otlp_request(spans)) + "\n"]
        return span_lines(spans)

    def _append(self, payload: bytes) -> None:
        """Write ``payload`` at the end of the file; ``_PartialWrite`` says how far it got."""
        try:
            handle = self._open()
            with _file_lock(handle.fileno(), exclusive=False):
                _write_all(handle, payload)
        except _PartialWrite:
            raise
        except OSError as exc:  # the file could not be opened or locked: nothing written
            raise _PartialWrite(0, exc) from exc

    def _open(self) -> FileIO:
        if self._file is not None and self._moved(self._file):
            self._close()  # rotated away (renamed or deleted): write on at the path, anew
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _repair_torn_tail(self.path)
            # Unbuffered: each export is one write(2) to an O_APPEND descriptor, so the lines of
            # processes sharing the file never interleave and a fork inherits no pending buffer.
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open
        return self._file

    def _moved(self, handle: FileIO) -> bool:
        """Whether ``path`` no longer names the open file (logrotate's rename, or a delete),
        checked once per write, as ``logging.handlers.WatchedFileHandler`` does. A truncation
        in place (``copytruncate``) needs nothing: appends follow the new end of the file."""
        try:
            current = os.stat(self.path)
            opened = os.fstat(handle.fileno())
        except FileNotFoundError:
            return True
        except OSError:  # cannot tell: keep writing where we are
            return False
        return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino)

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def after_fork_in_child(self) -> None:
        # The parent's lock may have been held by a thread that does not exist in the child.
        self._lock = threading.Lock()
        self._close()  # only the child's copy of the descriptor; the parent's stays open

    def _log_failure(self, action: str, count: int, exc: Exception) -> None:
        rate_limited.log(
            logging.ERROR,
            f"jsonl-{action}:{self.path}",
            "%s %d span(s) for %s failed: %s",
            action,
            count,
            self.path,
            exc,
        )


def _event_set(span: ReadableSpan) -> str | None:
    value = (span.attributes or {}).get(EVENT_SET_ATTRIBUTE)
    return value if isinstance(value, str) else event_set_of(span)


class _PartialWrite(Exception):
    """A write that stopped after ``written`` bytes, because of ``error``."""

    def __init__(self, written: int, error: OSError) -> None:
        super().__init__(written, error)
        self.written = written
        self.error = error


def _write_all(handle: FileIO, payload: bytes) -> None:
    view = memoryview(payload)
    done = 0
    try:
        while done < len(payload):  # one write, unless the disk is filling up
            written = handle.write(view[done:])
            if not written:
                raise OSError(f"no progress writing {len(payload) - done} bytes")
            done += written
    except OSError as exc:
        raise _PartialWrite(done, exc) from exc


def _lines_within(lines: Sequence[bytes], written: int) -> int:
    """How many of ``lines``, written one after another, lie wholly within ``written`` bytes."""
    complete, end = 0, 0
    for line in lines:
        end += len(line)
        if end > written:
            break
        complete += 1
    return complete


@contextlib.contextmanager
def _file_lock(fd: int, *, exclusive: bool) -> Iterator[None]:
    """An advisory lock between processes sharing the file.

    Appends share it; a torn-tail repair holds it alone, so that it never mistakes a line
    another process is still writing for a torn one. Without lock support, runs unlocked.
    """
    if sys.platform == "win32":
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    except OSError:
        locked = False
    else:
        locked = True
    try:
        yield
    finally:
        if locked:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)


_CHUNK = 64 * 1024


def _repair_torn_tail(path: Path) -> None:
    """Cut a last line without a newline (a write a killed process left unfinished).

    Logs a warning with the number of bytes discarded; a file that cannot be checked is left
    as it is (with a warning), since appending to it is still better than losing spans.
    """
    try:
        with open(path, "r+b") as handle, _file_lock(handle.fileno(), exclusive=True):
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return  # a pipe or a terminal (/dev/stdout) has no tail to repair
            size = handle.seek(0, os.SEEK_END)
            if size == 0 or _byte_at(handle, size - 1) == b"\n":
                return
            keep = _end_of_last_line(handle, size)
            handle.truncate(keep)
    except FileNotFoundError:
        return
    except OSError as exc:
        logger.warning("could not check %s for a torn last line: %s", path, exc)
        return
    logger.warning("%s ended with a torn line; discarded its last %d byte(s)", path, size - keep)


def _byte_at(handle: IO[bytes], offset: int) -> bytes:
    handle.seek(offset)
    return handle.read(1)


def _end_of_last_line(handle: IO[bytes], size: int) -> int:
    """The offset just past the last newline of the file, or 0 if it has none."""
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        handle.seek(start)
        newline = handle.read(end - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def dumps(data: Any) -> str:
    """Compact JSON text for ``data`` that is always valid JSON and never raises (see json_safe)."""
    return _compact_json(json_safe(data))


def _compact_json(data: Any) -> str:
    """Compact JSON for data that is already JSON-safe; anything unexpected becomes its str."""
    return json.dumps(
        data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_safe_str
    )


_MAX_DEPTH = 32


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data, never raising, whatever it holds.

    NaN and infinities become ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; bytes become text;
    tuples, other sequences and sets become lists; mapping keys become strings; anything else
    (and anything nested deeper than 32 levels) becomes ``str(value)``, or
    ``"<unrepresentable>"`` if even that fails.
    """
    return _safe(value, _MAX_DEPTH)


def _safe(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _safe_float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if depth > 0 and isinstance(value, Mapping | Sequence | Set):
        try:
            if isinstance(value, Mapping):
                return {
                    key if isinstance(key, str) else _safe_str(key): _safe(item, depth - 1)
                    for key, item in value.items()
                }
            return [_safe(item, depth - 1) for item in value]
        except Exception:  # a container whose iteration fails is shown as its str
            pass
    return _safe_str(value)


def _safe_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return "<unrepresentable>"


def _safe_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {key: json_safe(value) for key, value in attributes.items()}


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_to_dict(span: ReadableSpan) -> SpanRecord:
    """One finished span in the ``spanhooks`` format, its attribute values made JSON-safe."""
    context, parent, scope = span.context, span.parent, span.instrumentation_scope
    start = span.start_time or 0
    end = span.end_time or start
    return SpanRecord(
        trace_id=_hex(context.trace_id if context else 0, 32),
        span_id=_hex(context.span_id if context else 0, 16),
        parent_span_id=_hex(parent.span_id, 16) if parent is not None else None,
        name=span.name,
        kind=span.kind.name,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        start_time=iso_time(start),
        end_time=iso_time(end),
        duration_ms=(end - start) / 1e6,
        status=SpanStatus(code=span.status.status_code.name, description=span.status.description),
        attributes=_safe_attributes(span.attributes),
        events=[
            EventRecord(
                name=event.name,
                time_unix_nano=event.timestamp,
                time=iso_time(event.timestamp),
                attributes=_safe_attributes(event.attributes),
            )
            for event in span.events
        ],
        links=[
            LinkRecord(
                trace_id=_hex(link.context.trace_id, 32),
                span_id=_hex(link.context.span_id, 16),
                attributes=_safe_attributes(link.attributes),
            )
            for link in span.links
        ],
        resource=_safe_attributes(span.resource.attributes),
        scope=_scope_record(scope),
        dropped=DroppedCounts(
            attributes=span.dropped_attributes,
            events=span.dropped_events,
            links=span.dropped_links,
        ),
    )


# The spanhooks format, fast. An exporter that writes slower than one thread emits makes the
# local file the bottleneck of the whole process (its writer holds emitters back rather than
# drop), so each line is written here as text directly: fixed keys as literals, ids and times
# formatted in place, every string escaped by the same C function ``json.dumps`` uses, the
# resource and scope (the same for a whole batch, as a rule) encoded once per batch, and the
# values the SDK stores (str, bool, int, float, and tuples of them) rendered without building a
# dict first. Anything else (a value of another type, a subclass overriding a property, a field
# the SDK does not hold where expected) goes the general way, ``span_to_dict`` and
# ``json.dumps``, so that every line is the same text ``_compact_json(span_to_dict(span))``
# makes, byte for byte (tests/test_jsonl_encoder.py compares them over generated and hand-built
# spans).

_text = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) escapes str with
_int_text = int.__repr__  # json's rendering of int (for bool, below, it is true/false)
_float_text = float.__repr__  # json's rendering of a finite float
_isfinite = math.isfinite


class _Unusual(Exception):
    """A span or value the fast encoder leaves to the general one."""


_SPAN_PROPERTIES = (
    "name",
    "context",
    "parent",
    "kind",
    "start_time",
    "end_time",
    "status",
    "attributes",
    "events",
    "links",
    "resource",
    "instrumentation_scope",
    "dropped_attributes",
    "dropped_events",
    "dropped_links",
)
_field_types: dict[type, bool] = {}


def _reads_fields(kind: type) -> bool:
    """Whether spans of ``kind`` answer every property from the field the SDK's ReadableSpan
    reads (so the fields may be read directly); a subclass that overrides one (a view that
    scrubs attributes, say) is read through its properties, the general way."""
    plain = _field_types.get(kind)
    if plain is None:
        plain = all(
            getattr(kind, name, None) is getattr(ReadableSpan, name) for name in _SPAN_PROPERTIES
        )
        _field_types[kind] = plain
    return plain


_KIND_TEXT = {kind: f'"{kind.name}"' for kind in SpanKind}
_STATUS_TEXT = {code: f'{{"code":"{code.name}","description":' for code in StatusCode}
_UNSET_STATUS = '{"code":"UNSET","description":null}'
_NO_DROPS = '{"attributes":0,"events":0,"links":0}'
_ISO_LIMIT = 253_402_300_800 * 10**9  # 10000-01-01: iso_time has no text from there on
_EPOCH = datetime.datetime(1970, 1, 1)
_second_texts: dict[int, str] = {}  # see _second_text


def span_lines(spans: Iterable[ReadableSpan]) -> list[str]:
    """The ``spanhooks`` format's lines for ``spans``, newline included, one per span.

    Each is the text ``span_to_dict(span)`` encodes to with the exporter's JSON settings,
    exactly, written without the dict where the span holds what the SDK holds. Raises only
    where that general encoding raises too. Pure apart from a cache of second texts: safe from
    any thread.
    """
    fragments: dict[tuple[int, int], str] = {}  # the batch holds its resources: ids are unique
    lines: list[str] = []
    append = lines.append
    field_types = _field_types
    for span in spans:
        try:
            plain = field_types.get(type(span))
            if plain is None:
                plain = _reads_fields(type(span))
            if not plain:
                raise _Unusual
            append(_span_line(span, fragments))
        except Exception:  # anything unusual: the general way, which has the last word
            append(_compact_json(span_to_dict(span)) + "\n")
    return lines


def _span_line(span: ReadableSpan, fragments: dict[tuple[int, int], str]) -> str:
    """One line for a span whose properties read its fields (see :func:`_reads_fields`)."""
    fields = span.__dict__
    context, parent = fields["_context"], fields["_parent"]
    start = fields["_start_time"] or 0
    end = fields["_end_time"] or start
    name = fields["_name"]
    if (
        type(context) is not SpanContext  # a tuple: its ids are read by index
        or type(start) is not int
        or type(end) is not int
        or type(name) is not str
    ):
        raise _Unusual
    status = fields["_status"]
    code, description = status.status_code, status.description
    if description is None:
        status_text = _UNSET_STATUS if code is StatusCode.UNSET else _STATUS_TEXT[code] + "null}"
    elif type(description) is str:
        status_text = _STATUS_TEXT[code] + _text(description) + "}"
    else:
        raise _Unusual
    kind = fields["_kind"]
    kind_text = '"INTERNAL"' if kind is SpanKind.INTERNAL else _KIND_TEXT[kind]
    resource, scope = fields["_resource"], fields["_instrumentation_scope"]
    key = (id(resource), id(scope))
    fragment = fragments.get(key)
    if fragment is None:
        fragment = fragments[key] = _resource_fragment(resource, scope)
    attributes = fields["_attributes"]
    if isinstance(attributes, BoundedAttributes):
        dropped_attributes = attributes.dropped
        attributes = attributes._dict  # what its items() reads, one key at a time
    else:
        dropped_attributes = 0
    events, links = fields["_events"], fields["_links"]
    dropped_events = events.dropped if isinstance(events, BoundedList) else 0
    dropped_links = links.dropped if isinstance(links, BoundedList) else 0
    none_dropped = not (dropped_attributes or dropped_events or dropped_links)
    counts = type(dropped_attributes) is type(dropped_events) is type(dropped_links) is int
    if none_dropped and counts:
        dropped = _NO_DROPS
    else:
        dropped = _compact_json(
            {"attributes": dropped_attributes, "events": dropped_events, "links": dropped_links}
        )
    if parent is None:
        parent_text = "null"
    elif type(parent) is SpanContext:
        parent_text = f'"{parent[1]:016x}"'
    else:
        parent_text = f'"{parent.span_id:016x}"'
    events_text = "[" + ",".join([_event_text(event) for event in events]) + "]" if events else "[]"
    links_text = "[" + ",".join([_link_text(link) for link in links]) + "]" if links else "[]"
    return (
        f'{{"trace_id":"{context[0]:032x}","span_id":"{context[1]:016x}"'
        f',"parent_span_id":{parent_text},"name":{_text(name)},"kind":{kind_text}'
        f',"start_time_unix_nano":{start},"end_time_unix_nano":{end},{_times_text(start, end)}'
        f',"duration_ms":{_float_text((end - start) / 1e6)},"status":{status_text}'
        f',"attributes":{_attributes_text(attributes)},"events":{events_text}'
        f',"links":{links_text}{fragment},"dropped":{dropped}}}\n'
    )


def _resource_fragment(resource: Any, scope: Any) -> str:
    """``,"resource":{...},"scope":{...}`` as span_to_dict's record encodes them."""
    return (
        f',"resource":{_compact_json(_safe_attributes(resource.attributes))}'
        f',"scope":{_compact_json(_scope_record(scope))}'
    )


def _scope_record(scope: Any) -> ScopeRecord:
    return ScopeRecord(name=scope.name if scope else None, version=scope.version if scope else None)


def _event_text(event: Any) -> str:
    name, timestamp = event.name, event.timestamp
    if type(name) is not str or type(timestamp) is not int:
        raise _Unusual
    return (
        f'{{"name":{_text(name)},"time_unix_nano":{timestamp},"time":{_iso_text(timestamp)}'
        f',"attributes":{_attributes_text(event.attributes)}}}'
    )


def _link_text(link: Any) -> str:
    context = link.context
    return (
        f'{{"trace_id":"{context.trace_id:032x}","span_id":"{context.span_id:016x}"'
        f',"attributes":{_attributes_text(link.attributes)}}}'
    )


def _iso_text(nanos: Any) -> str:
    """``iso_time(nanos)`` as JSON text."""
    if type(nanos) is int and 0 <= nanos < _ISO_LIMIT:
        seconds, micros = divmod(nanos // 1000, 1_000_000)
        return f'"{_second_texts.get(seconds) or _second_text(seconds)}.{micros:06d}Z"'
    text = iso_time(nanos)
    return "null" if text is None else _text(text)


def _times_text(start: int, end: int) -> str:
    """``"start_time":...,"end_time":...`` for a span's int times, as ``iso_time`` writes
    them; their date and time of day is made once per second, and once for both."""
    if 0 <= start <= end < _ISO_LIMIT:
        seconds, micros = divmod(start // 1000, 1_000_000)
        end_seconds, end_micros = divmod(end // 1000, 1_000_000)
        prefix = _second_texts.get(seconds) or _second_text(seconds)
        if end_seconds != seconds:
            end_prefix = _second_texts.get(end_seconds) or _second_text(end_seconds)
        else:
            end_prefix = prefix
        return f'"start_time":"{prefix}.{micros:06d}Z","end_time":"{end_prefix}.{end_micros:06d}Z"'
    return f'"start_time":{_iso_text(start)},"end_time":{_iso_text(end)}'


def _second_text(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a second since the epoch, kept for the next span (dict
    operations are atomic, so threads may share the cache; it is emptied when it grows)."""
    if len(_second_texts) >= 4096:
        _second_texts.clear()
    text = _second_texts[seconds] = (_EPOCH + datetime.timedelta(seconds=seconds)).isoformat()
    return text


def _attributes_text(attributes: Mapping[str, Any] | None) -> str:
    """``_safe_attributes(attributes)`` as JSON text."""
    if not attributes:
        return "{}"
    parts: list[str] = []
    append = parts.append
    for key, value in attributes.items():
        if type(key) is not str:
            raise _Unusual
        if type(value) is str:  # the usual value, without a call (10% at 100 attributes)
            append(f"{_text(key)}:{_text(value)}")
        else:
            append(f"{_text(key)}:{_value_text(value)}")
    return "{" + ",".join(parts) + "}"


def _value_text(value: Any) -> str:
    """``json_safe(value)`` as JSON text."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return _int_text(value)
    if kind is float:
        return _float_json(value)
    if kind is tuple:  # the SDK's sequences: scalars, as a rule
        try:
            return "[" + ",".join([_scalar_text(item) for item in value]) + "]"
        except _Unusual:
            pass
    elif value is None:
        return "null"
    return _compact_json(json_safe(value))


def _scalar_text(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return _int_text(value)
    if kind is float:
        return _float_json(value)
    if value is None:
        return "null"
    raise _Unusual


def _float_json(value: float) -> str:
    if _isfinite(value):
        return _float_text(value)
    if math.isnan(value):
        return '"NaN"'
    return '"Infinity"' if value > 0 else '"-Infinity"'


def otlp_request(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Spans as one OTLP/JSON ``ExportTraceServiceRequest``, ids in hex as the spec requires."""
    # Imported here: protobuf is only needed by the otlp format, and is slow to import.
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request: dict[str, Any] = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in request.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _ids_to_hex(span)
                for link in span.get("links", []):
                    _ids_to_hex(link)
    return request


def _ids_to_hex(item: dict[str, Any]) -> None:
    """Protobuf's JSON writes bytes as base64; OTLP/JSON wants trace and span ids in hex."""
    for key in ("traceId", "spanId", "parentSpanId"):
        if item.get(key):
            item[key] = base64.b64decode(item[key]).hex()
