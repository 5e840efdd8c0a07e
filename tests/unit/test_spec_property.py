"""Property: whatever a user changes in a valid spec, reading and completing it either works
or raises SpecError (never another exception), each problem one line in our words; and the
CLI exits 0 or 2, never with a traceback."""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpyops.cli import commands
from kpyops.cli.main import cli
from kpyops.spec import SpecError, complete, dumps, loads, parse, to_data

for _c in commands.all_commands():
    cli.add_command(_c)

INTERNALS = re.compile(r"lax-or-strict|function-(after|before|plain|wrap)|json-or-python|"
                       r"Input should|input_value|\[type=|pydantic|Value error")


def _valid_specs() -> list[dict]:
    user = [
        {"metadata": {"name": "p"}, "spec": {}},
        {"metadata": {"name": "p"}, "spec": {
            "cloud": "baremetal",
            "controlPlane": {"hosts": [{"name": "a", "address": "192.0.2.1"}]},
            "nodeGroups": [{"name": "n", "hosts": [{"name": "b", "address": "192.0.2.2"}]}]}},
        {"metadata": {"name": "p"}, "spec": {
            "cloud": "aws", "aws": {"region": "eu-west-1"},
            "nodeGroups": [{"name": "n", "count": 2}]}},
        {"metadata": {"name": "q"}, "spec": {
            "controlPlane": {"count": 3},
            "networking": {"dualStack": {"enabled": True}},
            "nodeGroups": [{"name": "big", "count": 2, "kubelet": {
                "cpuManagerPolicy": "static", "reservedSystemCPUs": "0-1"}}],
            "kubelet": {"evictionSoft": {"memory.available": "1Gi"},
                        "evictionSoftGracePeriod": {"memory.available": "1m"}}}},
    ]
    # and the completed forms, where every field is present to be changed
    return user + [to_data(complete(parse(u))) for u in user]


VALID = _valid_specs()
SPECIAL = [
    "10.0.0.0/8", "0.0.0.0/0", "10.0.0.0/1", "10.1.0.0/30", "10.244.0.0/16", "10.96.0.0/12",
    "fd00::/64", "fd00::/108", "::/0", "192.0.2.1", "fd00:10:244::5", "10.96.0.10",
    "1.33.0", "1.38.0", "1.32.9", "1.35.4", "3-1", "0-1", "100Mi", "-1", "0", "", "1e99",
    "10%", "150%", "0%", "static", "none", "local", "aws", "baremetal", "external", "ipvs",
    "iptables", "verified", "eu-west-1", "eu-west-1a", "control-plane", "cp", "node",
    "memory.available", "cpu", "1m", "[red]", "a\nb",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 600), st.integers(-(2**70), 2**70),
    st.floats(), st.text(max_size=20), st.sampled_from(SPECIAL),
)
keys = st.one_of(st.text(max_size=8), st.sampled_from(SPECIAL))
values = st.one_of(
    scalars, scalars, scalars,
    st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=8),
)


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*prefix, i))


NUMBERS = st.one_of(
    st.integers(-2, 20), st.integers(0, 1000),
    st.sampled_from([0, 1, 2, 3, 5, 7, 110, 250, 251, 500, 501, 5000, 65535, 65536, 2**31,
                     8 * 1024**3, 64 * 1024**3 + 1]),
)


def _like(value) -> st.SearchStrategy:
    """A replacement of the same kind as ``value``, near what the model accepts."""
    if isinstance(value, bool):
        return st.one_of(st.booleans(), st.sampled_from([0, 1, "yes", "false", None]))
    if isinstance(value, int):
        return st.one_of(NUMBERS, st.sampled_from([True, str(value), float(value)]))
    if isinstance(value, str):
        return st.one_of(st.sampled_from(SPECIAL), st.text(max_size=12),
                         st.just(value + "0"), st.just(value[:-1]))
    return values


@st.composite
def mutated_specs(draw) -> dict:
    """A valid spec with one to three random changes: a value replaced by one of its kind
    or by anything, a key or list entry removed, an entry added."""
    data = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:  # everything was removed
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for k in path[:-1]:
            parent = parent[k]
        target = parent[path[-1]]
        op = draw(st.sampled_from(["like", "like", "like", "set", "delete", "add"]))
        if op == "like":
            parent[path[-1]] = draw(_like(target))
        elif op == "set":
            parent[path[-1]] = draw(values)
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(target, dict):
            target[draw(keys)] = draw(values)
        elif isinstance(target, list):
            target.append(copy.deepcopy(target[0]) if target and draw(st.booleans())
                          else draw(values))
    return data


def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Valid values three times in four: a spec reaches completion often enough to meet
    the whole-spec checks (capacity, overlaps, merged kubelet settings)."""
    return st.integers(0, 3).flatmap(lambda i: invalid if i == 3 else valid)


V4 = ["10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/28", "10.244.0.0/16", "10.244.0.0/23",
      "10.96.0.0/12", "10.96.0.0/24", "172.20.0.0/16", "192.168.0.0/24", "10.213.0.0/16"]
CIDR = mostly(st.sampled_from(V4), st.sampled_from(
    ["10.0.0.0/1", "10.1.0.0/30", "10.244.0.0/25", "fd00::/64", "10.0.0.1/8", 167772160, True]))
CIDR6 = mostly(st.sampled_from(["fd00:10:244::/56", "fd00:10:96::/108", "fd00:10:96::/112",
                                "fd00::/48"]),
               st.sampled_from(["fd00::/64", "fd00::/107", "10.0.0.0/8", 5]))
# hypothesis prefers small integers: the counts near a /24's 245 machine addresses are listed
COUNT = mostly(st.sampled_from([0, 1, 2, 3, 5, 100, 240, 244, 245, 246, 300, 499, 500]), NUMBERS)
GROUP_NAME = mostly(st.sampled_from(["node", "a", "b", "big"]),
                    st.sampled_from(["cp", "control-plane", "bastion", "Big", ""]))
HOST = st.fixed_dictionaries({
    "name": st.sampled_from(["h1", "h2", "h3", "h4", "h5", "h6"]),
    "address": mostly(st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3", "10.1.2.3",
                                       "fd00:10:244::7", "2001:db8::1"]),
                      st.sampled_from(["10.96.0.5", "x", 3232235521])),
})
HOSTS = st.lists(HOST, max_size=4)
QUANTITY = mostly(st.sampled_from(["100Mi", "1Gi", "500m", "1", "10%", "0%", "0.5Gi"]),
                  st.sampled_from(["0", "0m", "-1", "150%", "lots", 5]))
SIGNAL = mostly(st.sampled_from(["memory.available", "nodefs.available", "pid.available"]),
                st.just("memory.free"))
KUBELET = st.fixed_dictionaries({}, optional={
    "cpuManagerPolicy": mostly(st.sampled_from(["none", "static"]), st.just("dynamic")),
    "reservedSystemCPUs": mostly(st.sampled_from(["0", "0-1", "2,4-5"]),
                                 st.sampled_from(["3-1", "0,,1", "1-99999", ""])),
    "kubeReserved": st.dictionaries(mostly(st.sampled_from(["cpu", "memory"]), st.just("gpu")),
                                    QUANTITY, max_size=2),
    "systemReserved": st.dictionaries(st.sampled_from(["cpu", "pid"]), QUANTITY, max_size=2),
    "evictionHard": st.dictionaries(SIGNAL, QUANTITY, max_size=2),
    "evictionSoft": st.dictionaries(SIGNAL, QUANTITY, max_size=2),
    "evictionSoftGracePeriod": st.dictionaries(SIGNAL, mostly(st.just("1m"), st.just("soon")),
                                               max_size=2),
    "maxPods": mostly(st.integers(10, 250), NUMBERS),
})
GROUP = st.fixed_dictionaries({"name": GROUP_NAME}, optional={
    "count": COUNT, "hosts": HOSTS, "kubelet": KUBELET})


@st.composite
def built_specs(draw) -> dict:
    """A user spec of a few fields, mostly valid, each near the limits the model sets."""
    spec = draw(st.fixed_dictionaries({}, optional={
        "cloud": st.sampled_from(["local", "local", "baremetal", "aws"]),
        "kubernetesVersion": mostly(st.sampled_from(["1.33.0", "1.35.4", "1.37.99"]),
                                    st.sampled_from(["1.32.9", "1.38.0", "1.35"])),
        "controlPlane": st.fixed_dictionaries({}, optional={
            "count": mostly(st.sampled_from([1, 3, 5]), NUMBERS), "hosts": HOSTS,
            "apiLoadBalancer": st.fixed_dictionaries({"type": st.sampled_from(
                ["none", "local", "external"])})}),
        "etcd": st.fixed_dictionaries({}, optional={
            "members": mostly(st.sampled_from([1, 3, 5]), NUMBERS), "hosts": HOSTS,
            "tuning": st.fixed_dictionaries({"quotaBackendBytes": mostly(
                st.integers(2**20, 64 * 2**30), NUMBERS)})}),
        "nodeGroups": st.lists(GROUP, max_size=3),
        "networking": st.fixed_dictionaries({}, optional={
            "podCIDR": CIDR, "serviceCIDR": CIDR,
            "dualStack": st.fixed_dictionaries({"enabled": st.booleans()}, optional={
                "podCIDRv6": CIDR6, "serviceCIDRv6": CIDR6})}),
        "kubelet": KUBELET,
        "local": st.fixed_dictionaries({"subnet": CIDR}),
        "aws": st.fixed_dictionaries({"region": st.just("eu-west-1")}, optional={"cidr": CIDR}),
        "dns": st.fixed_dictionaries({}, optional={"clusterDNS": mostly(
            st.just("10.96.0.10"), st.sampled_from(["10.200.0.10", 5]))}),
    }))
    return {"metadata": {"name": "p"}, "spec": spec}


@st.composite
def sized_specs(draw) -> dict:
    """A valid spec but for its sizes: machines against the local subnet, the pod range and
    Kubernetes' limits."""
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4))
    spec: dict = {"controlPlane": {"count": draw(st.sampled_from([1, 3, 5]))},
                  "nodeGroups": [{"name": n, "count": draw(COUNT)} for n in names]}
    if draw(st.booleans()):
        spec["local"] = {"subnet": draw(st.sampled_from(
            ["10.1.0.0/16", "10.1.0.0/24", "10.1.0.0/26", "10.1.0.0/28"]))}
    if draw(st.booleans()):
        spec["networking"] = {"podCIDR": draw(st.sampled_from(
            ["10.244.0.0/16", "10.244.0.0/22", "10.244.0.0/24", "10.0.0.0/8"]))}
    if draw(st.integers(0, 3)) == 0:
        spec.update(cloud="aws", aws={"region": "eu-west-1"})
    return {"metadata": {"name": "p"}, "spec": spec}


specs = st.one_of(mutated_specs(), built_specs(), sized_specs())


def _check_lines(err: SpecError) -> None:
    assert err.problems
    for line in err.lines():
        assert "\n" not in line and "\r" not in line, line
        assert not INTERNALS.search(line), line


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs)
def test_completion_succeeds_or_raises_spec_error(data):
    try:
        completed = complete(parse(data))
    except SpecError as err:
        _check_lines(err)
        return
    # what completes is a spec: it reads back and completes to itself
    assert dumps(complete(loads(dumps(completed)))) == dumps(completed)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs)
def test_the_cli_exits_0_or_2_never_with_a_traceback(data):
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "spec.yaml"
        f.write_text(yaml.safe_dump(data))
        for args in (["create", "cluster", "p", "--dry-run", "-f", str(f)],
                     ["spec", "render", "--out", str(Path(tmp) / "out"), "-f", str(f)]):
            r = CliRunner().invoke(cli, ["--state", str(Path(tmp) / "store"), *args])
            assert r.exit_code in (0, 2), (args, r.output, r.exception)
            assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
            assert "Traceback" not in r.output
            if r.exit_code == 2:
                assert r.output.splitlines()[-1] == "nothing was changed"
                assert not INTERNALS.search(r.output), r.output
        assert not (Path(tmp) / "store").exists()
