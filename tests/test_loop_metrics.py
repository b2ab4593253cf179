"""The request path's lock-free metrics (app/loop_metrics.py) export exactly what
prometheus_client's Counter and Histogram export for the same updates."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from app.loop_metrics import LoopCounter, LoopHistogram
from app.metrics import LATENCY_BUCKETS

CREATED = re.compile(rb"(_created(?:\{[^}]*\})?) \S+")  # when each child was made differs

labels = st.sampled_from(["/api/game/answer", "/health", "unmatched"])
values = st.floats(min_value=0, max_value=20, allow_nan=False) | st.sampled_from(LATENCY_BUCKETS)


def exposition(registry: CollectorRegistry) -> bytes:
    return CREATED.sub(rb"\1 T", generate_latest(registry))


@given(st.lists(st.tuples(labels, values), max_size=50))
def test_the_same_samples_as_prometheus_client(updates: list[tuple[str, float]]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("requests", "Requests", ["route"], registry=theirs)
    histogram = Histogram(
        "latency_seconds", "Latency", ["route"], buckets=LATENCY_BUCKETS, registry=theirs
    )
    loop_counter = LoopCounter("requests", "Requests", ["route"], registry=ours)
    loop_histogram = LoopHistogram(
        "latency_seconds", "Latency", ["route"], buckets=LATENCY_BUCKETS, registry=ours
    )
    for route, seconds in updates:
        counter.labels(route).inc()
        histogram.labels(route).observe(seconds)
        loop_counter.labels(route).inc()
        loop_histogram.labels(route).observe(seconds)
    assert exposition(ours) == exposition(theirs)
