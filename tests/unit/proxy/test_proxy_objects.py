from kpyops.proxy import manifests as m
from kpyops.proxy.model import Endpoint, ServicePortName
from kpyops.proxy.objects import merge_slices, parse_endpoint_slice, service_ports

HTTP = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]


def test_service_ports_multi_port_and_protocols():
    svc = m.service(
        "web",
        "10.96.0.10",
        [
            {"name": "http", "port": 80},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "s", "port": 9, "protocol": "SCTP"},
        ],
        type="NodePort",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
        externalIPs=["192.0.2.5"],
    )
    ports = service_ports(svc)
    assert set(ports) == {
        ServicePortName("default", "web", "http", "TCP"),
        ServicePortName("default", "web", "dns", "UDP"),
        ServicePortName("default", "web", "s", "SCTP"),
    }
    http = ports[ServicePortName("default", "web", "http", "TCP")]
    assert http.cluster_ips == ("10.96.0.10",)
    assert http.session_affinity_client_ip and http.sticky_max_age_seconds == 60
    assert http.external_ips == ("192.0.2.5",)


def test_node_port_and_lb_ips_only_for_their_types():
    ingress = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    plain = service_ports(m.service("a", "10.96.0.1", HTTP, status=ingress))
    (p,) = plain.values()
    assert p.node_port == 0 and p.load_balancer_ips == ()
    lb = service_ports(
        m.service(
            "a",
            "10.96.0.1",
            HTTP,
            type="LoadBalancer",
            status=ingress,
            externalTrafficPolicy="Local",
        )
    )
    (p,) = lb.values()
    assert p.node_port == 30080 and p.load_balancer_ips == ("203.0.113.9",)
    assert p.external_policy_local and not p.internal_policy_local


def test_skipped_services():
    assert service_ports(m.service("h", "None", HTTP)) == {}
    assert service_ports(m.service("h", "", HTTP)) == {}
    assert service_ports(m.service("x", "10.96.0.1", HTTP, type="ExternalName")) == {}
    other = {"service.kubernetes.io/service-proxy-name": "cilium"}
    assert service_ports(m.service("o", "10.96.0.1", HTTP, labels=other)) == {}
    assert service_ports(m.service("o", "10.96.0.1", HTTP, labels=other), proxy_name="cilium")
    headless = {"service.kubernetes.io/headless": ""}
    assert service_ports(m.service("o", "10.96.0.1", HTTP, labels=headless)) == {}


def test_slice_conditions_and_locality():
    obj = m.endpoint_slice(
        "web",
        [
            m.endpoint("10.0.0.1", node="Node1"),
            m.endpoint("10.0.0.2", node="node2", ready=None),
            m.endpoint("10.0.0.3", ready=False, serving=True, terminating=True),
        ],
        [{"name": "http", "port": 8080}],
        trigger_time="2026-01-01T00:00:00Z",
    )
    parsed = parse_endpoint_slice(obj, "node1")
    eps = parsed.endpoints[ServicePortName("default", "web", "http", "TCP")]
    assert eps[0] == Endpoint("10.0.0.1", 8080, True, True, False, "Node1", None, True)
    assert eps[1].ready and eps[1].serving and not eps[1].is_local
    assert (eps[2].ready, eps[2].serving, eps[2].terminating) == (False, True, True)
    assert parsed.trigger_time == 1767225600.0


def test_fqdn_and_unowned_slices_ignored():
    ports = [{"name": "http", "port": 80}]
    assert parse_endpoint_slice(m.endpoint_slice("a", [], ports, address_type="FQDN"), "n") is None
    orphan = m.endpoint_slice("a", [], ports)
    orphan["metadata"]["labels"] = {}
    assert parse_endpoint_slice(orphan, "n") is None


def test_merge_prefers_ready_duplicate_and_sorts():
    ports = [{"name": "http", "port": 80}]
    a = parse_endpoint_slice(
        m.endpoint_slice(
            "s", [m.endpoint("10.0.0.9", ready=False), m.endpoint("10.0.0.2")], ports, name="s-a"
        ),
        "n",
    )
    b = parse_endpoint_slice(
        m.endpoint_slice("s", [m.endpoint("10.0.0.9")], ports, name="s-b"), "n"
    )
    merged = merge_slices([a, b])
    (eps,) = merged.values()
    assert [e.ip for e in eps] == ["10.0.0.2", "10.0.0.9"]
    assert all(e.ready for e in eps)
