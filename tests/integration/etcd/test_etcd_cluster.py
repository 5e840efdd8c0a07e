"""etcd on three real test hosts: TLS, quorum, idempotence, renewal, backup/restore, replacement.

The tests share one lab and run in file order (each leaves the cluster healthy for the next).
Run: sudo .venv/bin/pytest -m integration tests/integration/etcd -x
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

import pytest
from etcdlab import EtcdLab

from kpyops.pki import x509 as px

pytestmark = pytest.mark.integration

CONVERGE = ("playbooks/pki.yml", "playbooks/etcd.yml")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with EtcdLab.running("kpe-etcd", tmp_path_factory.mktemp("etcd"), "10.214.249.0/24") as lab:
        yield lab


def converge(lab: EtcdLab) -> list:
    return [lab.playbook(p).assert_ok() for p in CONVERGE]


def pki_fingerprints(lab: EtcdLab) -> dict[str, str]:
    """SHA-256 of every file of the PKI folder (certificates and keys)."""
    return {
        str(p.relative_to(lab.pki)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lab.pki.rglob("*"))
        if p.is_file()
    }


def host_fingerprints(lab: EtcdLab) -> dict[str, str]:
    out = {}
    for host in lab.hosts:
        sums = lab.sh(host, "sha256sum /etc/etcd/pki/* /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/*.key").stdout
        for line in sums.splitlines():
            digest, path = line.split()
            out[f"{host}:{path}"] = digest
    return out


def served_cert(lab: EtcdLab, target: str, via: str) -> px.x509.Certificate:
    """The certificate target's client port presents, fetched from another member."""
    addr = lab.addresses[target]
    pem = lab.sh(
        via,
        f"openssl s_client -connect {addr}:2379 -CAfile /etc/etcd/pki/ca.crt "
        "-cert /etc/etcd/pki/healthcheck-client.crt -key /etc/etcd/pki/healthcheck-client.key "
        "</dev/null 2>/dev/null | openssl x509",
    ).stdout
    return px.x509.load_pem_x509_certificate(pem.encode())


def wait_healthy(lab: EtcdLab, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = lab.etcdctl(lab.hosts[0], "endpoint health", endpoints=lab.endpoints(), check=False)
        if r.returncode == 0:
            return
        assert time.monotonic() < deadline, r.stdout + r.stderr
        time.sleep(2)


def test_converge_builds_a_tls_cluster_and_a_second_converge_changes_nothing(lab):
    first = converge(lab)
    assert sum(first[1].changed().values()) > 0
    before_pki, before_hosts = pki_fingerprints(lab), host_fingerprints(lab)
    second = converge(lab)
    for run in second:
        run.assert_no_change()
    assert pki_fingerprints(lab) == before_pki, "a re-run re-issued PKI files"
    assert host_fingerprints(lab) == before_hosts, "a re-run changed certificates on the hosts"


def test_files_have_safe_owners_and_modes(lab):
    host = lab.hosts[0]
    stat = lambda path: lab.sh(host, f"stat -c '%a %U:%G' {path}").stdout.split()  # noqa: E731
    assert stat("/var/lib/etcd") == ["700", "etcd:etcd"]
    assert stat("/etc/etcd/etcd.env") == ["600", "root:root"]
    assert stat("/etc/etcd/pki/ca.crt") == ["644", "root:root"]
    assert stat("/etc/etcd/pki/server.key") == ["600", "etcd:etcd"]
    assert stat("/etc/etcd/pki/healthcheck-client.key") == ["600", "root:root"]
    assert stat("/etc/kubernetes/pki/apiserver.key") == ["600", "root:root"]
    assert stat("/etc/kubernetes/pki/apiserver.crt") == ["644", "root:root"]
    assert lab.sh(host, "ps -o user= -C etcd").stdout.strip() == "etcd"
    # the etcd CA is not the Kubernetes CA (CIS 2.7)
    assert (lab.pki / "etcd/ca.crt").read_bytes() != (lab.pki / "ca.crt").read_bytes()


def test_cluster_is_healthy_over_tls_and_refuses_clients_without_a_certificate(lab):
    host = lab.hosts[0]
    r = lab.etcdctl(host, "endpoint health --cluster")
    assert r.stdout.count("is healthy") + r.stderr.count("is healthy") == 3
    addr = lab.addresses[lab.hosts[1]]
    no_cert = lab.sh(host, f"curl -sS --max-time 5 --cacert /etc/etcd/pki/ca.crt https://{addr}:2379/health",
                     check=False)
    assert no_cert.returncode != 0, no_cert.stdout
    plain = lab.sh(host, f"curl -sS --max-time 5 http://{addr}:2379/health", check=False)
    assert plain.returncode != 0 or "health" not in plain.stdout, plain.stdout
    with_cert = lab.sh(
        host,
        f"curl -sS --max-time 5 --cacert /etc/etcd/pki/ca.crt --cert /etc/etcd/pki/healthcheck-client.crt "
        f"--key /etc/etcd/pki/healthcheck-client.key https://{addr}:2379/health",
    )
    assert json.loads(with_cert.stdout)["health"] == "true"
    # a certificate from another CA (the Kubernetes CA's admin) is refused too
    other = lab.sh(
        host,
        f"curl -sS --max-time 5 --cacert /etc/etcd/pki/ca.crt --cert /etc/kubernetes/pki/admin.crt "
        f"--key /etc/kubernetes/pki/admin.key https://{addr}:2379/health",
        check=False,
    )
    assert other.returncode != 0, other.stdout


def test_one_member_stopped_still_serves_reads_and_writes(lab):
    a, b, c = lab.hosts
    lab.etcdctl(a, "put /quorum before")
    lab.sh(c, "systemctl stop etcd")
    try:
        two = ",".join(f"https://{lab.addresses[h]}:2379" for h in (a, b))
        lab.etcdctl(b, "put /quorum during", endpoints=two)
        assert lab.etcdctl(a, "get /quorum --print-value-only", endpoints=two).stdout.strip() == "during"
    finally:
        lab.sh(c, "systemctl start etcd")
    wait_healthy(lab)
    assert lab.etcdctl(c, "get /quorum --print-value-only").stdout.strip() == "during"


def test_a_certificate_near_expiry_is_renewed_by_the_next_converge(lab):
    host = lab.hosts[0]
    name = f"etcd/server-{host}"
    crt, key = lab.pki / f"{name}.crt", lab.pki / f"{name}.key"
    old = px.load_cert(crt)
    now = px.utcnow()
    # Same key, subject and SANs, signed by the etcd CA, but only 10 days of a year left.
    short = px.issue(
        ca_cert=px.load_cert(lab.pki / "etcd/ca.crt"), ca_key=px.load_key(lab.pki / "etcd/ca.key"),
        key=px.load_key(key), subject=px.subject_of(old), usages=px.usages_of(old),
        sans=px.Sans.from_cert(old), days=10, now=now, not_before=now - dt.timedelta(days=355),
    )
    crt.write_bytes(px.cert_pem(short))
    before = pki_fingerprints(lab)
    converge(lab)
    renewed = px.load_cert(crt)
    assert px.fingerprint(renewed) != px.fingerprint(short)
    assert renewed.not_valid_after_utc - now > dt.timedelta(days=300)
    after = pki_fingerprints(lab)
    assert {k for k in before if before[k] != after[k]} == {f"{name}.crt"}, "only that cert changes"
    # etcd was restarted (rolling) and now serves the renewed certificate
    assert px.fingerprint(served_cert(lab, host, via=lab.hosts[1])) == px.fingerprint(renewed)
    wait_healthy(lab)


def test_kpyops_certs_check_and_renew(lab, tmp_path):
    from click.testing import CliRunner

    from kpyops.cli.certs import command as certs
    from kpyops.cli.main import cli

    if "certs" not in cli.commands:
        cli.add_command(certs)
    # a local state store whose cluster folder is the lab's
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / lab.name).symlink_to(lab.state)
    runner = CliRunner()
    check = runner.invoke(cli, ["--state", str(tmp_path), "certs", "check", lab.name])
    assert check.exit_code == 0, check.output
    for name in ("ca", "etcd/ca", "front-proxy-ca", "apiserver", f"etcd/peer-{lab.hosts[2]}"):
        assert any(line.split()[0] == name for line in check.stdout.splitlines()[1:]), name
    target = f"etcd/peer-{lab.hosts[2]}"
    old = px.fingerprint(px.load_cert(lab.pki / f"{target}.crt"))
    renew = runner.invoke(cli, ["--state", str(tmp_path), "certs", "renew", lab.name, target])
    assert renew.exit_code == 0, renew.output
    assert px.fingerprint(px.load_cert(lab.pki / f"{target}.crt")) != old
    new = lab.sh(lab.hosts[2], "openssl x509 -in /etc/etcd/pki/peer.crt -outform DER | sha256sum").stdout.split()[0]
    assert new == px.fingerprint(px.load_cert(lab.pki / f"{target}.crt"))
    wait_healthy(lab)


def test_backup_wipe_restore_brings_the_value_back(lab):
    a = lab.hosts[0]
    lab.etcdctl(a, "put /canary restored-value")
    lab.playbook("playbooks/etcd-backup.yml").assert_ok()
    snaps = sorted((lab.state / "backups/etcd").glob("etcd-snapshot-*.db.enc"))
    assert snaps, "no encrypted snapshot copied to the state store"
    meta = json.loads(snaps[-1].with_name(snaps[-1].name.removesuffix(".db.enc") + ".json").read_text())
    assert meta["encrypted"] is True and meta["status"]["totalKey"] > 0
    assert b"restored-value" not in snaps[-1].read_bytes(), "snapshot is not encrypted"
    lab.etcdctl(a, "put /after-backup gone")
    for host in lab.hosts:
        lab.sh(host, "systemctl stop etcd && rm -rf /var/lib/etcd/member")
    lab.playbook("playbooks/etcd-restore.yml").assert_ok()
    wait_healthy(lab)
    assert lab.etcdctl(a, "get /canary --print-value-only").stdout.strip() == "restored-value"
    assert lab.etcdctl(a, "get /after-backup --print-value-only").stdout.strip() == ""
    # the restored cluster converges without change
    lab.playbook("playbooks/etcd.yml").assert_no_change()


def test_scheduled_backup_keeps_only_the_newest_snapshots(lab):
    host = lab.hosts[0]
    for _ in range(5):
        lab.sh(host, "/usr/local/sbin/etcd-backup --any-member && sleep 1")
    kept = lab.sh(host, "ls /var/backups/etcd/ | grep -c '^etcd-snapshot-.*\\.db\\.enc$'").stdout.strip()
    assert kept == "3"  # spec.etcd.backup.retain in the lab
    # only the leader takes the timer's snapshot
    outputs = [lab.sh(h, "/usr/local/sbin/etcd-backup").stdout for h in lab.hosts]
    assert sum("not the leader" in o for o in outputs) == 2


def test_a_destroyed_member_is_replaced(lab):
    victim = lab.hosts[1]
    lab.etcdctl(lab.hosts[0], "put /before-replace yes")
    lab.destroy_host(victim)
    lab.start_host(victim)
    lab.wait_booted(victim)
    # a plain converge refuses to start an empty member beside the running cluster
    refused = lab.playbook("playbooks/etcd.yml")
    assert refused.rc != 0 and "replace-etcd-member.yml" in refused.output
    lab.playbook("playbooks/replace-etcd-member.yml", extra_vars={"etcd_replace": victim}).assert_ok()
    members = json.loads(lab.etcdctl(lab.hosts[0], "member list -w json").stdout)["members"]
    assert sorted(m["name"] for m in members) == sorted(lab.hosts)
    assert not any(m.get("isLearner") for m in members)
    r = lab.etcdctl(lab.hosts[0], "endpoint health", endpoints=lab.endpoints())
    assert (r.stdout + r.stderr).count("is healthy") == 3
    assert lab.etcdctl(victim, "get /before-replace --print-value-only").stdout.strip() == "yes"
    # nothing left to do: a second run changes nothing; once the new host has its
    # Kubernetes certificates (pki.yml, as in cluster.yml), a converge changes nothing
    lab.playbook("playbooks/replace-etcd-member.yml", extra_vars={"etcd_replace": victim}).assert_no_change()
    lab.playbook("playbooks/pki.yml").assert_ok()
    for pb in CONVERGE:
        lab.playbook(pb).assert_no_change()
