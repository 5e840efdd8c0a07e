"""iptables-nft batching: per-service chains first (leaves first), top level last."""

from test_proxy_iptables_rules import OPTS, FakeCommands

from kpyops.proxy.iptables import chains as c
from kpyops.proxy.iptables.dataplane import IptablesDataplane
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName


def maps(n):
    services, endpoints = {}, {}
    for i in range(n):
        spn = ServicePortName("ns", f"s{i}", "", "TCP")
        services[spn] = ServicePort(spn, (f"10.96.0.{i + 1}",), 80, node_port=30000 + i)
        endpoints[spn] = tuple(Endpoint(f"10.1.{i}.{j}", 80) for j in range(1, 4))
    return services, endpoints


def declared(batch):
    return [line[1:].split()[0] for line in batch.splitlines() if line.startswith(":")]


def test_batches_write_leaves_first_and_top_level_last():
    fake = FakeCommands()
    dp = IptablesDataplane(OPTS, commands=fake, batch_rules=50)
    services, endpoints = maps(20)
    result = dp.sync(services, endpoints, None)
    assert len(fake.restores) == 1 and fake.restores[0] == "".join(dp.last_restore_batches)
    batches = dp.last_restore_batches
    assert len(batches) == result.details["restore_batches"] > 3
    assert all(b.startswith("*nat\n") and b.endswith("COMMIT\n") for b in batches[:-1])
    assert declared(batches[0]) == [c.MARK_MASQ]  # what every service chain jumps to, first
    batches = batches[1:]
    assert all(len(b.splitlines()) <= 50 + 20 for b in batches[:-1])
    order = [name for b in batches[:-1] for name in declared(b)]
    first = {
        prefix: min(i for i, n in enumerate(order) if n.startswith(prefix))
        for prefix in (c.SEP_PREFIX, c.SVC_PREFIX, c.EXT_PREFIX)
    }
    last = {
        prefix: max(i for i, n in enumerate(order) if n.startswith(prefix))
        for prefix in (c.SEP_PREFIX, c.SVC_PREFIX, c.EXT_PREFIX)
    }
    assert last[c.SEP_PREFIX] < first[c.SVC_PREFIX] and last[c.SVC_PREFIX] < first[c.EXT_PREFIX]
    assert len(order) == len(set(order))  # each chain written (flushed) exactly once
    final = batches[-1]
    assert f":{c.SERVICES} - [0:0]" in final and "*filter" in final and "KUBE-SEP-" not in final
    # Same rules as one transaction would write.
    single = FakeCommands()
    IptablesDataplane(OPTS, commands=single, batch_rules=None).sync(services, endpoints, None)
    rules = {line for line in single.restores[0].splitlines() if line.startswith("-")}
    assert {line for b in batches for line in b.splitlines() if line.startswith("-")} == rules


def test_auto_batches_only_on_nft():
    fake = FakeCommands()
    fake.is_nft = True
    assert IptablesDataplane(OPTS, commands=fake).batch_rules == 2000
    fake.is_nft = False
    assert IptablesDataplane(OPTS, commands=fake).batch_rules is None


def test_cleanup_on_nft_flushes_everything_before_deleting_in_batches():
    fake = FakeCommands()
    owned = [f"KUBE-SEP-{i:016d}" for i in range(25)]
    fake.saved["nat"] = "".join(f":{n} - [0:0]\n" for n in [*owned, "KUBE-FIREWALL"])
    fake.canary = False  # no jump rules to delete
    IptablesDataplane(OPTS, commands=fake, batch_rules=10).cleanup()
    lines = fake.restores[-1].splitlines()
    flushes = [i for i, line in enumerate(lines) if line.startswith(":")]
    deletes = [i for i, line in enumerate(lines) if line.startswith("-X ")]
    assert len(flushes) == len(deletes) == 25 and max(flushes) < min(deletes)
    assert lines.count("COMMIT") == 6 and "KUBE-FIREWALL" not in fake.restores[-1]
