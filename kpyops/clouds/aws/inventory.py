"""The inventory's hosts, from the instances tagged for the cluster."""

from __future__ import annotations

from kpyops.clouds.aws.compute import TAG_GROUP, TAG_ROLE
from kpyops.clouds.aws.resource import Context, tag_dict
from kpyops.clouds.base import InventoryHost

GROUPS = {"control-plane": ["kube_control_plane", "etcd"], "node": ["kube_node"]}


def bastion_args(user: str, address: str) -> str:
    """SSH options reaching a machine through the bastion with the cluster's own key (a
    ProxyJump would use the default key). Ansible templates the key path in."""
    key = "{% if ansible_ssh_private_key_file is defined %} -i {{ ansible_ssh_private_key_file }}{% endif %}"
    return (f'-o ProxyCommand="ssh -W %h:%p -q -o StrictHostKeyChecking=accept-new{key} '
            f'{user}@{address}"')


def running_instances(ctx: Context) -> list[dict]:
    filters = [*ctx.owned_filters(), {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    out = []
    for r in ctx.pages("ec2", "describe_instances", "Reservations", Filters=filters):
        out += r["Instances"]
    return out


def inventory_hosts(ctx: Context, *, ssh_user: str, private: bool) -> list[InventoryHost]:
    """Control planes and nodes with their private address; SSH goes to the public address,
    or through the bastion when the machines are in private subnets."""
    instances = running_instances(ctx)
    bastion = next((i for i in instances if tag_dict(i.get("Tags")).get(TAG_ROLE) == "bastion"), None)
    jump = None
    machines = [i for i in instances if tag_dict(i.get("Tags")).get(TAG_ROLE) in GROUPS]
    if private and machines:
        if bastion is None or not bastion.get("PublicIpAddress"):
            raise RuntimeError(f"cluster {ctx.cluster} has private subnets but no running bastion "
                               "with a public address: run `kpyops update cluster --yes` first")
        jump = bastion_args(ssh_user, bastion["PublicIpAddress"])
    hosts = []
    for i in machines:
        tags = tag_dict(i.get("Tags"))
        role = tags[TAG_ROLE]
        address = i.get("PrivateIpAddress")
        ssh_host = address if private else (i.get("PublicIpAddress") or address)
        host_vars: dict[str, object] = {
            "kpyops_instance_id": i["InstanceId"],
            "kpyops_zone": i.get("Placement", {}).get("AvailabilityZone"),
        }
        if tags.get(TAG_GROUP):
            host_vars["kpyops_node_group"] = tags[TAG_GROUP]
        if jump:
            host_vars["ansible_ssh_common_args"] = jump
        hosts.append(InventoryHost(
            name=tags.get("Name", i["InstanceId"]), address=address, ssh_host=ssh_host,
            groups=list(GROUPS[role]), vars=host_vars,
        ))
    return sorted(hosts, key=lambda h: (h.groups != GROUPS["control-plane"], h.name))
