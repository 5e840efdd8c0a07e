"""The nftables text the dataplane writes, checked without a kernel (the netns tests in
tests/integration/proxy/test_proxy_nftables_netns.py send real traffic through it)."""

from __future__ import annotations

import pytest

from kpyops.proxy.dataplane import DataplaneError
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName
from kpyops.proxy.nftables import names as n
from kpyops.proxy.nftables.dataplane import NftablesDataplane
from kpyops.proxy.nftables.rules import fixed_chains, service_objects, table_setup
from kpyops.proxy.options import RuleOptions

SPN = ServicePortName("default", "web", "http", "TCP")
EPS = tuple(Endpoint(f"10.0.0.{i}", 8080, node_name="n2") for i in range(1, 5))
OPTS = RuleOptions(cluster_cidrs=("10.244.0.0/16",))
CLUSTER = n.service_chain(n.CLUSTER_PREFIX, SPN)
LOCAL = n.service_chain(n.LOCAL_PREFIX, SPN)
EXTERNAL = n.service_chain(n.EXTERNAL_PREFIX, SPN)


def svc(spn=SPN, ip="10.96.0.10", **kw):
    return ServicePort(spn, (ip,), 80, **kw)


def test_names_are_readable_hashed_and_only_service_objects_hold_a_slash():
    assert CLUSTER.startswith("service-") and CLUSTER.endswith("-default/web/tcp/http")
    assert len(CLUSTER.split("-")[1]) == 8
    ep6 = n.endpoint_chain(SPN, Endpoint("fd00::1", 80))
    assert ep6.endswith("__fd00..1/80") and ":" not in ep6
    assert n.affinity_set(SPN, EPS[0]).startswith("affinity-")
    assert n.is_service_object(CLUSTER)
    assert not any(n.is_service_object(c) for c in fixed_chains(OPTS))


def test_masquerade_off_cluster_traffic_then_spread_with_numgen():
    rules = service_objects(svc(), EPS, OPTS).chains[CLUSTER]
    assert rules[0] == (
        "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    )
    chains = [n.endpoint_chain(SPN, ep) for ep in EPS]
    assert rules[1:] == (  # 1/4, then 1/3 of the rest, 1/2, and the last always: 1/4 each
        f"numgen random mod 4 == 0 goto {chains[0]}",
        f"numgen random mod 3 == 0 goto {chains[1]}",
        f"numgen random mod 2 == 0 goto {chains[2]}",
        f"goto {chains[3]}",
    )
    one = service_objects(svc(), EPS[:1], OPTS).chains[CLUSTER]
    assert one[-1] == f"goto {chains[0]}"
    everything = service_objects(svc(), EPS, RuleOptions(masquerade_all=True)).chains[CLUSTER]
    assert everything[0] == "ip daddr 10.96.0.10 tcp dport 80 jump mark-for-masquerade"


def test_endpoint_chain_hairpin_masquerades_then_dnats():
    objs = service_objects(svc(), EPS, OPTS)
    assert objs.chains[n.endpoint_chain(SPN, EPS[0])] == (
        "ip saddr 10.0.0.1 jump mark-for-masquerade",
        "meta l4proto tcp dnat to 10.0.0.1:8080",
    )
    assert objs.elements[n.SERVICE_IPS] == {"10.96.0.10 . tcp . 80": f"goto {CLUSTER}"}
    assert objs.elements[n.CLUSTER_IPS] == {"10.96.0.10": ""}
    assert objs.sets == {} and objs.endpoints == 4


def test_client_ip_affinity_uses_timeout_sets():
    objs = service_objects(svc(session_affinity_client_ip=True, sticky_max_age_seconds=60), EPS, OPTS)
    sets = [n.affinity_set(SPN, ep) for ep in EPS]
    assert objs.sets == dict.fromkeys(sets, 60)
    rules = objs.chains[CLUSTER]
    lookups = [r for r in rules if "saddr @affinity-" in r]
    assert lookups[0] == f"ip saddr @{sets[0]} goto {n.endpoint_chain(SPN, EPS[0])}"
    assert len(lookups) == 4 and rules.index(lookups[-1]) < rules.index(
        next(r for r in rules if "numgen" in r)
    )  # affinity first
    assert f"update @{sets[0]} {{ ip saddr }}" in objs.chains[n.endpoint_chain(SPN, EPS[0])]


def test_no_endpoints_reject_everywhere_and_no_chains():
    objs = service_objects(svc(node_port=30080, external_ips=("192.0.2.1",)), (), OPTS)
    assert objs.chains == {}
    assert objs.elements[n.NO_ENDPOINT_SERVICES] == {
        "10.96.0.10 . tcp . 80": "goto reject-chain",
        "192.0.2.1 . tcp . 80": "goto reject-chain",
    }
    assert objs.elements[n.NO_ENDPOINT_NODEPORTS] == {"tcp . 30080": "goto reject-chain"}
    assert n.SERVICE_IPS not in objs.elements and n.SERVICE_NODEPORTS not in objs.elements
    not_ready = tuple(Endpoint(ep.ip, ep.port, ready=False, serving=False) for ep in EPS)
    assert service_objects(svc(), not_ready, OPTS).chains == {}


def test_external_local_without_local_endpoints_drops_external_but_short_circuits_pods():
    s = svc(node_port=30080, external_policy_local=True, load_balancer_ips=("192.0.2.9",))
    objs = service_objects(s, EPS, OPTS)  # every endpoint on n2
    assert objs.elements[n.NO_ENDPOINT_NODEPORTS] == {"tcp . 30080": "drop"}
    assert objs.elements[n.NO_ENDPOINT_SERVICES] == {"192.0.2.9 . tcp . 80": "drop"}
    assert objs.elements[n.SERVICE_IPS]["10.96.0.10 . tcp . 80"] == f"goto {CLUSTER}"
    assert objs.elements[n.SERVICE_NODEPORTS] == {"tcp . 30080": f"goto {EXTERNAL}"}
    assert objs.chains[EXTERNAL] == (
        f"ip saddr 10.244.0.0/16 goto {CLUSTER}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {CLUSTER}",
    )  # and no final goto: the rest is dropped by no-endpoint-*
    local = EPS[:1] + tuple(Endpoint(ep.ip, ep.port, node_name="n2") for ep in EPS[1:])
    local = (Endpoint("10.0.0.1", 8080, node_name="n1", is_local=True), *local[1:])
    objs = service_objects(s, local, OPTS)
    assert objs.chains[EXTERNAL][-1] == f"goto {LOCAL}"
    assert objs.chains[LOCAL] == (f"goto {n.endpoint_chain(SPN, local[0])}",)
    assert n.NO_ENDPOINT_NODEPORTS not in objs.elements


def test_internal_local_policy():
    local = (Endpoint("10.0.0.1", 8080, is_local=True), *EPS[1:])
    objs = service_objects(svc(internal_policy_local=True), local, OPTS)
    assert objs.elements[n.SERVICE_IPS] == {"10.96.0.10 . tcp . 80": f"goto {LOCAL}"}
    assert CLUSTER not in objs.chains and LOCAL in objs.chains
    none_here = service_objects(svc(internal_policy_local=True), EPS, OPTS)
    assert none_here.elements[n.NO_ENDPOINT_SERVICES] == {"10.96.0.10 . tcp . 80": "drop"}


def test_load_balancer_source_ranges():
    s = svc(load_balancer_ips=("192.0.2.9",), load_balancer_source_ranges=("198.51.100.0/24",))
    objs = service_objects(s, EPS, OPTS)
    fw = n.service_chain(n.FIREWALL_PREFIX, SPN)
    assert objs.elements[n.FIREWALL_IPS] == {"192.0.2.9 . tcp . 80": f"goto {fw}"}
    assert objs.chains[fw] == ("ip saddr != 198.51.100.0/24 drop",)
    assert objs.elements[n.SERVICE_IPS]["192.0.2.9 . tcp . 80"] == f"goto {EXTERNAL}"


def test_topology_hints_narrow_the_cluster_set():
    eps = (
        Endpoint("10.0.0.1", 8080, zone_hints=("zone-a",)),
        Endpoint("10.0.0.2", 8080, zone_hints=("zone-b",)),
    )
    objs = service_objects(svc(topology_aware=True), eps, RuleOptions(zone="zone-a"))
    assert objs.chains[CLUSTER] == (f"goto {n.endpoint_chain(SPN, eps[0])}",)


def test_ipv6():
    s = ServicePort(SPN, ("10.96.0.10", "fd00:96::10"), 80)
    eps = (Endpoint("fd00:244::5", 8080), Endpoint("10.0.0.1", 8080))
    objs = service_objects(s, eps, RuleOptions(family=6, cluster_cidrs=("fd00:244::/64",)))
    ep_chain = n.endpoint_chain(SPN, eps[0])
    assert objs.chains[ep_chain] == (
        "ip6 saddr fd00:244::5 jump mark-for-masquerade",
        "meta l4proto tcp dnat to [fd00:244::5]:8080",
    )
    assert objs.elements[n.SERVICE_IPS] == {"fd00:96::10 . tcp . 80": f"goto {CLUSTER}"}
    assert service_objects(svc(), eps, RuleOptions(family=6)) is None
    setup = "\n".join(table_setup(RuleOptions(family=6), reset_base_chains=False))
    assert "add table ip6 kpyops-proxy" in setup and "ipv6_addr . inet_proto" in setup
    assert "ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports" in setup


def test_fixed_part():
    setup = table_setup(OPTS, reset_base_chains=True)
    assert setup[1] == "flush table ip kpyops-proxy"  # a full sync rewrites everything
    assert "delete chain ip kpyops-proxy nat-prerouting" in setup  # base chains re-made once
    assert "add rule ip kpyops-proxy nat-prerouting jump services" in setup
    assert "add rule ip kpyops-proxy masquerading masquerade fully-random" in setup
    assert "add rule ip kpyops-proxy mark-for-masquerade mark set mark or 0x4000" in setup
    assert "add rule ip kpyops-proxy filter-forward ct state invalid drop" in setup
    assert "delete set ip kpyops-proxy nodeport-ips" in setup  # NodePorts on every address
    cidrs = table_setup(RuleOptions(node_port_cidrs=("192.168.0.0/16", "127.0.0.0/8")), False)
    assert "add element ip kpyops-proxy nodeport-ips { 192.168.0.0/16 }" in cidrs
    assert (
        "add rule ip kpyops-proxy services fib daddr type local ip daddr @nodeport-ips "
        "meta l4proto . th dport vmap @service-nodeports"
    ) in cidrs
    liberal = table_setup(RuleOptions(tcp_be_liberal=True), False)
    assert not any("ct state invalid" in line for line in liberal)


class FakeNft:
    """Records transactions; answers listings from ``listed`` (chain -> rule count)."""

    def __init__(self):
        self.applied: list[str] = []
        self.listed: dict[str, int] | None = None  # None: the table does not exist
        self.fail = False

    def apply(self, text):
        if self.fail:
            raise DataplaneError("nft -f failed: no")
        self.applied.append(text)

    def apply_transaction(self, tx):
        """A partial sync: recorded as the text nft -f would read."""
        self.apply(tx.text())
        return True

    def list_json(self, *what):
        return []

    def count_rules(self, family, table, chains):
        """The canary's netlink dump: rules per chain, None when missing."""
        assert table == "kpyops-proxy"
        return {c: None if self.listed is None else self.listed.get(c) for c in chains}

    def delete_table(self, family, table):
        return True


def world(count: int, endpoints: int = 3):
    services, eps = {}, {}
    for i in range(count):
        spn = ServicePortName("bench", f"svc-{i}", "http")
        services[spn] = ServicePort(spn, (f"10.96.{i // 250}.{i % 250 + 1}",), 80)
        eps[spn] = tuple(Endpoint(f"10.{i // 250 + 1}.{i % 250}.{j}", 8080) for j in range(endpoints))
    return services, eps


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def synced(count: int):
    fake, clock = FakeNft(), Clock()
    dp = NftablesDataplane(OPTS, fake, clock=clock, count_rules=fake.count_rules)
    services, eps = world(count)
    full = dp.sync(services, eps, None)
    return dp, fake, clock, services, eps, full


def test_full_sync_writes_everything_in_one_transaction():
    _, fake, _, services, _, full = synced(20)
    assert full.full and full.services_written == 20 and len(fake.applied) == 1
    text = fake.applied[0]
    assert text.startswith('add table ip kpyops-proxy { comment "kpyops service proxy"; }\n'
                           "flush table ip kpyops-proxy\n")  # fmt: skip
    for spn in services:
        assert n.service_chain(n.CLUSTER_PREFIX, spn) in text
    assert text.count("add element ip kpyops-proxy service-ips {") == 1  # one batch per map


def test_one_endpoint_change_writes_one_service_whatever_the_size():
    sizes = []
    for count in (10, 1000):
        dp, fake, _, services, eps, _ = synced(count)
        spn = ServicePortName("bench", "svc-7", "http")
        new = {**eps, spn: (*eps[spn][:2], Endpoint("10.250.0.1", 8080))}
        result = dp.sync(services, new, {spn})
        text = fake.applied[-1]
        assert not result.full and result.services_written == 1
        assert "svc-7/" in text and "svc-8/" not in text and "service-ips" not in text
        assert "flush table" not in text
        # only the changed chains: the service's and the new endpoint's; the old one flushed
        assert text.count("\nchain ") + text.startswith("chain ") == 2, text
        assert "flush chain ip kpyops-proxy endpoint-" in text
        sizes.append(len(text))
    assert sizes[0] == sizes[1]  # the same bytes at 10 and 1,000 services


def test_one_service_added_and_deleted():
    dp, fake, clock, services, eps, _ = synced(50)
    spn = ServicePortName("bench", "new", "http")
    services2 = {**services, spn: ServicePort(spn, ("10.97.0.1",), 80)}
    eps2 = {**eps, spn: (Endpoint("10.9.0.1", 8080),)}
    added = dp.sync(services2, eps2, {spn})
    text = fake.applied[-1]
    assert added.services_written == 1 and "svc-" not in text
    assert "add element ip kpyops-proxy service-ips { 10.97.0.1 . tcp . 80 : goto service-" in text
    assert "add element ip kpyops-proxy cluster-ips { 10.97.0.1 }" in text
    deleted = dp.sync(services, eps, {spn})
    text = fake.applied[-1]
    assert "delete element ip kpyops-proxy service-ips { 10.97.0.1 . tcp . 80 }" in text
    assert "delete element ip kpyops-proxy cluster-ips { 10.97.0.1 }" in text
    assert text.count("flush chain") == 2 and deleted.objects_deleted == 2
    # the unused chains are deleted by a later sync, a second on, in a transaction of their own
    clock.now += 0.5
    dp.sync(services, eps, set())
    assert "delete chain" not in "".join(fake.applied[-1:])
    clock.now += 1
    result = dp.sync(services, eps, set())
    assert fake.applied[-1].count("delete chain ip kpyops-proxy ") == 2
    assert result.objects_deleted == 2


def test_a_cluster_ip_shared_by_two_ports_stays_until_both_are_gone():
    dp, fake, _, services, eps, _ = synced(3)
    dns = ServicePortName("bench", "svc-0", "dns", "UDP")
    services2 = {**services, dns: ServicePort(dns, ("10.96.0.1",), 53, "UDP")}
    dp.sync(services2, {**eps, dns: eps[ServicePortName("bench", "svc-0", "http")]}, {dns})
    assert "cluster-ips" not in fake.applied[-1]  # already there (the http port's)
    dp.sync(services2, eps, {dns})  # dns loses its endpoints: reject instead of goto
    text = fake.applied[-1]
    assert "delete element ip kpyops-proxy service-ips { 10.96.0.1 . udp . 53 }" in text
    assert "no-endpoint-services { 10.96.0.1 . udp . 53 : goto reject-chain }" in text
    dp.sync(services, eps, {dns})
    assert "cluster-ips" not in fake.applied[-1]


def test_affinity_on_off_adds_and_deletes_sets_after_the_chains_are_flushed():
    dp, fake, _, services, eps, _ = synced(3)
    spn = ServicePortName("bench", "svc-1", "http")
    sticky = {**services, spn: ServicePort(spn, services[spn].cluster_ips, 80,
                                           session_affinity_client_ip=True)}  # fmt: skip
    dp.sync(sticky, eps, {spn})
    text = fake.applied[-1]
    assert text.count("add set ip kpyops-proxy affinity-") == 3
    assert "flags dynamic,timeout; timeout 10800s;" in text
    dp.sync(services, eps, {spn})
    text = fake.applied[-1]
    deletes = [i for i, line in enumerate(text.splitlines()) if line.startswith("delete set")]
    rules = [i for i, line in enumerate(text.splitlines()) if "goto endpoint-" in line]
    assert len(deletes) == 3 and min(deletes) > max(rules)


def test_canary_and_a_failed_sync_make_the_next_sync_full_and_read_the_kernel():
    dp, fake, _, services, eps, _ = synced(3)
    fake.listed = {name: len(rules) for name, rules in fixed_chains(OPTS).items()}
    assert dp.check_canary()
    fake.listed["nat-output"] = 0  # someone flushed a base chain
    assert not dp.check_canary()
    assert dp.sync(services, eps, set()).full
    fake.listed = None  # our table deleted
    assert not dp.check_canary()
    assert dp.sync(services, eps, set()).full
    fake.fail = True
    spn = ServicePortName("bench", "svc-1", "http")
    eps2 = {**eps, spn: eps[spn][:1]}
    with pytest.raises(DataplaneError):
        dp.sync(services, eps2, {spn})
    fake.fail = False
    assert dp.sync(services, eps2, {spn}).full


def test_cleanup_deletes_only_our_table():
    deleted = []

    class Tables(FakeNft):
        def delete_table(self, family, table):
            deleted.append((family, table))
            return False  # already gone: still fine

    NftablesDataplane(RuleOptions(family=6), Tables()).cleanup()
    assert deleted == [("ip6", "kpyops-proxy")]
