"""Spec errors that name the field and the rule, for people rather than for pydantic.

Every problem is one line, ``<field path>: <rule>``, in our words: pydantic's messages and
type names are translated here, user text in a path or rule is shortened and has its
control characters escaped, and a spec with many problems shows the first
``MAX_SHOWN`` and how many more there are.
"""

from __future__ import annotations

import datetime
import re

from pydantic import ValidationError

MAX_SHOWN = 20  # problems printed; the rest are counted
MAX_PATH_PART = 60  # characters of one user-written key shown in a path
MAX_LINE = 400  # characters of one problem line

# Regular expressions of the model, said in words (the key is the pattern's text).
PATTERN_WORDS: dict[str, str] = {}


def describe_pattern(pattern: str, words: str) -> str:
    """Register the words that explain ``pattern`` in messages; returns the pattern."""
    PATTERN_WORDS[pattern] = words
    return pattern


# Characters that would break a line or the terminal: C0/C1 controls, line separators.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: object, limit: int = MAX_LINE) -> str:
    """``text`` on one line: control and line-separator characters escaped, shortened."""
    try:
        s = str(text)[: limit * 4]  # never walk a huge string
    except ValueError:  # an integer of more digits than Python converts
        s = "(a number too large to show)"
    s = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def what(value: object) -> str:
    """A short description of a value a user wrote, for 'must be X, not Y'."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        return f"the number {one_line(value, 40)}"
    if isinstance(value, float):
        return f"the number {one_line(value, 40)}"
    if isinstance(value, str):
        return f"the text {one_line(repr(value), 80)}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    if isinstance(value, (set, frozenset)):
        return "a set"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"the date {value.isoformat()}"
    return "a " + type(value).__name__


_SPACE = re.compile(r"\s")


def _shown_key(part: object) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    s = str(part)
    if 0 < len(s) <= MAX_PATH_PART and not _UNPRINTABLE.search(s) and not _SPACE.search(s) \
            and "." not in s:
        return "." + s
    return "[" + one_line(repr(s), MAX_PATH_PART) + "]"


def field_path(loc: tuple, prefix: str = "") -> str:
    """pydantic's location as a spec path: spec.nodeGroups[0].kubelet.maxPods."""
    path = prefix
    for part in loc:
        if part == "[key]":  # the key of a mapping entry was the problem, not its value
            path += " (the key)"
            continue
        shown = _shown_key(part)
        path += shown if path or not shown.startswith(".") else shown[1:]
    return path or "spec"


def _rule(e: dict) -> str:
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    not_ = f", not {what(value)}"
    if kind in ("value_error", "assertion_error"):
        msg = e["msg"]
        for lead in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(lead)
        return msg
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the listed values')}{not_}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number" + not_
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false" + not_
    if kind in ("string_type", "string_unicode"):
        return "must be text" + not_
    if kind in ("list_type", "tuple_type", "set_type"):
        return "must be a list" + not_
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "must be a mapping" + not_
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str(ctx.get("pattern")), "does not have the expected form")
        return f"{one_line(repr(value), 80)}: {words}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} entries"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} entries"
    for bound, words in (("ge", "at least"), ("gt", "more than"), ("le", "at most"),
                         ("lt", "less than")):
        if bound in ctx and kind.startswith(("greater", "less")):
            return f"must be {words} {ctx[bound]}, not {one_line(value, 40)}"
    # anything else: pydantic's sentence, without its type names
    msg = re.sub(r"\bInput should be\b", "must be", e["msg"])
    msg = re.sub(r"\b(Input|input)\b", "value", msg)
    return one_line(msg)


class SpecError(ValueError):
    """A spec is invalid. ``problems`` holds (field path, rule) pairs: all of them, or the
    first ones when ``total`` (how many there are) is larger."""

    def __init__(self, field: str | None = None, rule: str | None = None, problems=None,
                 total: int | None = None):
        self.problems: list[tuple[str, str]] = list(problems or [])
        if field is not None:
            self.problems.append((field, rule or "invalid"))
        self.total = max(total or 0, len(self.problems))
        super().__init__(self.message)

    def lines(self) -> list[str]:
        """One line per problem, the first MAX_SHOWN of them, then how many more."""
        shown = [one_line(f"{field}: {rule}") for field, rule in self.problems[:MAX_SHOWN]]
        if self.total > MAX_SHOWN:
            shown.append(f"... and {self.total - MAX_SHOWN} more")
        return shown

    @property
    def message(self) -> str:
        return "\n".join(self.lines())

    @classmethod
    def from_validation_error(cls, err: ValidationError, prefix: str = "") -> SpecError:
        errors = err.errors(include_url=False)
        # only the problems that are shown are put in words: a spec may have thousands
        problems = [(field_path(e["loc"], prefix), _rule(e)) for e in errors[:MAX_SHOWN]]
        return cls(problems=problems, total=len(errors))
