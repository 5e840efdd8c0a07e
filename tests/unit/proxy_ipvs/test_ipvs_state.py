"""Services and endpoints -> virtual servers, real servers, bound addresses, ipset members."""

from kpyops.proxy.ipvs import ipset as sets
from kpyops.proxy.ipvs.netlink import RealServer
from kpyops.proxy.ipvs.state import build_state, node_port_addresses
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName

NODE = "192.168.50.2"


def port(name="web", **kw):
    kw.setdefault("cluster_ips", ("10.96.0.10",))
    kw.setdefault("port", 80)
    proto = kw.setdefault("protocol", "TCP")
    return ServicePort(name=ServicePortName("default", name, "", proto), **kw)


def build(svcs, eps, family=4, scheduler="rr", nodes=(NODE,)):
    services = {s.name: s for s in svcs}
    endpoints = {s.name: tuple(eps.get(s.name.name, ())) for s in svcs}
    return build_state(services, endpoints, family, scheduler, nodes)


def test_cluster_ip_gets_a_virtual_server_bound_address_and_set_member():
    s = port()
    st = build([s], {"web": [Endpoint("10.244.1.2", 8080), Endpoint("10.244.2.2", 8080)]})
    vs = st.servers[("10.96.0.10", "TCP", 80)]
    assert (vs.scheduler, vs.persistent) == ("rr", False)
    assert st.real_servers[vs.key] == {
        RealServer("10.244.1.2", 8080),
        RealServer("10.244.2.2", 8080),
    }
    assert st.bound == {"10.96.0.10"}
    assert st.ipsets[sets.CLUSTER_IP] == {"10.96.0.10,tcp:80"}
    assert st.ipsets[sets.IPVS_IPS] == {"10.96.0.10"}


def test_unready_endpoints_are_skipped_and_terminating_ones_are_the_fallback():
    s = port()
    ready = Endpoint("10.244.1.2", 8080)
    unready = Endpoint("10.244.1.3", 8080, ready=False, serving=False)
    term = Endpoint("10.244.1.4", 8080, ready=False, serving=True, terminating=True)
    st = build([s], {"web": [ready, unready, term]})
    assert {r.address for r in st.real_servers[("10.96.0.10", "TCP", 80)]} == {"10.244.1.2"}
    st = build([s], {"web": [unready, term]})
    assert {r.address for r in st.real_servers[("10.96.0.10", "TCP", 80)]} == {"10.244.1.4"}


def test_no_endpoints_means_a_virtual_server_without_real_servers():
    st = build([port()], {})
    assert st.real_servers[("10.96.0.10", "TCP", 80)] == frozenset()


def test_session_affinity_becomes_persistence_with_the_timeout():
    s = port(session_affinity_client_ip=True, sticky_max_age_seconds=600)
    vs = build([s], {}).servers[("10.96.0.10", "TCP", 80)]
    assert (vs.persistent, vs.timeout) == (True, 600)


def test_scheduler_comes_from_the_configuration():
    vs = build([port()], {}, scheduler="sh").servers[("10.96.0.10", "TCP", 80)]
    assert vs.scheduler == "sh"


def test_node_port_has_a_virtual_server_per_node_ip_and_a_bitmap_member():
    s = port(node_port=30080)
    st = build([s], {"web": [Endpoint("10.244.1.2", 8080)]}, nodes=(NODE, "10.0.0.5"))
    assert ("192.168.50.2", "TCP", 30080) in st.servers
    assert ("10.0.0.5", "TCP", 30080) in st.servers
    assert st.ipsets[sets.NODE_PORT_TCP] == {"30080"}
    assert sets.NODE_PORT_LOCAL_TCP not in st.ipsets
    assert NODE not in st.bound  # node IPs are never bound on kube-ipvs0


def test_udp_and_sctp_node_ports_use_their_own_sets():
    u = port("dns", protocol="UDP", port=53, node_port=30053, cluster_ips=("10.96.0.11",))
    c = port("sig", protocol="SCTP", port=9, node_port=30009, cluster_ips=("10.96.0.12",))
    st = build([u, c], {})
    assert st.ipsets[sets.NODE_PORT_UDP] == {"30053"}
    assert st.ipsets[sets.NODE_PORT_SCTP] == {f"{NODE},sctp:30009"}


def test_external_policy_local_uses_only_local_endpoints_and_local_sets():
    s = port(node_port=30080, external_ips=("203.0.113.7",), external_policy_local=True)
    local = Endpoint("10.244.1.2", 8080, node_name="me", is_local=True)
    remote = Endpoint("10.244.2.2", 8080, node_name="other")
    st = build([s], {"web": [local, remote]})
    # ClusterIP still spreads over the cluster
    assert len(st.real_servers[("10.96.0.10", "TCP", 80)]) == 2
    assert st.real_servers[(NODE, "TCP", 30080)] == {RealServer("10.244.1.2", 8080)}
    assert st.real_servers[("203.0.113.7", "TCP", 80)] == {RealServer("10.244.1.2", 8080)}
    assert st.ipsets[sets.NODE_PORT_LOCAL_TCP] == {"30080"}
    assert st.ipsets[sets.NODE_PORT_TCP] == {"30080"}
    assert st.ipsets[sets.EXTERNAL_IP_LOCAL] == {"203.0.113.7,tcp:80"}
    assert sets.EXTERNAL_IP not in st.ipsets
    # hairpin: a local endpoint may reach itself through the service
    assert st.ipsets[sets.LOOP_BACK] == {"10.244.1.2,tcp:8080,10.244.1.2"}


def test_topology_hints_pick_real_servers_for_this_node_then_zone():
    s = port(topology_aware=True)
    here = Endpoint("10.244.1.2", 8080, zone_hints=("zone-b",), node_hints=("me",))
    there = Endpoint("10.244.2.2", 8080, zone_hints=("zone-a",), node_hints=("other",))
    services, eps = {s.name: s}, {s.name: (here, there)}
    key = ("10.96.0.10", "TCP", 80)
    st = build_state(services, eps, 4, "rr", (NODE,), zone="zone-a", node_name="me")
    assert st.real_servers[key] == {RealServer("10.244.1.2", 8080)}  # node hint wins
    st = build_state(services, eps, 4, "rr", (NODE,), zone="zone-a", node_name="third")
    assert st.real_servers[key] == {RealServer("10.244.2.2", 8080)}  # then the zone's


def test_internal_policy_local_without_local_endpoints_has_no_real_servers():
    s = port(internal_policy_local=True)
    st = build([s], {"web": [Endpoint("10.244.2.2", 8080, node_name="other")]})
    assert st.real_servers[("10.96.0.10", "TCP", 80)] == frozenset()


def test_load_balancer_ips_and_source_ranges():
    s = port(
        load_balancer_ips=("198.51.100.9",),
        load_balancer_source_ranges=("192.168.50.0/24", "172.16.0.0/12"),
    )
    st = build([s], {})
    assert ("198.51.100.9", "TCP", 80) in st.servers
    assert "198.51.100.9" in st.bound
    assert st.ipsets[sets.LOAD_BALANCER] == {"198.51.100.9,tcp:80"}
    assert st.ipsets[sets.LOAD_BALANCER_FW] == {"198.51.100.9,tcp:80"}
    assert st.ipsets[sets.LOAD_BALANCER_SOURCE_CIDR] == {
        "198.51.100.9,tcp:80,192.168.50.0/24",
        "198.51.100.9,tcp:80,172.16.0.0/12",
    }
    # the node (192.168.50.2) is inside a range: node-originated traffic is allowed
    assert st.ipsets[sets.LOAD_BALANCER_SOURCE_IP] == {"198.51.100.9,tcp:80,198.51.100.9"}


def test_external_ip_that_is_a_node_address_is_not_bound():
    st = build([port(external_ips=(NODE,))], {})
    assert (NODE, "TCP", 80) in st.servers
    assert NODE not in st.bound


def test_each_family_only_sees_its_own_addresses():
    s = port(cluster_ips=("10.96.0.10", "fd00:10:96::a"))
    eps = {"web": [Endpoint("10.244.1.2", 8080), Endpoint("fd00:10:244::2", 8080)]}
    v4 = build([s], eps)
    v6 = build([s], eps, family=6, nodes=("fd00:50::2",))
    assert set(v4.servers) == {("10.96.0.10", "TCP", 80)}
    assert set(v6.servers) == {("fd00:10:96::a", "TCP", 80)}
    assert v6.real_servers[("fd00:10:96::a", "TCP", 80)] == {RealServer("fd00:10:244::2", 8080)}
    assert v6.ipsets[sets.CLUSTER_IP] == {"fd00:10:96::a,tcp:80"}


def test_health_check_node_port_member():
    st = build([port(health_check_node_port=32000, node_port=30080)], {})
    assert st.ipsets[sets.HEALTH_CHECK_NODE_PORT] == {"32000"}


def test_node_port_addresses_filter():
    addrs = ["127.0.0.1", "10.0.0.5", "192.168.50.2", "fd00::5", "fe80::1", "169.254.3.3", "::1"]
    assert node_port_addresses(addrs, (), 4) == ["10.0.0.5", "192.168.50.2"]
    assert node_port_addresses(addrs, ("192.168.0.0/16",), 4) == ["192.168.50.2"]
    assert node_port_addresses(addrs, (), 6) == ["fd00::5"]


def test_ipv6_set_names_are_prefixed_and_fit_ipset_limits():
    for spec in sets.ALL_SETS:
        name = spec.name_for(6)
        assert name.startswith("KUBE-6-")
        assert len(name) <= 31
    assert sets.CLUSTER_IP.name_for(6) == "KUBE-6-CLUSTER-IP"
    assert len({spec.name_for(6) for spec in sets.ALL_SETS}) == len(sets.ALL_SETS)
