"""Printing for the CLI: progress on stderr (rich), results on stdout, errors with exit codes."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager

import click
import yaml
from rich.console import Console

from kpyops.spec import SpecError

stderr = Console(stderr=True, highlight=False)

EXIT_SPEC = 2  # bad input, nothing touched (like a usage error)
EXIT_FAILED = 1


def fail(message: str, code: int = EXIT_FAILED) -> None:
    stderr.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


def spec_error(err: SpecError) -> None:
    for field, rule in err.problems:
        stderr.print(f"[bold red]error:[/] {field}: {rule}", soft_wrap=True)
    stderr.print("nothing was changed")
    sys.exit(EXIT_SPEC)


def emit(data, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def progress(message: str) -> None:
    stderr.print(f"[cyan]•[/] {message}")


@contextmanager
def ansible_progress(verbose: int):
    """Callbacks for run_playbook: a live status line, or every line with -v."""
    if verbose:
        yield {"on_line": lambda line: stderr.print(line, markup=False, highlight=False)}
        return
    start = time.monotonic()
    tasks = [0]
    with stderr.status("starting ansible-playbook") as status:

        def on_task(name: str) -> None:
            tasks[0] += 1
            status.update(f"[{time.monotonic() - start:5.0f}s] task {tasks[0]}: {name}")

        yield {"on_task": on_task}
