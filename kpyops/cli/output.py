"""Printing for the CLI: progress on stderr (rich), results on stdout, errors with exit codes.

Every message is plain text: names, paths, spec keys and values and Ansible's output may
hold ``[red]`` or ``[/x]``, which rich would read as markup (and crash on, or swallow). So
``stderr`` has markup and emoji codes off, and the functions here build rich ``Text``
objects whose only styles are the ones we add: a style goes in a ``(text, style)`` part of
``say``, never as ``[style]`` in a string.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager

import click
import yaml
from rich.console import Console
from rich.text import Text

from kpyops.spec import SpecError

# markup and emoji codes off: any str printed here is shown as it is
stderr = Console(stderr=True, highlight=False, markup=False, emoji=False)

EXIT_SPEC = 2  # bad input, nothing touched (like a usage error)
EXIT_FAILED = 1


def say(*parts: str | tuple[str, str]) -> None:
    """Print on stderr: each part is plain text, or (plain text, style). Never markup."""
    stderr.print(Text.assemble(*parts), soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> None:
    say(("error:", "bold red"), " ", str(message))
    sys.exit(code)


def spec_error(err: SpecError) -> None:
    """Each problem on its own line (the first 20, then how many more), and exit 2."""
    for line in err.lines():
        say(("error:", "bold red"), " ", line)
    say("nothing was changed")
    sys.exit(EXIT_SPEC)


def warn(message: str) -> None:
    say((str(message), "yellow"))


def emit(data, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def progress(message: str) -> None:
    say(("•", "cyan"), " ", str(message))


@contextmanager
def ansible_progress(verbose: int):
    """Callbacks for run_playbook: a live status line, or every line with -v."""
    if verbose:
        yield {"on_line": lambda line: say(line)}
        return
    start = time.monotonic()
    tasks = [0]
    with stderr.status("starting ansible-playbook") as status:

        def on_task(name: str) -> None:
            tasks[0] += 1
            status.update(Text(f"[{time.monotonic() - start:5.0f}s] task {tasks[0]}: {name}"))

        yield {"on_task": on_task}
