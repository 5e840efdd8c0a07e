"""Every bad spec fails the same way (issue 13, items 3 and 4): exit code 2, one line per
problem naming the field path in our words, at most 20 of them and how many more, in
bounded time and memory; the state store byte for byte as it was. And the checks an
operator expects: strict types, network sizes and overlaps, kubelet's value syntaxes,
node-group names, the supported Kubernetes range, upper bounds."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kpyops import lifecycle
from kpyops.cli import commands
from kpyops.cli.main import cli
from kpyops.spec import SpecError, complete, loads, parse
from kpyops.spec.errors import MAX_SHOWN
from kpyops.spec.io import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES, read_spec
from kpyops.spec.model import SUPPORTED_KUBERNETES
from kpyops.state import LocalStore

for _c in commands.all_commands():
    cli.add_command(_c)

# What pydantic says of itself, which a user must never read.
INTERNALS = re.compile(r"lax-or-strict|function-(after|before|plain|wrap)|json-or-python|"
                       r"Input should|input_value|\[type=|pydantic|IPv4Network|IPv6Network|"
                       r"IPv4Address|IPv6Address|Value error|validation error")


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every file and folder under root: mode and content, to compare byte for byte."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st_ = p.lstat()
            out[str(p.relative_to(root))] = (st_.st_mode, None if p.is_dir() else p.read_bytes())
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A state store holding cluster `demo`."""
    root = tmp_path_factory.mktemp("store")
    lifecycle.create(LocalStore(root), parse({"metadata": {"name": "demo"}, "spec": {}}),
                     lambda _m: None)
    return root


def spec_text(name: str = "other", **spec) -> str:
    return yaml.safe_dump({"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster",
                           "metadata": {"name": name}, "spec": spec})


def refused(store: Path, tmp_path: Path, content: str | bytes, *extra: str) -> list[str]:
    """Feed ``content`` to `create cluster other -f` and `update cluster demo -f`: both exit 2
    with one `error:` line per problem and leave the store as it was. Returns the lines."""
    before = tree(store)
    f = tmp_path / "spec.yaml"
    runs = []
    for verb, name in (("create", "other"), ("update", "demo")):
        data = content
        if verb == "update" and isinstance(data, str):
            data = data.replace("name: other", "name: demo", 1)
        f.write_bytes(data if isinstance(data, bytes) else data.encode())
        r = CliRunner().invoke(cli, ["--state", str(store), verb, "cluster", name, "-f", str(f),
                                     *extra], catch_exceptions=False)
        assert r.exit_code == 2, (verb, r.output)
        assert tree(store) == before
        lines = r.output.splitlines()
        assert lines[-1] == "nothing was changed"
        errors = lines[:-1]
        assert errors and all(line.startswith("error: ") for line in errors), r.output
        assert not any(INTERNALS.search(line) for line in errors), r.output
        runs.append([line.removeprefix("error: ") for line in errors])
    fields = [[line.split(": ")[0] for line in run] for run in runs]
    assert fields[0] == fields[1], runs  # the same problems, whichever verb reads the spec
    return runs[0]


def said(lines: list[str], field: str, words: str) -> bool:
    return any(line.startswith(f"{field}: ") and words in line for line in lines)


# --- item 3: the same failure for every bad spec, bounded --------------------------------


def test_many_problems_are_one_line_each_and_capped(store, tmp_path):
    spec = {f"unknown{i}": i for i in range(30)}
    spec["controlPlane"] = {"count": "three"}
    lines = refused(store, tmp_path, spec_text(**spec))
    assert len(lines) == MAX_SHOWN + 1
    assert lines[-1] == f"... and {31 - MAX_SHOWN} more"
    assert said(lines, "spec.controlPlane.count", "must be a whole number, not the text 'three'")
    assert said(lines, "spec.unknown0", "unknown field")


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"controlPlane": {"hosts": [{"name": "a", "address": "x"}]}},
     "spec.controlPlane.hosts[0].address", "'x' is not an IP address"),
    ({"controlPlane": {"hosts": [{"name": "a", "address": 3232235521}]}},
     "spec.controlPlane.hosts[0].address", "must be an IP address written as text"),
    ({"kubeProxy": {"excludeCIDRs": ["fd00::/8", 5]}},
     "spec.kubeProxy.excludeCIDRs[1]", "must be a CIDR written as text"),
    ({"nodeGroups": "x"}, "spec.nodeGroups", "must be a list, not the text 'x'"),
    ({"nodeGroups": [{"name": "a", "labels": [1]}]}, "spec.nodeGroups[0].labels",
     "must be a mapping, not a list"),
    ({"nodeGroups": [{"count": 1}]}, "spec.nodeGroups[0].name", "required"),
    ({"kubelet": {"evictionHard": {"memory.available": 5}}},
     "spec.kubelet.evictionHard['memory.available']", "must be text, not the number 5"),
    ({"kubeProxy": {"syncPeriod": "soon"}}, "spec.kubeProxy.syncPeriod",
     "must be a duration such as 30s"),
    ({"cloud": "aws", "aws": {"region": "Europe"}}, "spec.aws.region",
     "must be a region name such as eu-west-1"),
    ({"networking": {"clusterDomain": "Cluster.Local"}}, "spec.networking.clusterDomain",
     "must be a DNS domain"),
])
def test_problems_are_said_in_our_words(store, tmp_path, spec, field, words):
    assert said(refused(store, tmp_path, spec_text(**spec)), field, words)


def test_a_key_with_a_newline_stays_on_its_line(store, tmp_path):
    lines = refused(store, tmp_path, spec_text(**{"bad\nkey\u2028x": 1}))
    assert lines == ["spec['bad\\nkey\\u2028x']: unknown field"]


@pytest.mark.parametrize("text", [
    "metadata: {name: other}\nspec:\n  a: " + "[" * 5000 + "]" * 5000 + "\n",
    "metadata: {name: other}\nspec:\n" + "".join("  " * i + f"  k{i}:\n" for i in range(1, 400)),
    "metadata: {name: other}\nspec:\n  a:\n" + "    " + "- " * 5000 + "x\n",
])
def test_deep_nesting_is_refused_at_once(store, tmp_path, text):
    start = time.monotonic()
    lines = refused(store, tmp_path, text)
    assert len(lines) == 1 and "nest" in lines[0] and lines[0].startswith("spec: ")
    assert time.monotonic() - start < 10


def test_a_10_mb_file_is_refused_before_it_is_read(store, tmp_path):
    text = "metadata: {name: other}\nspec:\n" + "".join(f"  k{i}: 1\n" for i in range(900_000))
    assert len(text) > 10_000_000
    start = time.monotonic()
    lines = refused(store, tmp_path, text)
    assert lines == [f"spec: larger than 1 MiB ({MAX_SPEC_BYTES + 1} bytes or more): not a "
                     "cluster spec"]
    assert time.monotonic() - start < 10


def test_an_endless_file_is_read_only_up_to_the_limit():
    with open("/dev/zero", "rb") as endless, pytest.raises(SpecError, match="larger than 1 MiB"):
        read_spec(endless)


def test_the_largest_files_allowed_take_bounded_time(store, tmp_path):
    head = "metadata: {name: other}\nspec:\n"
    many_keys = head + "".join(f"  k{i}: 1\n" for i in range(MAX_NODES // 2 - 10))
    many_values = head + "  nodeGroups: [" + ",".join("1" for _ in range(300_000)) + "]\n"
    assert len(many_values) < MAX_SPEC_BYTES
    start = time.monotonic()
    keys = refused(store, tmp_path, many_keys)
    values = refused(store, tmp_path, many_values)
    assert keys[-1] == f"... and {MAX_NODES // 2 - 10 - MAX_SHOWN} more"
    assert values == [f"spec: more than {MAX_NODES} values: not a cluster spec"]
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("text", [
    "metadata: {name: other}\nspec:\n  etcd: {members: " + "9" * 5000 + "}\n",
    "metadata: {name: other}\nspec:\n  etcd: {members: " + ":".join(["1"] * 3000) + "}\n",
    "metadata: {name: other}\nspec:\n  etcd: {members: !!int x}\n",
    "metadata: {name: other}\nspec:\n  ? [a]\n  : 1\n",
])
def test_values_yaml_cannot_build_are_refused(store, tmp_path, text):
    start = time.monotonic()
    lines = refused(store, tmp_path, text)
    assert len(lines) == 1 and lines[0].startswith("spec: ")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(("subnet", "words"), [
    ("0.0.0.0/1", "use a prefix between /16 and /28"),
    ("10.1.0.0/30", "use a prefix between /16 and /28"),
    ("10.244.0.0/16", "overlaps podCIDR 10.244.0.0/16"),
])
def test_a_local_subnet_that_cannot_hold_the_cluster_is_refused(store, tmp_path, subnet, words):
    lines = refused(store, tmp_path, spec_text(local={"subnet": subnet}))
    assert said(lines, "spec.local.subnet", words)


def test_more_machines_than_the_local_subnet_holds_is_refused(store, tmp_path):
    lines = refused(store, tmp_path, spec_text(local={"subnet": "10.1.0.0/28"},
                                               nodeGroups=[{"name": "n", "count": 5}]))
    assert lines == ["spec.local.subnet: 10.1.0.0/28 holds 5 machines (addresses 10.1.0.10 up) "
                     "but the spec has 6: use a larger subnet"]
    lines = refused(store, tmp_path, spec_text(nodeGroups=[{"name": "n", "count": 300}]))
    assert said(lines, "spec.local.subnet", "holds 245 machines")
    # exactly full is fine
    c = complete(loads(spec_text(local={"subnet": "10.1.0.0/28"},
                                 nodeGroups=[{"name": "n", "count": 4}])))
    assert str(c.spec.node_groups[0].hosts[-1].address) == "10.1.0.14"


def test_nodes_flag_with_an_empty_node_group_list(tmp_path):
    f = tmp_path / "spec.yaml"
    f.write_text(spec_text(nodeGroups=[]))
    r = CliRunner().invoke(cli, ["--state", str(tmp_path / "s"), "create", "cluster", "other",
                                 "-f", str(f), "--nodes", "3", "--dry-run"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    groups = yaml.safe_load(r.stdout)["spec"]["nodeGroups"]
    assert [(g["name"], g["count"]) for g in groups] == [("node", 3)]
    assert not (tmp_path / "s").exists()


def test_nesting_limit_leaves_room_for_every_spec_value():
    assert MAX_DEPTH >= 8
    deep = loads(spec_text(nodeGroups=[{"name": "n", "kubelet": {
        "evictionHard": {"memory.available": "1Gi"}}}]))
    assert deep.spec.node_groups[0].kubelet.eviction_hard == {"memory.available": "1Gi"}


# --- item 4: strict types and the semantic checks --------------------------------------

HOSTS = {"cloud": "baremetal", "controlPlane": {"hosts": [{"name": "a", "address": "192.0.2.1"}]},
         "nodeGroups": [{"name": "n", "count": 0}]}
STATIC = {"cpuManagerPolicy": "static"}
REFUSED = [
    # a boolean is not a count, a number is not a CIDR, text is not a flag
    ({"controlPlane": {"count": True}}, "spec.controlPlane.count", "not true (a boolean)"),
    ({"nodeGroups": [{"name": "n", "count": "3"}]}, "spec.nodeGroups[0].count",
     "must be a whole number, not the text '3'"),
    ({"etcd": {"tuning": {"snapshotCount": 10000.0}}}, "spec.etcd.tuning.snapshotCount",
     "must be a whole number"),
    ({"controlPlane": {"apiLoadBalancer": {"port": "6443"}}},
     "spec.controlPlane.apiLoadBalancer.port", "must be a whole number"),
    ({"ssh": {"port": True}}, "spec.ssh.port", "must be a whole number"),
    ({"ssh": {"port": 70000}}, "spec.ssh.port", "must be at most 65535"),
    ({"networking": {"podCIDR": 167772160}}, "spec.networking.podCIDR",
     "must be an IPv4 CIDR written as text"),
    ({"networking": {"serviceCIDR": True}}, "spec.networking.serviceCIDR",
     "must be an IPv4 CIDR written as text"),
    ({"local": {"subnet": 5}}, "spec.local.subnet", "must be an IPv4 CIDR written as text"),
    ({"dns": {"clusterDNS": 10}}, "spec.dns.clusterDNS", "must be an IPv4 address written"),
    ({"networking": {"dualStack": {"enabled": "yes"}}}, "spec.networking.dualStack.enabled",
     "must be true or false, not the text 'yes'"),
    ({"etcd": {"backup": {"enabled": 1}}}, "spec.etcd.backup.enabled",
     "must be true or false, not the number 1"),
    ({"kubelet": {"protectKernelDefaults": "false"}}, "spec.kubelet.protectKernelDefaults",
     "must be true or false"),
    # network sizes: kube-apiserver's 20 host bits, kube-controller-manager's node ranges
    ({"networking": {"dualStack": {"enabled": True, "serviceCIDRv6": "fd00:10:96::/107"}}},
     "spec.networking.dualStack.serviceCIDRv6", "at most 20 host bits, a /108"),
    ({"networking": {"dualStack": {"serviceCIDRv6": "fd00::/64"}}},
     "spec.networking.dualStack.serviceCIDRv6", "too large"),
    ({"networking": {"serviceCIDR": "10.0.0.0/8"}}, "spec.networking.serviceCIDR",
     "at most 20 host bits, a /12"),
    ({"networking": {"podCIDR": "10.244.0.0/25"}}, "spec.networking.podCIDR",
     "smaller than the /24 each node gets"),
    ({"networking": {"podCIDR": "10.0.0.0/7"}}, "spec.networking.podCIDR", "too large"),
    ({"networking": {"dualStack": {"podCIDRv6": "fd00:10:244::/72"}}},
     "spec.networking.dualStack.podCIDRv6", "smaller than the /64 each node gets"),
    ({"networking": {"podCIDR": "10.244.0.0/23"}, "nodeGroups": [{"name": "n", "count": 2}]},
     "spec.networking.podCIDR", "holds 2 node ranges (/24) but the cluster has 3 machines"),
    # no overlapping pod, service and node networks
    ({"networking": {"podCIDR": "10.96.0.0/16"}}, "spec.networking", "overlaps serviceCIDR"),
    ({"networking": {"dualStack": {"enabled": True, "podCIDRv6": "fd00:10:96::/56"}}},
     "spec.networking", "podCIDRv6 fd00:10:96::/56 overlaps dualStack.serviceCIDRv6"),
    ({"local": {"subnet": "10.96.4.0/24"}}, "spec.local.subnet", "overlaps serviceCIDR"),
    ({"networking": {"podCIDR": "10.200.0.0/16", "dualStack": {"enabled": True}},
      "local": {"subnet": "10.200.7.0/24"}}, "spec.local.subnet", "overlaps podCIDR"),
    ({"cloud": "aws", "aws": {"region": "eu-west-1", "cidr": "10.244.0.0/16"}}, "spec.aws.cidr",
     "overlaps podCIDR 10.244.0.0/16"),
    ({**HOSTS, "controlPlane": {"hosts": [{"name": "a", "address": "10.96.0.1"}]}},
     "spec.controlPlane.hosts", "address 10.96.0.1 lies inside serviceCIDR"),
    ({**HOSTS, "networking": {"dualStack": {"enabled": True}},
      "controlPlane": {"hosts": [{"name": "a", "address": "fd00:10:244::9"}]}},
     "spec.controlPlane.hosts", "lies inside dualStack.podCIDRv6"),
    # kubelet's value syntaxes
    ({"kubelet": {"reservedSystemCPUs": "3-1"}}, "spec.kubelet.reservedSystemCPUs",
     "3-1 in '3-1' is not a range"),
    ({"kubelet": {"reservedSystemCPUs": "0,,1"}}, "spec.kubelet.reservedSystemCPUs",
     "is not a CPU list"),
    ({"kubelet": {"reservedSystemCPUs": "0-99999"}}, "spec.kubelet.reservedSystemCPUs",
     "CPU numbers go up to 8191"),
    ({"kubelet": {"evictionHard": {"memory.available": "lots"}}}, "spec.kubelet.evictionHard",
     "neither a quantity (such as 100Mi) nor a percentage"),
    ({"kubelet": {"evictionHard": {"memory.available": "150%"}}}, "spec.kubelet.evictionHard",
     "'150%' is not a percentage from 0% to 100%"),
    ({"kubelet": {"evictionHard": {"memory.available": "0Mi"}}}, "spec.kubelet.evictionHard",
     "must be more than zero"),
    ({"kubelet": {"evictionHard": {"memory.free": "1Gi"}}}, "spec.kubelet.evictionHard",
     "unknown eviction signal 'memory.free'"),
    ({"kubelet": {"evictionSoft": {"memory.available": "1Gi"}}}, "spec.kubelet",
     "evictionSoft memory.available needs a grace period"),
    ({"kubelet": {"evictionSoft": {"memory.available": "1Gi"},
                  "evictionSoftGracePeriod": {"memory.available": "soon"}}},
     "spec.kubelet.evictionSoftGracePeriod['memory.available']", "must be a duration"),
    ({"kubelet": {"kubeReserved": {"gpu": "1"}}}, "spec.kubelet.kubeReserved",
     "cannot reserve 'gpu'"),
    ({"kubelet": {"systemReserved": {"memory": "1 GB"}}}, "spec.kubelet.systemReserved",
     "'1 GB' is not a quantity"),
    ({"kubelet": {"kubeReserved": {"cpu": "-100m"}}}, "spec.kubelet.kubeReserved",
     "cpu: -100m is negative"),
    ({"kubelet": {**STATIC, "kubeReserved": {"cpu": "0"}, "systemReserved": {"cpu": "0m"}}},
     "spec.kubelet", "cpuManagerPolicy static needs CPUs reserved"),
    ({"kubelet": {"kubeReserved": {"memory": "1Gi"}, "systemReserved": {"memory": "1Gi"}},
      "nodeGroups": [{"name": "n", "kubelet": STATIC}]},
     "spec.nodeGroups[0].kubelet", "cpuManagerPolicy static needs CPUs reserved"),
    # node-group names
    ({"nodeGroups": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}, "spec.nodeGroups",
     "node group name 'a' is used twice: nodeGroups[0] and nodeGroups[2]"),
    ({"nodeGroups": [{"name": "control-plane"}]}, "spec.nodeGroups[0].name",
     "'control-plane' is reserved"),
    ({"nodeGroups": [{"name": "cp"}]}, "spec.nodeGroups[0].name", "'cp' is reserved"),
    # the supported Kubernetes range
    ({"kubernetesVersion": "1.32.9"}, "spec.kubernetesVersion",
     f"Kubernetes 1.32.9 is not supported: use {SUPPORTED_KUBERNETES[0]} or later"),
    ({"kubernetesVersion": SUPPORTED_KUBERNETES[1]}, "spec.kubernetesVersion", "not supported"),
    ({"kubernetesVersion": "1.35"}, "spec.kubernetesVersion", "must be a version such as"),
    # upper bounds
    ({"etcd": {"tuning": {"quotaBackendBytes": 64 * 1024**3 + 1}}},
     "spec.etcd.tuning.quotaBackendBytes", f"must be at most {64 * 1024**3}"),
    ({"kubelet": {"maxPods": 251}}, "spec.kubelet.maxPods", "must be at most 250"),
    ({"nodeGroups": [{"name": "n", "count": 501}]}, "spec.nodeGroups[0].count",
     "must be at most 500"),
    ({"cloud": "aws", "aws": {"region": "eu-west-1"}, "networking": {"podCIDR": "100.64.0.0/10"},
      "nodeGroups": [{"name": f"g{i}", "count": 500} for i in range(11)]},
     "spec.nodeGroups", "5501 machines: Kubernetes supports at most 5000 nodes"),
    ({"dns": {"replicas": 21}}, "spec.dns.replicas", "must be at most 20"),
]


@pytest.mark.parametrize(("spec", "field", "words"), REFUSED,
                         ids=[f"{i}-{r[1]}" for i, r in enumerate(REFUSED)])
def test_bad_values_exit_2_naming_field_and_rule(store, tmp_path, spec, field, words):
    lines = refused(store, tmp_path, spec_text(**spec))
    assert said(lines, field, words), lines


ACCEPTED = [
    {"networking": {"dualStack": {"enabled": True, "serviceCIDRv6": "fd00:10:96::/108"}}},
    {"networking": {"serviceCIDR": "172.16.0.0/12", "podCIDR": "10.0.0.0/8"},
     "local": {"subnet": "192.168.0.0/24"}},
    {"kubelet": {"reservedSystemCPUs": "0-1,4,6-7", **STATIC}},
    {"kubelet": {"evictionHard": {"memory.available": "0.5Gi", "nodefs.available": "0%",
                                  "pid.available": "10.5%", "imagefs.inodesFree": "1e3"},
                 "evictionSoft": {"memory.available": "1Gi"},
                 "evictionSoftGracePeriod": {"memory.available": "1m30s"}}},
    {"kubelet": {**STATIC, "kubeReserved": {"cpu": "0", "memory": "1Gi"},
                 "systemReserved": {"cpu": "500m", "pid": "1000", "ephemeral-storage": "1Gi"}}},
    {"kubernetesVersion": SUPPORTED_KUBERNETES[0]},
    {"kubernetesVersion": "1.37.99"},
    {"etcd": {"tuning": {"quotaBackendBytes": 64 * 1024**3}}, "kubelet": {"maxPods": 250}},
    {"local": {"subnet": "10.1.0.0/16"}, "nodeGroups": [{"name": "a"}, {"name": "b"}]},
]


@pytest.mark.parametrize("spec", ACCEPTED)
def test_good_values_next_to_the_limits_are_accepted(tmp_path, spec):
    f = tmp_path / "spec.yaml"
    f.write_text(spec_text(**spec))
    r = CliRunner().invoke(cli, ["--state", str(tmp_path / "s"), "create", "cluster", "other",
                                 "-f", str(f), "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def test_spec_errors_print_the_first_20_lines_only():
    err = SpecError(problems=[(f"spec.f{i}", "bad") for i in range(25)])
    assert err.lines()[-1] == "... and 5 more" and len(err.lines()) == MAX_SHOWN + 1
    assert SpecError(problems=[("spec.a", "x")], total=100).lines()[-1] == "... and 80 more"
