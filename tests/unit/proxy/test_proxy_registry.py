"""One registry of proxy modes and IPVS schedulers (kpyops.proxy.config): the spec, the CLI,
the IPVS dataplane and the kpyops_proxy role all say the same."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml

from kpyops.cli.cluster import create_cluster
from kpyops.proxy import config
from kpyops.proxy.ipvs import netlink
from kpyops.spec import SpecError, complete, parse
from kpyops.spec.model import KubeProxy

ROLE_SPECS = Path(__file__).resolve().parents[3] / "roles/kpyops_proxy/meta/argument_specs.yml"


def role_options() -> dict:
    return yaml.safe_load(ROLE_SPECS.read_text())["argument_specs"]["main"]["options"]


def test_the_role_takes_exactly_the_registrys_modes_and_schedulers():
    options = role_options()
    assert options["kpyops_proxy_mode"]["choices"] == list(config.SUPPORTED_MODES)
    assert options["kpyops_proxy_scheduler"]["choices"] == list(config.IPVS_SCHEDULERS)


def test_the_spec_the_cli_and_the_dataplane_take_the_registrys_values():
    assert KubeProxy().mode == config.DEFAULT_MODE
    option = next(p for p in create_cluster.params if p.name == "proxy_mode")
    assert isinstance(option.type, click.Choice) and tuple(option.type.choices) == config.SUPPORTED_MODES
    assert netlink.SCHEDULERS == config.IPVS_SCHEDULERS
    for mode in config.SUPPORTED_MODES:
        for scheduler in config.IPVS_SCHEDULERS:
            c = complete(parse({"metadata": {"name": "demo"}, "spec": {
                "kubeProxy": {"mode": mode, "scheduler": scheduler}}}))
            assert (c.spec.kube_proxy.mode, c.spec.kube_proxy.scheduler) == (mode, scheduler)


@pytest.mark.parametrize(("field", "value"), [("mode", "userspace"), ("scheduler", "fo")])
def test_values_outside_the_registry_are_refused_by_the_spec(field, value):
    with pytest.raises(SpecError, match=f"spec.kubeProxy.{field}"):
        complete(parse({"metadata": {"name": "demo"}, "spec": {"kubeProxy": {field: value}}}))


def test_each_mode_has_its_own_sync_periods():
    import dataclasses

    for mode in config.SUPPORTED_MODES:
        cfg = config.ProxyConfig(mode=mode)
        mine = dataclasses.replace(getattr(cfg, mode), sync_period=7.0, min_sync_period=0.5)
        cfg = dataclasses.replace(cfg, **{mode: mine})
        assert (cfg.sync_period, cfg.min_sync_period) == (7.0, 0.5)
