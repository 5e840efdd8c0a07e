import json
import urllib.error
import urllib.request

from kpyops.proxy.health import ProxierHealth
from kpyops.proxy.metrics import ProxyMetrics
from kpyops.proxy.servers import serve_healthz, serve_metrics


class Clock:
    t = 1_700_000_000.0

    def __call__(self):
        return self.t


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_healthz_livez_and_metrics_over_http():
    clock = Clock()
    health, metrics = ProxierHealth(60, clock=clock), ProxyMetrics()
    hz = serve_healthz("127.0.0.1:0", health, metrics)
    ms = serve_metrics("127.0.0.1:0", metrics, "iptables")
    try:
        base = f"http://127.0.0.1:{hz.server_address[1]}"
        code, body = get(base + "/healthz")
        assert code == 200 and json.loads(body)["nodeEligible"] is True
        health.queued_update()
        clock.t += 61
        assert get(base + "/healthz")[0] == 503
        assert get(base + "/livez")[0] == 503
        health.updated()
        code, body = get(base + "/livez")
        assert code == 200 and json.loads(body)["lastUpdated"] == "2023-11-14T22:14:21Z"
        assert get(base + "/nope")[0] == 404
        mbase = f"http://127.0.0.1:{ms.server_address[1]}"
        assert get(mbase + "/proxyMode") == (200, "iptables")
        text = get(mbase + "/metrics")[1]
        assert '\nproxy_healthz_total{code="503"} 1.0' in text  # kube-proxy's name
        assert '\nproxy_livez_total{code="200"} 1.0' in text
        assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in text
        assert "kubeproxy_network_programming_duration_seconds_bucket" in text
    finally:
        hz.shutdown()
        ms.shutdown()
