"""What serving counts for ``/metrics``, per process (prometheus-client; its multiprocess mode adds
an API's processes up): samples per forward pass, the model cache's bytes and evictions, and, for
the API, predict requests and their latency.

The hot path only adds to plain Python numbers (a ``Tally``); they reach prometheus-client's
shared-memory values once a second and before each scrape. Writing them there per request cost
9% of predict's requests/s at full load (bench/predict_load.py --metrics-pairs), against 3%
allowed. Everything here runs on the event loop's thread, so the tallies need no lock.
``enable(False)`` (KILN_METRICS_ENABLED=false) makes every call a no-op.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from prometheus_client import Counter, Gauge, Histogram

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

BATCH_SIZE = Histogram("kiln_predict_batch_size", "Samples in one forward pass of predict's micro-batcher", buckets=BATCH_BUCKETS)
PREDICT_REQUESTS = Counter("kiln_predict_requests", "Predict requests by model (successful ones) and HTTP status", ["model", "status"])
PREDICT_LATENCY = Histogram("kiln_predict_latency_seconds", "Predict requests, first byte in to answer sent", buckets=LATENCY_BUCKETS)
CACHE_BYTES = Gauge("kiln_model_cache_bytes", "Bytes of the models loaded in the API processes", multiprocess_mode="livesum")
CACHE_EVICTIONS = Counter("kiln_model_cache_evictions_total", "Models dropped from an API process's cache to stay within KILN_MODEL_CACHE_BYTES")


class HistogramTally:
    """Observations counted per bucket until flushed into ``histogram``."""

    def __init__(self, histogram: Histogram, bounds: tuple[float, ...]):
        self.histogram, self.bounds = histogram, bounds
        self.counts, self.sum = [0] * (len(bounds) + 1), 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def flush(self) -> None:
        if not any(self.counts):
            return
        counts, total = self.counts, self.sum
        self.counts, self.sum = [0] * (len(self.bounds) + 1), 0.0
        add_to_histogram(self.histogram, counts, total)


def add_to_histogram(histogram: Histogram, counts: list[int], total: float) -> None:
    """Adds per-bucket counts (not cumulative, +Inf last) and their sum to a histogram at once.
    prometheus-client has no public call for this: it keeps a value per bucket (``_buckets``) and
    one for the sum (``_sum``), as it has since 0.1; tests/serving/test_telemetry.py checks the
    exposition matches one ``observe`` per value, so a change there fails loudly."""
    for bucket, n in zip(histogram._buckets, counts):  # noqa: SLF001 - see above
        if n:
            bucket.inc(n)
    histogram._sum.inc(total)  # noqa: SLF001


_on = True
_batches = HistogramTally(BATCH_SIZE, BATCH_BUCKETS)
_latency = HistogramTally(PREDICT_LATENCY, LATENCY_BUCKETS)
_requests: defaultdict[tuple[str, str], int] = defaultdict(int)


def enable(on: bool) -> None:
    global _on
    _on = on


def forward_pass(samples: int) -> None:
    if _on:
        _batches.observe(samples)


def predict_request(model_id: str, status: int, seconds: float) -> None:
    """A failed request is counted without its model id: an unknown id is the caller's free text."""
    if _on:
        _requests[(model_id if status < 400 else "", str(status))] += 1
        _latency.observe(seconds)


def flush() -> None:
    """The tallies into prometheus-client's values (every second, and before a scrape)."""
    _batches.flush()
    _latency.flush()
    if _requests:
        counted = dict(_requests)
        _requests.clear()
        for (model, status), n in counted.items():
            PREDICT_REQUESTS.labels(model, status).inc(n)


def cache_changed(total_bytes: int, evicted: int = 0) -> None:
    if _on:
        CACHE_BYTES.set(total_bytes)
        if evicted:
            CACHE_EVICTIONS.inc(evicted)
