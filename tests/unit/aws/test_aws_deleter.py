"""The deleter's order, waves, waiting and time limit, on an in-memory fake cloud."""

from __future__ import annotations

import threading

import pytest

from kpyops.clouds.aws import deleter, planner
from kpyops.clouds.aws.errors import DependencyError, MissingPermission
from kpyops.clouds.aws.resource import Found


class FakeCloud:
    """Objects by id: kind and state. Instances take one scan to finish terminating."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.calls: list[tuple[int, str]] = []  # (wave, id)
        self.wave = 0
        self.stuck: dict[str, Exception] = {}
        self.lock = threading.Lock()

    def add(self, kind: str, oid: str):
        self.objects[oid] = {"kind": kind, "state": ""}

    def kind(self, name: str, after: tuple[str, ...] = ()):
        cloud = self

        class Kind:
            kind = name
            delete_after = after

            @classmethod
            def scan(cls, ctx):
                out = []
                for oid, o in list(cloud.objects.items()):
                    if o["kind"] != name:
                        continue
                    if o["state"] == "gone-next-scan":
                        o["state"] = "shutting-down"
                    elif o["state"] == "shutting-down":
                        del cloud.objects[oid]
                        continue
                    out.append(Found(name, oid, oid, state=o["state"]))
                return out

            @classmethod
            def delete(cls, ctx, found):
                with cloud.lock:
                    cloud.calls.append((cloud.wave, found.id))
                if found.id in cloud.stuck:
                    raise cloud.stuck[found.id]
                if name == "instance":
                    cloud.objects[found.id]["state"] = "gone-next-scan"
                else:
                    del cloud.objects[found.id]

            @classmethod
            def blockers(cls, ctx, found):
                return "in use by eni-1 (someone else's)" if name == "vpc" else ""

        return Kind


@pytest.fixture
def fake(monkeypatch):
    cloud = FakeCloud()
    kinds = {
        "instance": cloud.kind("instance"),
        "security-group": cloud.kind("security-group", ("instance",)),
        "subnet": cloud.kind("subnet", ("instance",)),
        "vpc": cloud.kind("vpc", ("instance", "security-group", "subnet")),
    }
    monkeypatch.setattr(deleter, "SCANNED", kinds)
    monkeypatch.setattr(planner, "SCANNED", kinds)
    real_sleep = deleter.time.sleep

    def next_wave(_seconds):
        cloud.wave += 1
        real_sleep(0)

    monkeypatch.setattr(deleter.time, "sleep", next_wave)
    for kind, oid in [("instance", "i-1"), ("instance", "i-2"), ("security-group", "sg-1"),
                      ("subnet", "subnet-1"), ("vpc", "vpc-1")]:
        cloud.add(kind, oid)
    return cloud


def targets(fake):
    return planner.scan(None, tuple(deleter.SCANNED))


def test_dependency_order_in_parallel_waves(fake):
    deleter.delete_found(None, targets(fake), timeout=30)
    assert fake.objects == {}
    wave = {oid: w for w, oid in fake.calls}
    assert wave["i-1"] == wave["i-2"] == 0  # together
    # groups and subnets only once the machines are really gone, then the VPC
    assert wave["sg-1"] == wave["subnet-1"] > wave["i-1"] + 1
    assert wave["vpc-1"] > wave["sg-1"]
    assert sorted(oid for _, oid in fake.calls) == ["i-1", "i-2", "sg-1", "subnet-1", "vpc-1"]


def test_a_blocked_resource_is_named_and_the_delete_stops(fake):
    fake.stuck["vpc-1"] = DependencyError("ec2:DeleteVpc: DependencyViolation: has dependencies",
                                          code="DependencyViolation")
    with pytest.raises(deleter.DeleteTimeout) as err:
        deleter.delete_found(None, targets(fake), timeout=0.2, interval=0.05)
    text = str(err.value)
    assert "1 resources left" in text
    assert "blocked by vpc vpc-1 (vpc-1): ec2:DeleteVpc: DependencyViolation" in text
    assert "in use by eni-1 (someone else's)" in text
    assert list(fake.objects) == ["vpc-1"]


def test_a_missing_permission_stops_at_once(fake):
    fake.stuck["sg-1"] = MissingPermission("missing permission ec2:DeleteSecurityGroup",
                                           code="UnauthorizedOperation")
    with pytest.raises(MissingPermission, match="ec2:DeleteSecurityGroup"):
        deleter.delete_found(None, targets(fake), timeout=30)
    assert "vpc-1" not in [oid for _, oid in fake.calls]
