from kpyops.proxy.categorize import categorize_endpoints
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName

SPN = ServicePortName("ns", "svc", "", "TCP")
READY_LOCAL = Endpoint("10.0.0.1", 80, is_local=True)
READY_REMOTE = Endpoint("10.0.0.2", 80)
TERM_LOCAL = Endpoint("10.0.0.3", 80, ready=False, serving=True, terminating=True, is_local=True)
TERM_REMOTE = Endpoint("10.0.0.4", 80, ready=False, serving=True, terminating=True)
NOT_SERVING = Endpoint("10.0.0.5", 80, ready=False, serving=False, terminating=True)


def svc(**kw):
    return ServicePort(SPN, ("10.96.0.1",), 80, **kw)


def test_cluster_policy_uses_ready_only():
    c = categorize_endpoints(svc(), [READY_LOCAL, READY_REMOTE, TERM_REMOTE, NOT_SERVING])
    assert c.cluster == (READY_LOCAL, READY_REMOTE)
    assert c.local == () and c.all_reachable == c.cluster and c.has_any


def test_serving_terminating_fallback():
    c = categorize_endpoints(svc(), [TERM_LOCAL, TERM_REMOTE, NOT_SERVING])
    assert c.cluster == (TERM_LOCAL, TERM_REMOTE) and c.has_any


def test_no_usable_endpoints():
    c = categorize_endpoints(svc(), [NOT_SERVING])
    assert c.cluster == () and not c.has_any


def test_internal_local_policy():
    c = categorize_endpoints(svc(internal_policy_local=True), [READY_LOCAL, READY_REMOTE])
    assert c.cluster == () and c.local == (READY_LOCAL,) and c.all_reachable == (READY_LOCAL,)
    c = categorize_endpoints(svc(internal_policy_local=True), [READY_REMOTE])
    assert c.local == () and c.has_any  # endpoints exist, just none here: traffic is dropped


def test_local_falls_back_to_local_terminating():
    c = categorize_endpoints(svc(internal_policy_local=True), [TERM_LOCAL, READY_REMOTE])
    assert c.local == (TERM_LOCAL,)


def test_external_local_policy_keeps_cluster_for_internal_traffic():
    c = categorize_endpoints(
        svc(node_port=30000, external_policy_local=True), [READY_LOCAL, READY_REMOTE]
    )
    assert c.cluster == (READY_LOCAL, READY_REMOTE)
    assert c.local == (READY_LOCAL,)
    assert set(c.all_reachable) == {READY_LOCAL, READY_REMOTE}


def test_external_local_ignored_without_external_addresses():
    c = categorize_endpoints(svc(external_policy_local=True), [READY_LOCAL, READY_REMOTE])
    assert c.local == () and c.cluster == (READY_LOCAL, READY_REMOTE)


A = Endpoint("10.1.0.1", 80, zone_hints=("zone-a",))
B = Endpoint("10.1.0.2", 80, zone_hints=("zone-b",))
AB = Endpoint("10.1.0.3", 80, zone_hints=("zone-a", "zone-b"))
UNHINTED = Endpoint("10.1.0.4", 80)
A_NOT_READY = Endpoint("10.1.0.5", 80, ready=False, serving=False, zone_hints=("zone-a",))


def test_zone_hints_narrow_cluster_endpoints_when_the_service_asks():
    c = categorize_endpoints(svc(topology_aware=True), [A, B, AB], zone="zone-a")
    assert c.cluster == (A, AB) and c.all_reachable == (A, AB) and c.has_any
    c = categorize_endpoints(svc(topology_aware=True), [A, B, AB], zone="zone-b")
    assert c.cluster == (B, AB)


def test_zone_hints_ignored_unless_every_condition_holds():
    everyone = (A, B, AB)
    assert categorize_endpoints(svc(), everyone, zone="zone-a").cluster == everyone  # not asked
    asked = svc(topology_aware=True)
    assert categorize_endpoints(asked, everyone, zone="").cluster == everyone  # zone unknown
    with_unhinted = (A, B, UNHINTED)
    assert categorize_endpoints(asked, with_unhinted, zone="zone-a").cluster == with_unhinted
    assert categorize_endpoints(asked, (B,), zone="zone-a").cluster == (B,)  # none for zone-a
    # Only ready endpoints count: an unhinted unready one does not disable hints ...
    unready_unhinted = Endpoint("10.1.0.6", 80, ready=False, serving=False)
    assert categorize_endpoints(asked, (A, B, unready_unhinted), zone="zone-a").cluster == (A,)
    # ... and an unready endpoint of this zone does not make the zone usable.
    assert categorize_endpoints(asked, (A_NOT_READY, B), zone="zone-a").cluster == (B,)


def test_zone_hints_do_not_apply_to_local_policy_and_union_keeps_local():
    local_b = Endpoint("10.1.0.7", 80, is_local=True, zone_hints=("zone-b",))
    ext_local = svc(topology_aware=True, external_policy_local=True, node_port=30000)
    c = categorize_endpoints(ext_local, (A, local_b), zone="zone-a")
    assert c.cluster == (A,) and c.local == (local_b,)
    assert set(c.all_reachable) == {A, local_b}


def test_zone_hints_from_slice_and_service_request():
    from kpyops.proxy import manifests as m
    from kpyops.proxy.objects import parse_endpoint_slice, service_ports

    ports = [{"name": "", "port": 80}]
    ep = m.endpoint("10.1.0.1")
    ep["hints"] = {"forZones": [{"name": "zone-b"}, {"name": "zone-a"}]}
    parsed = parse_endpoint_slice(m.endpoint_slice("s", [ep], ports), "node1")
    assert next(iter(parsed.endpoints.values()))[0].zone_hints == ("zone-a", "zone-b")

    def asks(**kw):
        annotations = kw.pop("annotations", None)
        obj = m.service("s", "10.96.0.1", ports, **kw)
        if annotations:
            obj["metadata"]["annotations"] = annotations
        return next(iter(service_ports(obj).values())).topology_aware

    mode = "service.kubernetes.io/topology-mode"
    assert asks(annotations={mode: "Auto"}) and asks(trafficDistribution="PreferClose")
    assert asks(trafficDistribution="PreferSameZone")
    assert asks(trafficDistribution="PreferSameNode")
    assert not asks() and not asks(annotations={mode: "Disabled"})
    assert not asks(trafficDistribution="SomethingNew")


# PreferSameNode: the EndpointSlice controller hints each endpoint for its own node (and,
# as a fallback, for its zone).
N1 = Endpoint("10.2.0.1", 80, zone_hints=("zone-a",), node_hints=("node1",))
N1_OTHER = Endpoint("10.2.0.2", 80, zone_hints=("zone-a",), node_hints=("node1",))
N2 = Endpoint("10.2.0.3", 80, zone_hints=("zone-a",), node_hints=("node2",))
N3 = Endpoint("10.2.0.4", 80, zone_hints=("zone-b",), node_hints=("node3",))


def test_node_hints_narrow_cluster_endpoints_to_this_node():
    asked = svc(topology_aware=True)
    everyone = (N1, N1_OTHER, N2, N3)
    c = categorize_endpoints(asked, everyone, zone="zone-a", node_name="node1")
    assert c.cluster == (N1, N1_OTHER) and c.has_any
    assert categorize_endpoints(asked, everyone, node_name="node3").cluster == (N3,)


def test_node_hints_fall_back_to_zone_hints_then_to_every_endpoint():
    asked = svc(topology_aware=True)
    # nothing hinted for node4: its zone's endpoints
    c = categorize_endpoints(asked, (N1, N2, N3), zone="zone-a", node_name="node4")
    assert c.cluster == (N1, N2)
    # one ready endpoint without a node hint: node hints are off, zone hints still apply
    zone_only = Endpoint("10.2.0.5", 80, zone_hints=("zone-a",))
    c = categorize_endpoints(asked, (N1, zone_only, N3), zone="zone-a", node_name="node1")
    assert c.cluster == (N1, zone_only)
    # node name unknown and no zone: every ready endpoint
    assert categorize_endpoints(asked, (N1, N2, N3)).cluster == (N1, N2, N3)
    # not asked: hints are ignored
    assert categorize_endpoints(svc(), (N1, N2, N3), node_name="node1").cluster == (N1, N2, N3)
    # an unready endpoint hinted for this node does not make node hints usable
    n1_unready = Endpoint("10.2.0.6", 80, ready=False, serving=False, node_hints=("node1",))
    c = categorize_endpoints(asked, (n1_unready, N2, N3), zone="zone-b", node_name="node1")
    assert c.cluster == (N3,)


def test_node_hints_from_slice():
    from kpyops.proxy import manifests as m
    from kpyops.proxy.objects import parse_endpoint_slice

    ep = m.endpoint("10.2.0.1")
    ep["hints"] = {"forZones": [{"name": "zone-a"}], "forNodes": [{"name": "node1"}]}
    parsed = parse_endpoint_slice(m.endpoint_slice("s", [ep], [{"name": "", "port": 80}]), "node1")
    endpoint = next(iter(parsed.endpoints.values()))[0]
    assert endpoint.node_hints == ("node1",) and endpoint.zone_hints == ("zone-a",)
