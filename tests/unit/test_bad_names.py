"""Names before paths: a cluster name that breaks the naming rule is refused by every verb
(exit 2) and by the state store layer itself, before any path or key is built from it."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kpyops import lifecycle
from kpyops.cli import commands
from kpyops.cli.main import cli
from kpyops.cli.names import CLUSTER_NAME, NODE_GROUP_NAME, NODE_NAME
from kpyops.spec import parse
from kpyops.spec.model import Host, Metadata, NodeGroup
from kpyops.spec.names import (
    CLUSTER_NAME_MAX,
    HOST_NAME_MAX,
    NODE_GROUP_NAME_MAX,
    InvalidName,
    check_cluster_name,
    is_valid,
)
from kpyops.state import LocalStore
from kpyops.state.s3 import S3Store
from kpyops.state.workdir import cache_dir, workdir

for _c in commands.all_commands():
    cli.add_command(_c)

BAD_NAMES = [
    "../../x", "..", ".", "", "a/b", "x/../../../x", "/etc", "a\x00b", "a\nb", "demo\n",
    "Demo", "-x", "x-", "a_b", "a b", "a" * (CLUSTER_NAME_MAX + 1), "démo", "[red]", "~",
]


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every file and folder under root: mode and content, to compare byte for byte."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st_ = p.lstat()
            out[str(p.relative_to(root))] = (st_.st_mode, None if p.is_dir() else p.read_bytes())
    return out


def make_world(root: Path) -> tuple[Path, Path]:
    """A store holding cluster `demo` (with its PKI folder), and sentinel folders where
    `../../x` from the store's clusters/ and from the cache would lead. Returns (store, home)."""
    store_dir, home = root / "store", root / "home"
    store = LocalStore(store_dir)
    cluster = parse({"metadata": {"name": "demo"}, "spec": {"cloud": "local"}})
    lifecycle.create(store, cluster, lambda _m: None)
    store.write("demo", "pki/ca.key", b"CA KEY", secret=True)
    for sentinel in (root / "x", home / ".cache" / "x", home / ".cache" / "kpyops" / "x"):
        # a full copy of a cluster: a verb that followed `../../x` would find one there
        shutil.copytree(store_dir / "clusters" / "demo", sentinel)
        (sentinel / "keep").write_text("do not delete\n")
    return store_dir, home


@contextlib.contextmanager
def world(root: Path):
    store_dir, home = make_world(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("KPYOPS_STATE", raising=False)
        yield store_dir


def verbs(name: str) -> list[list[str]]:
    """Every verb that takes a cluster name; options first, then `--` so a name starting
    with '-' is a name, not an option."""
    return [
        ["delete", "cluster", "--yes", "--", name],
        ["get", "cluster", "--", name],
        ["update", "cluster", "--yes", "--", name],
        ["certs", "check", "--", name],
        ["create", "cluster", "--", name],  # last: the property test leaves it out
        ["certs", "renew", "--all", "--", name],
        ["doctor", "--", name],
    ]


def invoke(store_dir: Path, args: list[str]):
    return CliRunner().invoke(cli, ["--state", str(store_dir), *args], catch_exceptions=False)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_every_verb_refuses_a_bad_cluster_name_and_touches_nothing(tmp_path, name):
    with world(tmp_path) as store_dir:
        before = tree(tmp_path)
        for args in verbs(name):
            r = invoke(store_dir, args)
            assert r.exit_code == 2, (args, r.output)
            assert "is not a valid cluster name" in r.output, (args, r.output)
            assert tree(tmp_path) == before, args
        assert (tmp_path / "x" / "keep").read_text() == "do not delete\n"


def test_a_good_name_still_deletes_its_own_cluster_and_nothing_else(tmp_path):
    with world(tmp_path) as store_dir:
        r = invoke(store_dir, ["delete", "cluster", "demo", "--yes"])
        assert r.exit_code == 0, r.output
        assert not (store_dir / "clusters" / "demo").exists()
        assert (tmp_path / "x" / "keep").is_file()
        assert (tmp_path / "home" / ".cache" / "x" / "keep").is_file()


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.one_of(
        st.text(max_size=40),
        st.text(alphabet="ab-./\\\x00\n A~", max_size=12),
        st.from_regex(r"[a-z0-9][-a-z0-9]{0,34}", fullmatch=True),
        st.sampled_from(BAD_NAMES),
    ),
    verb=st.integers(min_value=0, max_value=3),
)
def test_any_cluster_name_is_either_valid_or_refused_with_exit_2(tmp_path, name, verb):
    """Property: whatever the name, a verb either accepts it (it passes the rule create
    uses) or refuses it with exit 2; and no file anywhere changes (`demo` is not touched,
    other names are not found)."""
    assume(name != "demo")
    root = tmp_path / "w"
    if not root.exists():
        root.mkdir()
        make_world(root)
    before = tree(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root / "home"))
        r = invoke(root / "store", verbs(name)[verb])
    valid = is_valid(name, CLUSTER_NAME_MAX)
    assert (r.exit_code == 2) == (not valid), (name, r.output)
    if valid:  # a good name of no cluster: exit 1, "not found" / "no certificates yet"
        assert r.exit_code == 1 and f"cluster {name!r}" in r.output, (name, r.output)
    assert tree(root) == before


@given(st.one_of(st.text(max_size=70), st.from_regex(r"[a-z0-9-]{1,70}", fullmatch=True)))
@settings(max_examples=300, deadline=None, database=None)
def test_the_name_rule_is_the_one_the_spec_uses(name):
    """One rule: names.is_valid agrees with the spec model for clusters, groups and hosts."""
    for model, field, max_length in ((Metadata, {}, CLUSTER_NAME_MAX),
                                     (NodeGroup, {}, NODE_GROUP_NAME_MAX),
                                     (Host, {"address": "10.0.0.1"}, HOST_NAME_MAX)):
        try:
            model(name=name, **field)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == is_valid(name, max_length), (model.__name__, name)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_local_store_refuses_a_bad_name_in_every_method(tmp_path, name):
    store_dir, _home = make_world(tmp_path)
    store = LocalStore(store_dir)
    before = tree(tmp_path)
    calls = [
        lambda: store.exists(name),
        lambda: store.read(name, "spec.yaml"),
        lambda: store.read_text(name, "spec.yaml"),
        lambda: store.write(name, "spec.yaml", b"x"),
        lambda: store.delete(name, "spec.yaml"),
        lambda: store.list(name),
        lambda: store.delete_cluster(name),
        lambda: store.local_path(name),
        lambda: store.lock(name, purpose="test").__enter__(),
        lambda: workdir(store, name),
        lambda: cache_dir(name),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(InvalidName):
            call()
        assert tree(tmp_path) == before, i
    assert store.clusters() == ["demo"]


def test_a_folder_with_a_bad_name_in_the_store_is_not_a_cluster(tmp_path):
    store = LocalStore(tmp_path)
    store.write("ok", "spec.yaml", b"kind: Cluster\n")
    for bad in ("Bad", "a_b", ".hidden"):
        (tmp_path / "clusters" / bad).mkdir()
        (tmp_path / "clusters" / bad / "spec.yaml").write_text("kind: Cluster\n")
    assert store.clusters() == ["ok"]


class NoCallSession:
    """An AWS session that fails the test if the store calls it at all."""

    region = "us-east-1"

    def call(self, *a, **kw):
        raise AssertionError(f"S3 was called: {a}")

    def pages(self, *a, **kw):
        raise AssertionError(f"S3 was called: {a}")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_s3_store_refuses_a_bad_name_before_any_call(name):
    store = S3Store("s3://bucket/prefix", session=NoCallSession())
    calls = [
        lambda: store.exists(name),
        lambda: store.read(name, "spec.yaml"),
        lambda: store.write(name, "spec.yaml", b"x"),
        lambda: store.delete(name, "spec.yaml"),
        lambda: store.list(name),
        lambda: store.delete_cluster(name),
        lambda: store.lock(name, purpose="test").__enter__(),
    ]
    for call in calls:
        with pytest.raises(InvalidName):
            call()


def test_lifecycle_delete_refuses_a_bad_name(tmp_path):
    store_dir, _home = make_world(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(InvalidName):
        lifecycle.delete(LocalStore(store_dir), "../../x", lambda _m: None)
    assert tree(tmp_path) == before


@pytest.mark.parametrize(("ptype", "good", "bad"), [
    (CLUSTER_NAME, "a" * CLUSTER_NAME_MAX, "a" * (CLUSTER_NAME_MAX + 1)),
    (NODE_GROUP_NAME, "a" * NODE_GROUP_NAME_MAX, "a" * (NODE_GROUP_NAME_MAX + 1)),
    (NODE_NAME, "a" * HOST_NAME_MAX, "a" * (HOST_NAME_MAX + 1)),
])
def test_name_parameter_types(ptype, good, bad):
    import click

    @click.command()
    @click.argument("name", type=ptype)
    def show(name):
        click.echo(f"got {name}")

    assert CliRunner().invoke(show, [good]).output == f"got {good}\n"
    for name in (bad, "../x", "a/b", "a\x00"):
        r = CliRunner().invoke(show, ["--", name])
        assert r.exit_code == 2 and f"is not a valid {ptype.name}" in r.output, r.output


def test_check_cluster_name_error_names_the_rule():
    with pytest.raises(InvalidName) as err:
        check_cluster_name("../x")
    assert err.value.problems == [("cluster name", "'../x' is not valid: must be a DNS label of "
                                   "1 to 30 characters: lowercase letters, digits and '-', "
                                   "starting and ending with a letter or digit")]
    assert isinstance(err.value, ValueError)
