"""The iptables text the dataplane writes, checked without a kernel (see the netns tests)."""

from kpyops.proxy.iptables import chains as c
from kpyops.proxy.iptables.dataplane import IptablesDataplane
from kpyops.proxy.iptables.rules import RuleOptions, service_rules
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName

SPN = ServicePortName("default", "web", "http", "TCP")
EPS = tuple(Endpoint(f"10.0.0.{i}", 8080, node_name="n2") for i in range(1, 5))
OPTS = RuleOptions(cluster_cidrs=("10.244.0.0/16",))


def svc(**kw):
    return ServicePort(SPN, ("10.96.0.10",), 80, **kw)


class FakeCommands:
    def __init__(self):
        self.restores: list[str] = []
        self.saved = {"nat": "", "filter": "", "mangle": ""}
        self.canary = True
        self.flushed: set[tuple[str, str]] = set()

    def restore(self, text):
        self.restores.append(text)

    def save(self, table):
        return self.saved[table]

    def list_rules(self, table, chain):
        """What the last restore left in the chain (rules written whole with -A, or moved
        by -I/-D), unless someone flushed it (``flushed``)."""
        if (table, chain) in self.flushed:
            return []
        rules: list[str] = []
        for text in self.restores:
            lines = text.splitlines()
            if f":{chain} - [0:0]" in lines:
                rules = []
            for line in lines:
                if line.startswith(f"-A {chain} ") or line.startswith(f"-I {chain} "):
                    rules.append(line)
                elif line.startswith(f"-D {chain} "):
                    rules.pop() if rules else None
        return rules

    def rule_exists(self, table, chain, args):
        return self.canary


def test_spreading_probabilities():
    rules = service_rules(svc(), EPS, OPTS).chains[c.service_chain(c.SVC_PREFIX, SPN)]
    spread = [r for r in rules if "KUBE-SEP-" in r]
    assert len(spread) == 4
    assert "--probability 0.25000000000" in spread[0]
    assert "--probability 0.33333333333" in spread[1]
    assert "--probability 0.50000000000" in spread[2]
    assert "statistic" not in spread[3]
    assert rules[0].startswith(
        f"-A {c.service_chain(c.SVC_PREFIX, SPN)} ! -s 10.244.0.0/16 -d 10.96.0.10/32"
    )


def test_client_ip_affinity_uses_recent():
    frag = service_rules(svc(session_affinity_client_ip=True, sticky_max_age_seconds=60), EPS, OPTS)
    svc_rules = frag.chains[c.service_chain(c.SVC_PREFIX, SPN)]
    checks = [r for r in svc_rules if "--rcheck --seconds 60" in r]
    assert len(checks) == 4 and svc_rules.index(checks[-1]) < svc_rules.index(
        next(r for r in svc_rules if "statistic" in r)
    )
    sep = c.endpoint_chain(SPN, EPS[0])
    assert any(f"-m recent --set --name {sep}" in r for r in frag.chains[sep])


def test_no_endpoints_reject_in_filter_and_no_nat():
    frag = service_rules(svc(node_port=30080, external_ips=("192.0.2.1",)), (), OPTS)
    assert frag.nat_services == [] and frag.nat_nodeports == [] and frag.chains == {}
    assert "-j REJECT" in frag.filter_services[0] and "-d 10.96.0.10/32" in frag.filter_services[0]
    assert len(frag.filter_external) == 2 and all("REJECT" in r for r in frag.filter_external)


def test_local_external_policy_without_local_endpoints_drops_external_traffic():
    frag = service_rules(svc(node_port=30080, external_policy_local=True), EPS, OPTS)
    assert any("--dport 30080 -j DROP" in r for r in frag.filter_external)
    ext = frag.chains[c.service_chain(c.EXT_PREFIX, SPN)]
    assert not any(r.endswith(c.service_chain(c.SVL_PREFIX, SPN)) for r in ext)
    assert frag.nat_services and "KUBE-SVC-" in frag.nat_services[0]  # internal still cluster-wide


def test_other_family_skipped():
    assert service_rules(svc(), EPS, RuleOptions(family=6)) is None


def _maps(n_eps=3):
    return {SPN: svc()}, {SPN: EPS[:n_eps]}


def test_partial_sync_writes_only_changed_chains_and_deletes_stale():
    fake = FakeCommands()
    dp = IptablesDataplane(OPTS, commands=fake)
    other = ServicePortName("default", "api", "", "TCP")
    services = {SPN: svc(), other: ServicePort(other, ("10.96.0.11",), 443)}
    endpoints = {SPN: EPS[:3], other: (Endpoint("10.0.1.1", 443),)}
    first = dp.sync(services, endpoints, None)
    assert first.full and first.services_written == 2
    assert "*mangle" in fake.restores[-1] and "-I PREROUTING 1" in fake.restores[-1]

    endpoints[SPN] = EPS[:2]
    result = dp.sync(services, endpoints, {SPN})
    text = fake.restores[-1]
    assert not result.full and result.services_written == 1 and result.objects_deleted == 1
    assert c.service_chain(c.SVC_PREFIX, other) not in text  # untouched service
    assert f":{c.SERVICES} " not in text  # top-level content unchanged: not rewritten
    assert f"-X {c.endpoint_chain(SPN, EPS[2])}" in text
    assert "*filter" not in text and "*mangle" not in text

    del services[other], endpoints[other]
    dp.sync(services, endpoints, {other})
    text = fake.restores[-1].splitlines()
    # Its rule leaves KUBE-SERVICES by a deletion, before its chains are deleted.
    assert f":{c.SERVICES} - [0:0]" not in text
    delete = next(
        i for i, line in enumerate(text) if line.startswith(f"-D {c.SERVICES} -d 10.96.0.11/32")
    )
    assert delete < text.index(f"-X {c.service_chain(c.SVC_PREFIX, other)}")

    services[other] = ServicePort(other, ("10.96.0.11",), 443)
    endpoints[other] = (Endpoint("10.0.1.1", 443),)
    dp.sync(services, endpoints, {other})
    text = fake.restores[-1].splitlines()
    declared_at = text.index(f":{c.service_chain(c.SVC_PREFIX, other)} - [0:0]")
    insert = next(
        i for i, line in enumerate(text) if line.startswith(f"-I {c.SERVICES} 1 -d 10.96.0.11/32")
    )
    assert declared_at < insert  # the chain exists before the rule that jumps to it


def test_first_full_sync_deletes_chains_left_by_a_previous_run():
    fake = FakeCommands()
    fake.saved["nat"] = ":KUBE-SVC-OLDOLDOLDOLDOLD1 - [0:0]\n:KUBE-FIREWALL - [0:0]\n"
    dp = IptablesDataplane(OPTS, commands=fake)
    dp.sync(*_maps(), None)
    assert "-X KUBE-SVC-OLDOLDOLDOLDOLD1" in fake.restores[-1]
    assert "KUBE-FIREWALL" not in fake.restores[-1]  # not ours


def test_canary_failure_makes_next_sync_full():
    fake = FakeCommands()
    dp = IptablesDataplane(OPTS, commands=fake)
    dp.sync(*_maps(), None)
    fake.canary = False
    assert not dp.check_canary()
    assert dp.sync(*_maps(), {SPN}).full


def test_a_flushed_services_chain_makes_the_next_sync_full_though_canaries_are_intact():
    fake = FakeCommands()
    dp = IptablesDataplane(OPTS, commands=fake)
    dp.sync(*_maps(), None)
    assert dp.check_canary()  # as written
    assert not dp.sync(*_maps(), set()).full
    fake.flushed.add(("nat", c.SERVICES))  # someone ran iptables -t nat -F KUBE-SERVICES
    assert not dp.check_canary()
    result = dp.sync(*_maps(), set())
    assert result.full and f"-A {c.SERVICES} " in fake.restores[-1]


def test_large_clusters_drop_per_endpoint_comments():
    fake = FakeCommands()
    dp = IptablesDataplane(OPTS, commands=fake)
    many = tuple(Endpoint(f"10.1.{i // 250}.{i % 250}", 80) for i in range(1001))
    dp.sync({SPN: svc()}, {SPN: many}, None)
    sep_rules = [r for r in fake.restores[-1].splitlines() if r.startswith("-A KUBE-SEP-")]
    assert sep_rules and not any("comment" in r for r in sep_rules)


def test_ipv6_rules():
    spn = ServicePortName("default", "web6", "", "UDP")
    svc6 = ServicePort(spn, ("10.96.0.9", "fd00:96::9"), 53, protocol="UDP")
    eps = (Endpoint("fd00:244::5", 53), Endpoint("10.244.0.5", 53))
    frag = service_rules(svc6, eps, RuleOptions(family=6, cluster_cidrs=("fd00:244::/64",)))
    assert (
        "-d fd00:96::9/128" in frag.nat_services[0]
        and "-p udp -m udp --dport 53" in frag.nat_services[0]
    )
    seps = [rules for name, rules in frag.chains.items() if name.startswith(c.SEP_PREFIX)]
    assert len(seps) == 1  # the IPv4 endpoint belongs to the other family's dataplane
    assert seps[0][1].endswith("-j DNAT --to-destination [fd00:244::5]:53")
    empty = service_rules(svc6, (), RuleOptions(family=6))
    assert "icmp6-port-unreachable" in empty.filter_services[0]


def test_full_resync_rewrites_everything_even_when_nothing_changed():
    fake = FakeCommands()
    dp = IptablesDataplane(OPTS, commands=fake, batch_rules=None)
    services, endpoints = _maps()
    dp.sync(services, endpoints, None)
    first = {line for line in fake.restores[-1].splitlines() if line.startswith((":", "-A"))}
    result = dp.sync(services, endpoints, None)
    again = {line for line in fake.restores[-1].splitlines() if line.startswith((":", "-A"))}
    assert result.full and again == first
    endpoints[SPN] = EPS[:1]
    dp.sync(services, endpoints, None)
    assert f"-X {c.endpoint_chain(SPN, EPS[1])}" in fake.restores[-1]


def test_partial_sync_with_nothing_to_write_runs_no_restore():
    fake = FakeCommands()
    dp = IptablesDataplane(OPTS, commands=fake)
    dp.sync(*_maps(), None)
    runs = len(fake.restores)
    result = dp.sync(*_maps(), set())
    assert not result.full and len(fake.restores) == runs


def test_health_check_node_port_accepted_in_filter_nodeports():
    hc = svc(node_port=30080, external_policy_local=True, health_check_node_port=31999)
    out = service_rules(hc, EPS, OPTS)
    assert out.filter_nodeports == [
        '-A KUBE-NODEPORTS -m comment --comment "default/web:http/tcp health check node port" '
        "-p tcp -m tcp --dport 31999 -j ACCEPT"
    ]
    assert service_rules(svc(node_port=30080), EPS, OPTS).filter_nodeports == []


def test_zone_hints_select_the_sep_jumps_of_this_zone():
    zones = ("zone-a", "zone-b", "zone-a", "zone-b")
    hinted = tuple(
        Endpoint(f"10.0.0.{i}", 8080, node_name="n2", zone_hints=(z,))
        for i, z in enumerate(zones, 1)
    )
    chain = c.service_chain(c.SVC_PREFIX, SPN)
    opts = RuleOptions(cluster_cidrs=("10.244.0.0/16",), zone="zone-b")
    jumps = [
        r
        for r in service_rules(svc(topology_aware=True), hinted, opts).chains[chain]
        if "-j KUBE-SEP-" in r
    ]
    assert [j.split("-j ")[-1] for j in jumps] == [
        c.endpoint_chain(SPN, hinted[1]),
        c.endpoint_chain(SPN, hinted[3]),
    ]
    everyone = service_rules(svc(), hinted, opts).chains[chain]
    assert sum("-j KUBE-SEP-" in r for r in everyone) == 4
