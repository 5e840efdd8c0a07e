"""The sync loop: runner scheduling, proxier gating and full/partial decisions, health."""

import threading
import time

from proxy_dataplane import FakeDataplane

from kpyops.proxy import manifests as m
from kpyops.proxy.conntrack import ConntrackCleaner, stale_udp_deletions
from kpyops.proxy.health import ProxierHealth
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName
from kpyops.proxy.proxier import Proxier
from kpyops.proxy.runner import BoundedFrequencyRunner

PORTS = [{"name": "http", "port": 80}]
WEB = ServicePortName("default", "web", "http", "TCP")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_runner_bursts_then_limits_rate():
    clock = Clock()
    r = BoundedFrequencyRunner(
        lambda: None, min_interval=1.0, max_interval=30.0, burst=2, clock=clock
    )
    r.run()
    assert r._take_turn()  # 1st: token available
    r.run()
    assert r.next_run_at(clock.t) == clock.t  # 2nd: burst token
    assert r._take_turn()
    r.run()
    assert r.next_run_at(clock.t) == clock.t + 1.0  # 3rd: must wait for a token
    clock.t += 0.5
    assert r.next_run_at(clock.t) == 1001.0
    clock.t += 0.5
    assert r._take_turn()


def test_runner_periodic_and_retry():
    clock = Clock()
    r = BoundedFrequencyRunner(lambda: None, min_interval=1.0, max_interval=30.0, clock=clock)
    assert r.next_run_at(clock.t) == 1030.0  # nothing asked: the periodic run
    r.retry_after(5)
    assert r.next_run_at(clock.t) == 1005.0


def test_runner_coalesces_requests_in_a_real_thread():
    calls = []
    done = threading.Event()
    r = BoundedFrequencyRunner(
        lambda: (calls.append(1), done.set()), min_interval=60, max_interval=600, burst=1
    )
    t = threading.Thread(target=r.loop)
    t.start()
    try:
        r.run()
        assert done.wait(5)
        for _ in range(19):
            r.run()
        time.sleep(0.2)  # give a wrongly scheduled second run the chance to happen
    finally:
        r.stop()
        t.join(5)
    assert calls == [1]  # 20 requests: one run now, the rest deferred by minSyncPeriod
    assert r._pending  # ... and still owed


def make_proxier(dp, **kw):
    return Proxier(dp, hostname="node1", min_sync_period=0, **kw)


def test_no_sync_until_both_sources_synced():
    dp = FakeDataplane()
    p = make_proxier(dp)
    p.on_service_update(m.service("web", "10.96.0.1", PORTS))
    p.on_services_synced()
    assert p.sync_proxy_rules() is None and dp.calls == []
    p.on_slices_synced()
    assert p.sync_proxy_rules().full
    services, _, changed = dp.last
    assert WEB in services and changed is None


def test_partial_after_full_and_full_after_failure():
    dp = FakeDataplane()
    p = make_proxier(dp)
    p.on_services_synced()
    p.on_slices_synced()
    p.sync_proxy_rules()
    p.on_service_update(m.service("web", "10.96.0.1", PORTS))
    p.on_slice_update(m.endpoint_slice("web", [m.endpoint("10.0.0.1")], PORTS))
    assert not p.sync_proxy_rules().full
    assert dp.last[2] == {WEB} and dp.last[1][WEB][0].ip == "10.0.0.1"
    dp.fail_times = 1
    p.on_slice_update(m.endpoint_slice("web", [m.endpoint("10.0.0.2")], PORTS))
    assert p.sync_proxy_rules() is None
    assert p.sync_proxy_rules().full  # the failed change set was consumed: rewrite all
    assert dp.last[1][WEB][0].ip == "10.0.0.2"


def test_flushed_canary_forces_full_sync_on_periodic_run():
    dp = FakeDataplane()
    p = make_proxier(dp)
    p.on_services_synced()
    p.on_slices_synced()
    p.sync_proxy_rules()
    dp.canary_ok = False
    assert p.sync_proxy_rules().full


def test_health_goes_stale_when_queued_change_is_not_synced():
    clock = Clock()
    h = ProxierHealth(60, clock=clock)
    assert h.status()[0] == 200  # starting up
    h.queued_update()
    clock.t += 59
    assert h.is_healthy()
    clock.t += 2
    code, body = h.status()
    assert code == 503 and body["lastUpdated"] == ""
    h.updated()
    assert h.status()[0] == 200 and h.status()[1]["lastUpdated"].endswith("Z")


def test_proxier_marks_health_and_metrics():
    dp = FakeDataplane()
    p = make_proxier(dp)
    p.on_services_synced()
    p.on_slices_synced()
    p.on_service_update(m.service("web", "10.96.0.1", PORTS))
    assert p.health.oldest_pending_queued is not None
    p.sync_proxy_rules()
    assert p.health.oldest_pending_queued is None
    text = p.metrics.exposition().decode()
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count 1.0" in text
    assert "kubeproxy_sync_proxy_rules_service_changes_total 1.0" in text


def test_stale_udp_deletions():
    spn = ServicePortName("kube-system", "dns", "dns", "UDP")
    svc = ServicePort(
        spn, ("10.96.0.10",), 53, protocol="UDP", node_port=30053, external_ips=("192.0.2.9",)
    )
    old = (Endpoint("10.0.0.1", 53), Endpoint("10.0.0.2", 53))
    new = (Endpoint("10.0.0.2", 53),)
    dels = stale_udp_deletions({spn: svc}, {spn: old}, {spn: new})
    args = [d.args() for d in dels]
    assert [
        "conntrack",
        "-D",
        "-f",
        "ipv4",
        "-p",
        "udp",
        "--orig-dst",
        "10.96.0.10",
        "--orig-port-dst",
        "53",
        "--reply-src",
        "10.0.0.1",
    ] in args
    assert any("192.0.2.9" in a for a in args)
    assert [
        "conntrack",
        "-D",
        "-f",
        "ipv4",
        "-p",
        "udp",
        "--orig-port-dst",
        "30053",
        "--reply-src",
        "10.0.0.1",
    ] in args
    assert len(args) == 3
    # First endpoint of a UDP service: flush entries made while it had none.
    first = stale_udp_deletions({spn: svc}, {spn: ()}, {spn: new})
    assert {d.reply_src for d in first} == {None}
    # TCP services are never flushed.
    tcp = ServicePort(WEB, ("10.96.0.1",), 80)
    assert stale_udp_deletions({WEB: tcp}, {WEB: old}, {WEB: new}) == []


def test_proxier_runs_conntrack_cleanup_for_removed_udp_endpoints():
    ran = []
    dp = FakeDataplane()
    p = make_proxier(dp, conntrack=ConntrackCleaner(ran.append))
    udp = [{"name": "dns", "port": 53, "protocol": "UDP"}]
    p.on_service_update(m.service("dns", "10.96.0.10", udp))
    p.on_slice_update(
        m.endpoint_slice("dns", [m.endpoint("10.0.0.1"), m.endpoint("10.0.0.2")], udp)
    )
    p.on_services_synced()
    p.on_slices_synced()
    p.sync_proxy_rules()
    ran.clear()
    p.on_slice_update(m.endpoint_slice("dns", [m.endpoint("10.0.0.2")], udp))
    p.sync_proxy_rules()
    assert ran == [
        [
            "conntrack",
            "-D",
            "-f",
            "ipv4",
            "-p",
            "udp",
            "--orig-dst",
            "10.96.0.10",
            "--orig-port-dst",
            "53",
            "--reply-src",
            "10.0.0.1",
        ]
    ]
