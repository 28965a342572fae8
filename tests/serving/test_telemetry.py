"""Serving's tallies reach prometheus-client exactly as one observe per value would: the bucket
counts and sum of a flushed tally equal those of a histogram fed directly. (This also guards the
one place Kiln reaches into prometheus-client's internals: add_to_histogram.)"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from app.serving.telemetry import LATENCY_BUCKETS, HistogramTally


def samples(registry: CollectorRegistry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples
            if not s.name.endswith("_created")}


def test_a_flushed_tally_reads_as_one_observe_per_value():
    values = [0.0004, 0.001, 0.0011, 0.003, 0.2, 0.2, 7.5, 12.0, 99.0]  # on a bound, between, past the last
    direct_registry, tallied_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("latency_seconds", "h", buckets=LATENCY_BUCKETS, registry=direct_registry)
    tallied = Histogram("latency_seconds", "h", buckets=LATENCY_BUCKETS, registry=tallied_registry)
    tally = HistogramTally(tallied, LATENCY_BUCKETS)
    for v in values:
        direct.observe(v)
        tally.observe(v)
    assert samples(tallied_registry) != samples(direct_registry)  # nothing reaches it before the flush
    tally.flush()
    tally.flush()  # a second flush with nothing new adds nothing
    assert samples(tallied_registry) == samples(direct_registry)
    assert samples(direct_registry)[("latency_seconds_count", ())] == len(values)
