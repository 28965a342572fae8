"""What serving counts for ``/metrics``: samples per forward pass, the model cache's bytes and
evictions. Per process (prometheus-client); its multiprocess mode adds an API's processes up.
``enable(False)`` (KILN_METRICS_ENABLED=false) makes every call here a no-op."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_SIZE = Histogram("kiln_predict_batch_size", "Samples in one forward pass of predict's micro-batcher",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096))
CACHE_BYTES = Gauge("kiln_model_cache_bytes", "Bytes of the models loaded in the API processes", multiprocess_mode="livesum")
CACHE_EVICTIONS = Counter("kiln_model_cache_evictions_total", "Models dropped from an API process's cache to stay within KILN_MODEL_CACHE_BYTES")

_on = True


def enable(on: bool) -> None:
    global _on
    _on = on


def forward_pass(samples: int) -> None:
    if _on:
        BATCH_SIZE.observe(samples)


def cache_changed(total_bytes: int, evicted: int = 0) -> None:
    if _on:
        CACHE_BYTES.set(total_bytes)
        if evicted:
            CACHE_EVICTIONS.inc(evicted)
