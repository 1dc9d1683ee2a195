"""Prometheus metrics of one proxy app (its own registry, so several apps can coexist).

With several worker processes (``toolmend serve --workers N``) prometheus_client runs in its
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before the workers start): each worker
writes its values to files there, and :meth:`Metrics.render` sums every worker's files, so
``/metrics`` says the same whichever worker answers it.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from toolmend.proxy.chat import Outcome

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Requests, tool calls by format, repairs and coercions by kind, failures, latencies."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "toolmend_requests",
            "Requests by endpoint, streaming and HTTP status.",
            ["endpoint", "stream", "status"],
            registry=r,
        )
        self.tool_calls = Counter(
            "toolmend_tool_calls",
            "Tool calls sent to clients, by format and source "
            "(text: parsed from the model's text; native: structured by the backend).",
            ["format", "source"],
            registry=r,
        )
        self.diagnostics = Counter(
            "toolmend_diagnostics", "Repairs, coercions and other notices by kind.", ["kind"], registry=r
        )
        self.failures = Counter(
            "toolmend_failures", "Requests that failed, by cause (error code).", ["code"], registry=r
        )
        self.retries = Counter(
            "toolmend_retries",
            "Middleware retries by outcome: retried_ok, retried_still_bad, not_retried_bad (no attempts left), "
            "backoff (a 429/503 waited out).",
            ["outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "toolmend_request_duration_seconds",
            "Time from request to the end of the answer.",
            ["endpoint", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_chunk = Histogram(
            "toolmend_time_to_first_chunk_seconds",
            "Time from request to the first streamed chunk.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def record_outcome(self, o: Outcome) -> None:
        fmt = o.format or "none"
        if o.text_calls:
            self.tool_calls.labels(fmt, "text").inc(o.text_calls)
        if o.native_calls:
            self.tool_calls.labels(fmt, "native").inc(o.native_calls)
        for kind in o.diagnostics:
            self.diagnostics.labels(kind).inc()

    def render(self) -> bytes:
        """The exposition text: this process's registry, or every worker's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
