from kpyops.proxy import manifests as m
from kpyops.proxy.model import ServicePortName
from kpyops.proxy.trackers import EndpointSliceTracker, ServiceChangeTracker

WEB = ServicePortName("default", "web", "http", "TCP")
PORTS = [{"name": "http", "port": 80}]


def test_service_tracker_add_change_delete():
    t, smap = ServiceChangeTracker(), {}
    assert t.update(m.service("web", "10.96.0.1", PORTS))
    assert t.apply(smap) == {WEB}
    assert smap[WEB].port == 80
    assert not t.update(m.service("web", "10.96.0.1", PORTS))  # no real change
    assert t.apply(smap) == set()
    t.update(m.service("web", "10.96.0.1", [{"name": "http", "port": 81}]))
    assert t.apply(smap) == {WEB} and smap[WEB].port == 81
    t.delete(m.service("web", "10.96.0.1", []))
    assert t.apply(smap) == {WEB} and smap == {}


def test_service_change_back_to_synced_state_cancels():
    t, smap = ServiceChangeTracker(), {}
    t.update(m.service("web", "10.96.0.1", PORTS))
    t.apply(smap)
    assert t.update(m.service("web", "10.96.0.1", [{"name": "http", "port": 81}]))
    assert not t.update(m.service("web", "10.96.0.1", PORTS))
    assert t.pending == 0 and t.apply(smap) == set()


def test_service_becoming_headless_removes_ports():
    t, smap = ServiceChangeTracker(), {}
    t.update(m.service("web", "10.96.0.1", PORTS))
    t.apply(smap)
    t.update(m.service("web", "10.96.0.1", PORTS, labels={"service.kubernetes.io/headless": ""}))
    assert t.apply(smap) == {WEB} and smap == {}


def test_slices_merged_per_service():
    t, emap = EndpointSliceTracker("node1"), {}
    t.update(m.endpoint_slice("web", [m.endpoint("10.0.0.1", node="node1")], PORTS, name="web-1"))
    t.update(m.endpoint_slice("web", [m.endpoint("10.0.0.2")], PORTS, name="web-2"))
    upd = t.apply(emap)
    assert upd.changed == {WEB} and upd.previous == {WEB: ()}
    assert [(e.ip, e.is_local) for e in emap[WEB]] == [("10.0.0.1", True), ("10.0.0.2", False)]
    t.delete(m.endpoint_slice("web", [], PORTS, name="web-1"))
    upd = t.apply(emap)
    assert [e.ip for e in upd.previous[WEB]] == ["10.0.0.1", "10.0.0.2"]
    assert [e.ip for e in emap[WEB]] == ["10.0.0.2"]
    t.delete(m.endpoint_slice("web", [], PORTS, name="web-2"))
    assert t.apply(emap).changed == {WEB} and emap == {}


def test_slice_change_back_cancels_and_trigger_time_kept_for_pending():
    t, emap = EndpointSliceTracker("n"), {}
    t.update(m.endpoint_slice("web", [m.endpoint("10.0.0.1")], PORTS))
    t.apply(emap)
    t.update(
        m.endpoint_slice(
            "web", [m.endpoint("10.0.0.3")], PORTS, trigger_time="2026-01-01T00:00:10Z"
        )
    )
    assert t.pending == 1
    t.update(m.endpoint_slice("web", [m.endpoint("10.0.0.1")], PORTS))
    assert t.pending == 0
    t.update(
        m.endpoint_slice(
            "web", [m.endpoint("10.0.0.4")], PORTS, trigger_time="2026-01-01T00:00:20Z"
        )
    )
    t.update(
        m.endpoint_slice(
            "web", [m.endpoint("10.0.0.5")], PORTS, trigger_time="2026-01-01T00:00:30Z"
        )
    )
    upd = t.apply(emap)
    assert upd.trigger_times == [1767225620.0]  # the oldest pending change


def test_slice_moving_to_another_service():
    t, emap = EndpointSliceTracker("n"), {}
    t.update(m.endpoint_slice("web", [m.endpoint("10.0.0.1")], PORTS, name="s"))
    t.apply(emap)
    t.update(m.endpoint_slice("api", [m.endpoint("10.0.0.1")], PORTS, name="s"))
    upd = t.apply(emap)
    assert upd.changed == {WEB, ServicePortName("default", "api", "http", "TCP")}
    assert WEB not in emap
