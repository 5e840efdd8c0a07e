"""User text is never markup: spec keys and values, names, paths and tool output are printed
as they are, whatever brackets or emoji codes they hold."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kpyops.cli import commands, output
from kpyops.cli.main import cli
from kpyops.pki.ensure import CaSpec, CertSpec, Settings, ensure_pki

for _c in commands.all_commands():
    cli.add_command(_c)

TRICKY = "[/x] [red]red[/red] [bold]b :smile: \\[esc] [link=file:///]l[/link]"


def run(tmp_path, *args):
    return CliRunner().invoke(cli, ["--state", str(tmp_path / "store"), *args],
                              catch_exceptions=False)


def spec_file(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


def test_an_unknown_key_in_brackets_is_a_spec_error_printed_literally(tmp_path):
    f = spec_file(tmp_path, 'metadata: {name: d}\nspec:\n  "[/x]": 1\n  "[red]": 2\n')
    r = run(tmp_path, "create", "cluster", "d", "-f", f)
    assert r.exit_code == 2, r.output
    assert "error: spec.[/x]: unknown field" in r.output
    assert "error: spec.[red]: unknown field" in r.output
    assert "nothing was changed" in r.output
    assert not (tmp_path / "store").exists()


def test_brackets_in_a_value_survive_in_the_message(tmp_path):
    f = spec_file(tmp_path, 'metadata: {name: d}\nspec:\n  cloud: aws\n'
                            '  aws: {region: eu-west-1, zones: ["[red]zone[/red]"]}\n')
    r = run(tmp_path, "create", "cluster", "d", "-f", f, "--dry-run")
    assert r.exit_code == 2, r.output
    assert "'[red]zone[/red]' is not an availability zone name" in r.output


def test_progress_shows_a_store_path_with_brackets_as_it_is(tmp_path):
    store = tmp_path / "[bold]a[" / "x]b :smile:"
    r = CliRunner().invoke(cli, ["--state", str(store), "get", "clusters"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"no clusters in file://{store}" in r.output


@pytest.mark.parametrize("say", [output.fail, lambda m: output.fail(m, output.EXIT_SPEC)])
def test_fail_prints_the_message_as_plain_text(capsys, say):
    with pytest.raises(SystemExit):
        say(TRICKY)
    assert capsys.readouterr().err == f"error: {TRICKY}\n"


def test_progress_warn_and_spec_errors_print_plain_text(capsys):
    output.progress(TRICKY)
    output.warn(TRICKY)
    with pytest.raises(SystemExit) as exit_:
        output.spec_error(output.SpecError(TRICKY, TRICKY))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (f"• {TRICKY}\n{TRICKY}\nerror: {TRICKY}: {TRICKY}\n"
                                       "nothing was changed\n")


def test_even_a_plain_str_printed_on_stderr_is_not_markup(capsys):
    output.stderr.print(TRICKY)
    assert capsys.readouterr().err == f"{TRICKY}\n"


def test_an_unknown_certificate_name_is_bad_input_printed_literally(tmp_path):
    pki = tmp_path / "store" / "clusters" / "demo" / "pki"
    ensure_pki(pki, [CaSpec("ca", "kubernetes-ca")],
               [CertSpec.from_dict({"name": "admin", "ca": "ca", "cn": "kubernetes-admin"})],
               settings=Settings(key_type="ecdsa", key_size=256))
    r = run(tmp_path, "certs", "renew", "demo", "[/x]")
    assert r.exit_code == 2, r.output
    assert "no such leaf certificate: [/x]" in r.output
