#!/usr/bin/python3
"""Remove the cluster's iptables chains and rules from every table, keeping the host's own.

Usage: iptables_clean.py SAVE RESTORE PREFIXES COMMENTS (comma-separated lists). Reads the
ruleset with SAVE (e.g. iptables-nft-save), drops the chains whose names start with a
prefix, every rule in them, every rule that jumps to one of them, and every rule whose
comment is one of COMMENTS; restores each table that had any with RESTORE (the table's
other rules as they were). Prints JSON: the chains and rule count removed per table ({}
when there was nothing: nothing is restored then).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys


def _after(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1] if flag in words[:-1] else ""


def clean(saved: str, prefixes: tuple[str, ...], comments: set[str]) -> dict[str, tuple[list[str], list[str], int]]:
    """table -> (the table's lines to restore, chains removed, rules removed), for each table
    of an iptables-save text that holds something of the cluster's."""
    tables: list[tuple[str, list[str]]] = []
    for line in saved.splitlines():
        if line.startswith("*"):
            tables.append((line[1:], []))
        elif tables and line and not line.startswith("#"):
            tables[-1][1].append(line)
    out = {}
    for table, lines in tables:
        chains = {ln[1:].split()[0] for ln in lines
                  if ln.startswith(":") and ln[1:].split()[0].startswith(prefixes)}
        kept, dropped = [], 0
        for ln in lines:
            if ln.startswith(":") and ln[1:].split()[0] in chains:
                continue
            if ln.startswith("-A "):
                words = shlex.split(ln)
                if words[1] in chains or _after(words, "-j") in chains or _after(words, "--comment") in comments:
                    dropped += 1
                    continue
            kept.append(ln)
        if chains or dropped:
            out[table] = ([f"*{table}", *kept], sorted(chains), dropped)
    return out


def main() -> None:
    save, restore, prefixes, comments = sys.argv[1:5]
    saved = subprocess.run([save], capture_output=True, text=True, check=True).stdout
    found = clean(saved, tuple(p for p in prefixes.split(",") if p), {c for c in comments.split(",") if c})
    for lines, _chains, _rules in found.values():
        subprocess.run([restore], input="\n".join(lines) + "\n", text=True, check=True)
    print(json.dumps({t: {"chains": c, "rules": r} for t, (_l, c, r) in found.items()}))


if __name__ == "__main__":
    main()
