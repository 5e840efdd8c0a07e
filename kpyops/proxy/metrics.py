"""The proxy's Prometheus metrics, named as kube-proxy's (subsystem ``kubeproxy``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

SYNC_BUCKETS = tuple(0.001 * 2**i for i in range(15))  # 1 ms .. 16 s
NETWORK_PROGRAMMING_BUCKETS = (
    0.25,
    0.5,
    *range(1, 60),
    *range(60, 120, 5),
    *range(120, 301, 30),
)


class ProxyMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ns = "kubeproxy"
        self.sync_duration = Histogram(
            "sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            namespace=ns,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.sync_full_duration = Histogram(
            "sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            namespace=ns,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.sync_partial_duration = Histogram(
            "sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            namespace=ns,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.network_programming = Histogram(
            "network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            namespace=ns,
            buckets=NETWORK_PROGRAMMING_BUCKETS,
            registry=r,
        )
        self.last_sync = Gauge(
            "sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            namespace=ns,
            registry=r,
        )
        self.last_queued = Gauge(
            "sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            namespace=ns,
            registry=r,
        )
        self.endpoint_changes = Counter(
            "sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes",
            namespace=ns,
            registry=r,
        )
        self.service_changes = Counter(
            "sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes",
            namespace=ns,
            registry=r,
        )
        self.sync_failures = Counter(
            "sync_proxy_rules_failures",
            "Syncs the kernel refused (e.g. iptables-restore failed)",
            namespace=ns,
            registry=r,
        )
        self.healthz = Counter(
            "proxy_healthz", "Result of the proxy healthz check", ["code"], registry=r
        )
        self.livez = Counter("proxy_livez", "Result of the proxy livez check", ["code"], registry=r)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
