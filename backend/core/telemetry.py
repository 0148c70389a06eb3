"""Prometheus metrics (served at /metrics): per-stage latencies, turns, errors, connections."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_MS = (25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)


class Telemetry:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "claritymentor_turns", "Voice and text turns answered", ["channel", "outcome"], registry=self.registry
        )
        self.errors = Counter(
            "claritymentor_errors", "Errors sent to clients, by code", ["code"], registry=self.registry
        )
        self.stage_ms = Histogram(
            "claritymentor_stage_ms",
            "Per-stage latency of a voice turn (ms)",
            ["stage"],
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.connections = Gauge("claritymentor_ws_connections", "Open /ws/voice connections", registry=self.registry)

    def observe_turn(self, metrics: dict[str, object], *, interrupted: bool) -> None:
        self.turns.labels("voice", "interrupted" if interrupted else "completed").inc()
        for key, value in metrics.items():
            if key.endswith("_ms") and isinstance(value, int | float):
                self.stage_ms.labels(key.removesuffix("_ms")).observe(value)
