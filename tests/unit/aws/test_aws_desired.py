"""What a spec asks of AWS, read from the pure model (no calls)."""

from __future__ import annotations

import ipaddress

from kpyops.clouds.aws.compute import Instance, LaunchTemplate
from kpyops.clouds.aws.desired import Image, desired_resources, subnet_cidrs
from kpyops.clouds.aws.loadbalancer import elb_name
from kpyops.clouds.aws.network import NatGateway, Subnet
from kpyops.clouds.aws.resource import Context, Ref
from kpyops.clouds.aws.security import SecurityGroupRules, parse_rule, permission, rule_text
from kpyops.spec.complete import complete
from kpyops.spec.io import parse

IMAGE = Image("ami-12345678", "/dev/xvda")


def build(**aws):
    spec = {"metadata": {"name": "demo"}, "spec": {
        "cloud": "aws", "controlPlane": {"count": 3},
        "nodeGroups": [{"name": "node", "count": 2}, {"name": "big", "count": 1, "instanceType": "m6i.xlarge"}],
        "aws": {"region": "eu-west-1", "zones": ["eu-west-1a", "eu-west-1b"],
                "adminCIDRs": ["203.0.113.0/24"], "sshCIDRs": ["198.51.100.7/32"], **aws}}}
    return desired_resources(complete(parse(spec)), IMAGE, lambda: "ssh-ed25519 AAAA test")


class FakeSession:
    region = "eu-west-1"


def rules(resources, group) -> list[str]:
    r = next(x for x in resources if isinstance(x, SecurityGroupRules) and x.spec["group"] == group)
    ctx = Context(FakeSession(), "demo")  # type: ignore[arg-type]
    ctx.ids.update({"sg-control-plane": "sg-cp", "sg-nodes": "sg-nodes", "sg-etcd": "sg-etcd",
                    "sg-bastion": "sg-bastion"})
    return r.desired(ctx)["ingress"]


def test_logical_names_are_unique():
    res = build()
    names = [r.name for r in res]
    assert len(names) == len(set(names))


def test_machines_spread_over_zones_with_their_instance_types():
    res = build()
    instances = {r.name: r for r in res if isinstance(r, Instance)}
    assert sorted(instances) == ["big-1", "cp-1", "cp-2", "cp-3", "node-1", "node-2"]
    assert [instances[f"cp-{i}"].spec["zone"] for i in (1, 2, 3)] == ["eu-west-1a", "eu-west-1b", "eu-west-1a"]
    lts = {r.name: r.spec["instance_type"] for r in res if isinstance(r, LaunchTemplate)}
    assert lts == {"lt-control-plane": "t3.medium", "lt-node": "t3.medium", "lt-big": "m6i.xlarge"}


def test_launch_templates_require_imdsv2_hop_limit_1_and_encrypted_gp3():
    lt = next(r for r in build(rootVolumeSize=80) if isinstance(r, LaunchTemplate))
    ctx = Context(FakeSession(), "demo")  # type: ignore[arg-type]
    data = lt._data(ctx)
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert data["BlockDeviceMappings"][0]["Ebs"] == {
        "VolumeSize": 80, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}


def test_etcd_is_reachable_only_from_control_planes():
    res = build()
    assert rules(res, "sg-etcd") == ["tcp:2379-2380 from sg-cp"]
    # The control planes' own group lets nodes in everywhere except the etcd ports
    cp = rules(res, "sg-control-plane")
    for text in cp:
        proto, lo, hi, source = parse_rule(text)
        if source == "sg-nodes" and proto == "tcp":
            assert hi < 2379 or lo > 2380, text
    assert not any("0.0.0.0/0" in r for r in cp)


def test_api_only_from_admin_cidrs_nodes_and_lb_subnets_and_ssh_only_from_ssh_cidrs():
    res = build()
    cp = rules(res, "sg-control-plane")
    api_sources = {parse_rule(r)[3] for r in cp if parse_rule(r)[1] <= 6443 <= parse_rule(r)[2]
                   or parse_rule(r)[0] == "-1"}
    assert api_sources == {"203.0.113.0/24", "sg-nodes", "sg-cp", "172.20.0.0/20", "172.20.16.0/20"}
    ssh = {parse_rule(r)[3] for r in cp + rules(res, "sg-nodes") if parse_rule(r)[1:3] == (22, 22)}
    assert ssh == {"198.51.100.7/32"}


def test_private_subnets_add_nat_per_zone_and_a_bastion():
    res = build(privateSubnets=True)
    assert sorted(r.name for r in res if isinstance(r, NatGateway)) == ["nat-eu-west-1a", "nat-eu-west-1b"]
    cp1 = next(r for r in res if r.name == "cp-1")
    assert cp1.spec["subnet"] == Ref("subnet-private-eu-west-1a")
    assert any(r.name == "bastion" for r in res)
    assert rules(res, "sg-bastion") == ["tcp:22 from 198.51.100.7/32"]
    ssh = {parse_rule(r)[3] for r in rules(res, "sg-nodes") if parse_rule(r)[1:3] == (22, 22)}
    assert ssh == {"sg-bastion"}


def test_subnets_do_not_move_when_a_zone_is_added():
    net = ipaddress.IPv4Network("172.20.0.0/16")
    one = subnet_cidrs(net, ["a"])
    three = subnet_cidrs(net, ["a", "b", "c"])
    assert three["a"] == one["a"]
    cidrs = [c for pair in three.values() for c in pair]
    assert len(set(cidrs)) == 6
    nets = [ipaddress.IPv4Network(c) for c in cidrs]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_public_subnets_map_public_addresses_private_ones_do_not():
    subnets = {r.name: r.spec["public"] for r in build(privateSubnets=True) if isinstance(r, Subnet)}
    assert subnets["subnet-public-eu-west-1a"] is True
    assert subnets["subnet-private-eu-west-1a"] is False


def test_elb_names_fit_32_characters_and_stay_distinct():
    long = "a" * 30
    assert len(elb_name(long, "api")) <= 32
    assert elb_name(long, "api") != elb_name("a" * 29 + "b", "api")
    assert elb_name("demo", "api") == "demo-api"


def test_rule_text_round_trips_to_ec2_permissions():
    for text in ["tcp:6443 from 10.0.0.0/8", "udp:1-65535 from sg-1", "all:all from sg-2",
                 "ipip:all from sg-3"]:
        proto, lo, hi, src = parse_rule(text)
        p = permission(proto, lo, hi, src)
        pairs = [g["GroupId"] for g in p.get("UserIdGroupPairs", [])]
        cidrs = [r["CidrIp"] for r in p.get("IpRanges", [])]
        assert rule_text(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), (pairs + cidrs)[0]) == text


def test_bastion_ssh_options_use_the_cluster_key_once_ansible_templates_them():
    import jinja2

    from kpyops.clouds.aws.inventory import bastion_args

    text = bastion_args("admin", "198.51.100.9")
    env = jinja2.Environment()
    with_key = env.from_string(text).render(
                                            ansible_ssh_private_key_file="/st/ssh/id_ed25519")
    assert with_key == ('-o ProxyCommand="ssh -W %h:%p -q -o StrictHostKeyChecking=accept-new '
                        '-i /st/ssh/id_ed25519 admin@198.51.100.9"')
    assert env.from_string(text).render() == (
        '-o ProxyCommand="ssh -W %h:%p -q -o StrictHostKeyChecking=accept-new admin@198.51.100.9"')
