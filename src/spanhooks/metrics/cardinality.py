"""Capping how many distinct values a metric label may take, so no caller can explode series.

A label whose values come from the application (a model name, a tool name, a callback or task
name, an operation from another instrumentation's spans) could otherwise create one series per
distinct value, and 10,000 tool names would become 10,000 series in every scrape. Each label of
a family keeps the first ``max_values`` distinct values it sees; every later new value is
reported as ``other``. Admission is sticky (a value admitted once keeps its own series) so
counters stay monotonic from scrape to scrape.

Use one :class:`SeriesLimiter` per metric family, created with the family (never per call)::

    MODEL_LABELS = SeriesLimiter(("gen_ai.operation.name", "gen_ai.request.model"))
    ...
    labels = MODEL_LABELS.limit((operation, model))   # ("chat", "other") past the cap

Threading: :meth:`LabelLimiter.limit` is safe from any thread. A value already admitted is
answered by one dict lookup with no lock (atomic under the GIL), so the steady state of a hot
path costs a lookup per label; a lock is taken only the first time a value is seen, and the
cap is exact however many threads race.
"""

from __future__ import annotations

from collections.abc import Sequence

from spanhooks.util.forksafe import fork_safe_lock

__all__ = ["MAX_LABEL_VALUES", "MAX_SERIES", "OTHER", "LabelLimiter", "SeriesLimiter"]

MAX_LABEL_VALUES = 1000
"""Distinct values one label of one family keeps before new ones are reported as ``other``."""
MAX_SERIES = 1000
"""Distinct label combinations one family keeps; past it, new combinations are all ``other``.

A family therefore exposes at most ``MAX_SERIES + 1`` series (the one extra is all-``other``).
"""
OTHER = "other"
"""The label value that stands for every value past the cap."""


class LabelLimiter:
    """The values one label may take: the first ``max_values`` distinct ones, then ``other``.

    Once full the limiter is read-only, so later answers need no lock either.
    """

    __slots__ = ("__weakref__", "_admitted", "_full", "_lock", "max_values", "other")

    def __init__(self, max_values: int = MAX_LABEL_VALUES, *, other: str = OTHER) -> None:
        if not isinstance(max_values, int) or isinstance(max_values, bool) or max_values < 1:
            raise ValueError(f"max_values must be a positive int, got {max_values!r}")
        if not isinstance(other, str):
            raise TypeError(f"other must be a str, got {type(other).__name__}")
        self.max_values = max_values
        self.other = other
        self._admitted: dict[str, None] = {other: None}
        self._full = False
        self._lock = fork_safe_lock(self)

    def limit(self, value: str) -> str:
        """``value`` if it is (or can still be) admitted, else ``other``."""
        if value in self._admitted:  # the steady state: no lock
            return value
        if self._full:  # read-only from now on: no lock either
            return self.other
        with self._lock:
            if value in self._admitted:
                return value
            if len(self._admitted) > self.max_values:  # ``other`` itself does not count
                self._full = True
                return self.other
            self._admitted[value] = None
            return value

    @property
    def full(self) -> bool:
        """True once a value has been refused: every new value is ``other`` from then on."""
        return self._full

    def __len__(self) -> int:
        """Distinct values admitted so far (``other`` not included)."""
        return len(self._admitted) - 1


class SeriesLimiter:
    """Label values for one metric family: each label capped, and the combinations capped.

    ``limit(values)`` returns the tuple to record under: every label goes through its own
    :class:`LabelLimiter` (``max_values`` each), and once ``max_series`` distinct combinations
    exist a new combination becomes all-``other``. Values are turned into ``str`` first.
    Thread-safe with the same lock-free fast path as :class:`LabelLimiter`.
    """

    __slots__ = (
        "__weakref__",
        "_full",
        "_labels",
        "_lock",
        "_series",
        "labelnames",
        "max_series",
        "other",
    )

    def __init__(
        self,
        labelnames: Sequence[str],
        *,
        max_values: int = MAX_LABEL_VALUES,
        max_series: int = MAX_SERIES,
        other: str = OTHER,
    ) -> None:
        if isinstance(labelnames, str):
            raise TypeError("labelnames must be a sequence of names, not one str")
        if not isinstance(max_series, int) or isinstance(max_series, bool) or max_series < 1:
            raise ValueError(f"max_series must be a positive int, got {max_series!r}")
        self.labelnames = tuple(labelnames)
        self.max_series = max_series
        self.other = other
        self._labels = tuple(LabelLimiter(max_values, other=other) for _ in self.labelnames)
        self._series: dict[tuple[str, ...], None] = {}
        self._full = False
        self._lock = fork_safe_lock(self)

    def limit(self, values: Sequence[object]) -> tuple[str, ...]:
        """The label values to record under; raises ValueError on a wrong number of values."""
        if len(values) != len(self._labels):
            raise ValueError(
                f"expected {len(self._labels)} label values {self.labelnames}, got {len(values)}"
            )
        key = tuple(
            limiter.limit(v if type(v) is str else str(v))
            for limiter, v in zip(self._labels, values, strict=True)
        )
        if key in self._series:
            return key
        if self._full:
            return tuple(self.other for _ in key)
        with self._lock:
            if key not in self._series:
                if len(self._series) >= self.max_series:
                    self._full = True
                    return tuple(self.other for _ in key)
                self._series[key] = None
        return key

    def __len__(self) -> int:
        """Distinct combinations admitted so far."""
        return len(self._series)
