"""Prometheus metrics of one app (its own registry, so two apps in one process never clash)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Request latency and errors, messages appended and read, time spent in Redis."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "agent_memory_http_request_duration_seconds",
            "HTTP request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "agent_memory_http_errors_total",
            "HTTP responses with status >= 400, by route template and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.appended = Counter(
            "agent_memory_messages_appended_total",
            "Messages stored by appends (re-sent message ids not counted)",
            registry=self.registry,
        )
        self.read = Counter(
            "agent_memory_messages_read_total", "Messages returned by reads", registry=self.registry
        )
        self.store_ops = Histogram(
            "agent_memory_redis_operation_seconds",
            "Time of store operations (Redis round trips included), by operation",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ping = Gauge(
            "agent_memory_redis_ping_seconds",
            "Round-trip time of a PING to Redis, measured on each scrape",
            registry=self.registry,
        )
        self.up = Gauge(
            "agent_memory_redis_up",
            "1 if Redis answered the PING",
            registry=self.registry,
        )

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Observe the duration of one store operation (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.store_ops.labels(operation).observe(time.perf_counter() - start)


class MetricsMiddleware:
    """Pure ASGI middleware observing every HTTP request into ``metrics`` (Starlette's
    ``BaseHTTPMiddleware`` would run each request in a task group with memory streams, at a
    measurable cost). Add it with ``app.add_middleware(MetricsMiddleware, metrics=...)``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - start
            self.metrics.requests.labels(scope["method"], route, str(status)).observe(elapsed)
            if status >= 400:
                self.metrics.errors.labels(route, str(status)).inc()
