"""Prometheus metrics of `zoo serve`, served at /monitoring/prometheus/metrics (the
path TensorFlow Serving's monitoring config uses), with prometheus_client.

Names follow TensorFlow Serving's (`/tensorflow/serving/request_count` is
exported as `:tensorflow:serving:request_count`); prometheus_client adds
`_total` to counters. Latencies are in microseconds with TensorFlow Serving's
buckets (10 * 1.8^i).
"""

from __future__ import annotations

PATH = "/monitoring/prometheus/metrics"
_PREFIX = ":tensorflow:serving:"
_LATENCY_BUCKETS = tuple(10 * 1.8 ** i for i in range(33))
_EXAMPLE_BUCKETS = tuple(2 ** i for i in range(15))


class Metrics:
    """The server's metrics in a registry of their own (several servers can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(f"{_PREFIX}request_count", "The total number of requests.",
                                ["model_name", "version", "API", "entrypoint", "status"], registry=self.registry)
        self.latency = Histogram(f"{_PREFIX}request_latency", "Distribution of wall time (in microseconds) for "
                                 "Tensorflow Serving request.", ["model_name", "API", "entrypoint"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.examples = Histogram(f"{_PREFIX}request_example_counts", "The number of examples per request.",
                                  ["model_name"], buckets=_EXAMPLE_BUCKETS, registry=self.registry)
        self.batch_sizes = Histogram(f"{_PREFIX}batching_session:batch_size", "Examples in each batch the "
                                     "batcher ran (with --enable_batching).", ["model_name"],
                                     buckets=_EXAMPLE_BUCKETS, registry=self.registry)
        self.loads = Counter(f"{_PREFIX}load_attempt_count", "Model version loads attempted, by outcome.",
                             ["model_name", "version", "status"], registry=self.registry)
        self.load_latency = Histogram(f"{_PREFIX}load_latency", "Wall time (in microseconds) of each load, "
                                      "warm-up included.", ["model_name"], buckets=_LATENCY_BUCKETS,
                                      registry=self.registry)

    def request(self, model: str, version: str, api: str, entrypoint: str, status: str, seconds: float,
                examples: int) -> None:
        self.requests.labels(model, version, api, entrypoint, status).inc()
        if status == "OK":
            self.latency.labels(model, api, entrypoint).observe(seconds * 1e6)
            if examples:
                self.examples.labels(model).observe(examples)

    def batch(self, model: str, size: int) -> None:
        self.batch_sizes.labels(model).observe(size)

    def load(self, servable, seconds: float) -> None:
        status = servable.error.code.name if servable.error else "OK"
        self.loads.labels(servable.name, str(servable.version), status).inc()
        self.load_latency.labels(servable.name).observe(seconds * 1e6)

    def page(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
