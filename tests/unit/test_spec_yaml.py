"""Spec files that YAML would read wrongly or dangerously are refused, naming the problem:
duplicate keys, alias bombs, aliases that contain themselves, bytes that are not UTF-8."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from kpyops.cli import commands
from kpyops.cli.main import cli
from kpyops.spec import SpecError, loads
from kpyops.spec.io import MAX_NODES, load_yaml

for _c in commands.all_commands():
    cli.add_command(_c)

SPEC = "apiVersion: kpyops.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: demo\nspec:\n"


def problems(text) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as err:
        loads(text)
    return err.value.problems


def test_a_duplicate_key_is_refused_with_its_line_and_the_first_one():
    text = SPEC + "  cloud: local\n  kubeProxy:\n    mode: ipvs\n  cloud: aws\n"
    assert problems(text) == [("spec", "duplicate key 'cloud' on line 9 (first on line 6): "
                                       "give each key once")]


def test_a_duplicate_key_deep_in_a_list_is_refused():
    text = SPEC + "  nodeGroups:\n  - name: a\n    count: 1\n    count: 3\n"
    assert "duplicate key 'count' on line 9 (first on line 8)" in problems(text)[0][1]


def test_merge_keys_may_still_override_what_they_merge():
    data = load_yaml("base: &b {count: 1, name: a}\ngroup:\n  <<: *b\n  count: 3\n")
    assert data["group"] == {"count": 3, "name": "a"}


def test_an_alias_bomb_is_refused_quickly():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    start = time.monotonic()
    rule = problems(SPEC + "\n".join("  " + line for line in lines) + "\n")[0][1]
    assert f"more than {MAX_NODES} values once YAML aliases are expanded" in rule
    assert time.monotonic() - start < 5


def test_a_few_aliases_are_fine():
    data = load_yaml("k: &k {maxPods: 50}\ng: [{kubelet: *k}, {kubelet: *k}]\n")
    assert data["g"][1]["kubelet"] == {"maxPods": 50}


def test_an_alias_inside_its_own_anchor_is_refused():
    assert "a YAML alias refers to the value it is part of" in problems("a: &a [1, *a]\n")[0][1]


def test_bytes_that_are_not_utf8_are_refused_with_their_offset():
    assert problems(b"metadata: {name: \xff}\n") == [
        ("spec", "not UTF-8 text: byte 0xff at offset 17 cannot be decoded")]


def test_utf8_bytes_with_a_byte_order_mark_are_read():
    assert loads(b"\xef\xbb\xbf" + SPEC.encode() + b"  cloud: local\n").name == "demo"


@pytest.mark.parametrize("text", ["a: \x00\n", "[" * 2000 + "]" * 2000, "a: [\n", "- 1\n"])
def test_other_unreadable_documents_are_spec_errors(text):
    assert problems(text)


@pytest.mark.parametrize(("content", "says"), [
    (SPEC.encode() + b"  cloud: local\n  cloud: aws\n", "duplicate key 'cloud' on line 7"),
    (SPEC.encode() + b"  cloud: \xfe\n", "not UTF-8 text: byte 0xfe"),
    (b"a: &a [*a]\n", "refers to the value it is part of"),
])
@pytest.mark.parametrize("verb", [
    ["create", "cluster", "demo", "-f"],
    ["create", "cluster", "demo", "--dry-run", "-f"],
    ["update", "cluster", "demo", "-f"],
    ["spec", "render", "--out", "OUT", "-f"],
])
def test_every_verb_reading_a_spec_file_exits_2_and_writes_nothing(tmp_path, content, says, verb):
    f = tmp_path / "spec.yaml"
    f.write_bytes(content)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in verb]
    r = CliRunner().invoke(cli, ["--state", str(tmp_path / "store"), *args, str(f)],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert says in r.output and "nothing was changed" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]
