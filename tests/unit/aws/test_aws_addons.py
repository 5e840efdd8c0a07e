"""The EBS CSI default StorageClass shipped to clusters on AWS."""

from __future__ import annotations

import kubernetes_validate
import yaml

from kpyops.clouds.aws.addons import addon_manifests


def test_default_storage_class_allows_expansion_and_encrypts():
    manifests = addon_manifests()
    sc = yaml.safe_load(manifests["storageclass-ebs-gp3.yaml"])
    assert sc["kind"] == "StorageClass"
    assert sc["provisioner"] == "ebs.csi.aws.com"
    assert sc["allowVolumeExpansion"] is True
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["parameters"] == {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"}
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"


def test_every_addon_is_a_valid_kubernetes_object():
    for text in addon_manifests().values():
        for doc in yaml.safe_load_all(text):
            kubernetes_validate.validate(doc, "1.31", strict=True)  # raises when invalid
