"""The gateway's Prometheus metrics, in a registry of its own (so that two gateways in one process, as in the tests,
count apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.calls = Counter("slm_gateway_calls", "Calls answered, by who served them (llm or slm), task and mode",
                             ["served_by", "task", "mode"], registry=self.registry)
        self.fallbacks = Counter("slm_gateway_fallbacks", "Adapter replies not returned, the LLM answering instead, "
                                 "by task and reason", ["task", "reason"], registry=self.registry)
        self.routes = Counter("slm_gateway_routes", "Calls routed to a task, or unknown (to the LLM)", ["outcome"],
                              registry=self.registry)
        self.errors = Counter("slm_gateway_errors", "Calls answered with an error, by kind", ["kind"],
                              registry=self.registry)
        self.logged = Counter("slm_gateway_logged", "Calls written to the log", registry=self.registry)
        self.routing = Histogram("slm_gateway_routing_seconds", "Reading, checking and routing a call, before any model",
                                 buckets=FAST, registry=self.registry)
        self.latency = Histogram("slm_gateway_call_seconds", "A call's time in the gateway, by who served it",
                                 ["served_by"], buckets=SLOW, registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
