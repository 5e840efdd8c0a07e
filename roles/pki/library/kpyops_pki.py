#!/usr/bin/python
"""Ansible module: keep the cluster PKI folder on the control machine in the wanted state."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kpyops_pki
short_description: Issue, keep or renew the cluster's CAs and certificates in a local folder
description:
  - Runs on the control machine (delegate_to localhost) with the Python that has kpyops.
  - A valid certificate is never re-issued. A leaf is (re)issued when missing, when its key or
    CA changed, when its subject, usages or SANs differ, or when less than I(renew_fraction)
    of its life is left. CAs are created when missing and never rotated.
options:
  dir: {description: PKI folder, type: path, required: true}
  cas:
    description: CAs, each C(name) (file stem) and C(cn).
    type: list
    elements: dict
    required: true
  certs:
    description: Leaves, each C(name), C(ca), C(cn), C(orgs), C(usages) (server, client), C(dns), C(ips).
    type: list
    elements: dict
    required: true
  service_account: {description: File stem of the service-account key pair, type: str, default: sa}
  key_type: {description: rsa or ecdsa, type: str, default: rsa}
  key_size: {description: RSA bits or ECDSA curve size, type: int, default: 2048}
  ca_days: {description: CA validity in days, type: int, default: 3650}
  cert_days: {description: Leaf validity in days, type: int, default: 365}
  renew_fraction: {description: Renew a leaf with less than this fraction of its life left, type: float, default: 0.3333}
  force: {description: Leaf names to renew now, type: list, elements: str, default: []}
"""

RETURN = r"""
actions: {description: What was (or in check mode would be) done, with the reason, type: list, returned: always}
fingerprints: {description: SHA-256 fingerprint of every certificate, type: dict, returned: always}
warnings: {description: CA expiry warnings, type: list, returned: always}
"""

from pathlib import Path  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "cas": {"type": "list", "elements": "dict", "required": True},
            "certs": {"type": "list", "elements": "dict", "required": True},
            "service_account": {"type": "str", "default": "sa"},
            "key_type": {"type": "str", "default": "rsa", "choices": ["rsa", "ecdsa"]},
            "key_size": {"type": "int", "default": 2048},
            "ca_days": {"type": "int", "default": 3650},
            "cert_days": {"type": "int", "default": 365},
            "renew_fraction": {"type": "float", "default": 0.3333},
            "force": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    try:
        from kpyops.pki.ensure import CaSpec, CertSpec, Settings, ensure_pki
    except ImportError as e:
        module.fail_json(
            msg=f"kpyops is not importable by {module._name}'s Python ({e}): run the playbook "
            "from kpyops' environment, the PKI is built on the control machine"
        )
    p = module.params
    try:
        result = ensure_pki(
            Path(p["dir"]),
            [CaSpec(c["name"], c["cn"]) for c in p["cas"]],
            [CertSpec.from_dict(c) for c in p["certs"]],
            service_account=p["service_account"] or None,
            settings=Settings(
                key_type=p["key_type"],
                key_size=p["key_size"],
                ca_days=p["ca_days"],
                cert_days=p["cert_days"],
                renew_fraction=p["renew_fraction"],
            ),
            check=module.check_mode,
            force=frozenset(p["force"]),
        )
    except (ValueError, KeyError, OSError) as e:
        module.fail_json(msg=str(e))
    actions = [{"name": a.name, "action": a.action, "reason": a.reason} for a in result.actions]
    for w in result.warnings:
        module.warn(w)
    diff = {
        "before": "".join(f"{a['name']}: present\n" for a in actions if a["action"] == "renew"),
        "after": "".join(f"{a['name']}: {a['action']} ({a['reason']})\n" for a in actions),
    }
    module.exit_json(
        changed=result.changed,
        actions=actions,
        fingerprints=result.fingerprints,
        warnings_list=result.warnings,
        diff=diff,
    )


if __name__ == "__main__":
    main()
