"""prometheus_client multiprocess mode (gunicorn-style workers) for spanhooks' metrics.

spanhooks computes its families at scrape time from state kept in each process, which a
scrape served by one worker cannot see for the others. With ``PROMETHEUS_MULTIPROC_DIR`` set,
every process that calls ``setup()`` runs a :class:`MultiprocessMirror`: about once a second
(and on every flush) it copies the families into prometheus_client metrics of multiprocess
mode, which write to files in that directory; the serving process exposes them through
prometheus_client's ``MultiProcessCollector``, which adds the workers up. Counters are copied as
increments, gauges with a live mode (``livemax`` for one-hot status gauges, ``livesum`` for
amounts), histograms as per-bucket increments.

Dead workers: counters and histograms of a dead worker keep counting (they are totals);
its live gauges disappear once :func:`mark_process_dead` is called for its pid, as
prometheus_client documents for gunicorn's ``child_exit`` hook.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from spanhooks.metrics.families import SpanhooksCollector
from spanhooks.util.forksafe import renew_in_child

__all__ = [
    "MULTIPROC_ENV",
    "MultiprocessMirror",
    "mark_process_dead",
    "multiprocess_dir",
    "registry",
]

logger = logging.getLogger("spanhooks")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_ONE_HOT = ("_status", "_state", "_overall", "_critical")


def multiprocess_dir() -> str | None:
    """The multiprocess directory if multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """A registry that adds up every worker's files (serve it from one process)."""
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (call it from gunicorn's ``child_exit``).

    Deletes that pid's ``gauge_live*_<pid>.db`` files in ``PROMETHEUS_MULTIPROC_DIR``; its
    counter and histogram files stay, because what a dead worker counted still happened.
    """
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class MultiprocessMirror:
    """Copies this process's spanhooks families into multiprocess-mode metric files.

    ``sync()`` is safe from any thread; a daemon thread calls it every ``interval`` seconds.
    After a fork the child starts from the values it inherited, so nothing is counted twice.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._collector = SpanhooksCollector()
        self._metrics: dict[str, Any] = {}
        self._seen: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._start_thread()
        renew_in_child(self)

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name="spanhooks-metrics-mirror", daemon=True)
        thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        with self._lock:
            self._copy_all(record_only=True)  # what the parent counted stays the parent's
        self._start_thread()

    def close(self) -> None:
        """Copy once more and stop the thread."""
        self.sync()
        self._stop.set()

    def sync(self) -> None:
        with self._lock:
            try:
                self._copy_all(record_only=False)
            except Exception:
                logger.exception("copying metrics to the multiprocess directory failed")

    def _copy_all(self, record_only: bool) -> None:
        for family in self._collector.collect():
            if family.type == "counter":
                self._counter(family, record_only)
            elif family.type == "gauge" and not record_only:
                self._gauge(family)
            elif family.type == "histogram":
                self._histogram(family, record_only)

    def _delta(
        self, sample_name: str, labels: dict[str, str], value: float, record_only: bool
    ) -> float:
        key = (sample_name, tuple(sorted(labels.items())))
        delta = value - self._seen.get(key, 0.0)
        self._seen[key] = value
        return 0.0 if record_only else delta

    def _counter(self, family: Metric, record_only: bool) -> None:
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            delta = self._delta(sample.name, sample.labels, sample.value, record_only)
            if delta > 0:
                metric = self._metric(Counter, family, sorted(sample.labels))
                _child(metric, sample.labels).inc(delta)

    def _gauge(self, family: Metric) -> None:
        mode = "livemax" if family.name.endswith(_ONE_HOT) else "livesum"
        for sample in family.samples:
            metric = self._metric(Gauge, family, sorted(sample.labels), multiprocess_mode=mode)
            _child(metric, sample.labels).set(sample.value)

    def _histogram(self, family: Metric, record_only: bool) -> None:
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            entry = series.setdefault(
                tuple(sorted(labels.items())), {"labels": labels, "buckets": []}
            )
            if sample.name.endswith("_bucket"):
                entry["buckets"].append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                entry["sum"] = sample.value
        for entry in series.values():
            buckets = sorted(entry["buckets"])
            if not buckets:
                continue
            bounds = [bound for bound, _ in buckets if bound != float("inf")]
            metric = self._metric(Histogram, family, sorted(entry["labels"]), buckets=bounds)
            child = _child(metric, entry["labels"])
            previous = 0.0
            for index, (bound, cumulative) in enumerate(buckets):
                delta = self._delta(
                    f"{family.name}_bucket:{bound}",
                    entry["labels"],
                    cumulative - previous,
                    record_only,
                )
                previous = cumulative
                if delta > 0:
                    child._buckets[index].inc(delta)  # per-bucket counts, as observe() keeps them
            delta = self._delta(
                f"{family.name}_sum", entry["labels"], float(entry.get("sum", 0.0)), record_only
            )
            if delta:
                child._sum.inc(delta)

    def _metric(self, kind: Any, family: Metric, labelnames: Sequence[str], **options: Any) -> Any:
        metric = self._metrics.get(family.name)
        if metric is None:
            metric = kind(
                family.name, family.documentation, list(labelnames), registry=None, **options
            )
            self._metrics[family.name] = metric
        return metric


def _child(metric: Any, labels: dict[str, str]) -> Any:
    return metric.labels(**labels) if labels else metric
