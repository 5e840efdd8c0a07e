"""Spec errors that name the field and the rule, for people rather than for pydantic."""

from __future__ import annotations

from pydantic import ValidationError


class SpecError(ValueError):
    """A spec is invalid. ``problems`` holds (field path, rule) pairs."""

    def __init__(self, field: str | None = None, rule: str | None = None, problems=None):
        self.problems: list[tuple[str, str]] = list(problems or [])
        if field is not None:
            self.problems.append((field, rule or "invalid"))
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return "\n".join(f"{field}: {rule}" for field, rule in self.problems)

    @classmethod
    def from_validation_error(cls, err: ValidationError, prefix: str = "") -> SpecError:
        problems = []
        for e in err.errors():
            path = prefix
            for part in e["loc"]:
                path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
            msg = e["msg"]
            for lead in ("Value error, ", "Assertion failed, "):
                msg = msg.removeprefix(lead)
            if e["type"] == "extra_forbidden":
                msg = "unknown field"
            elif e["type"] == "literal_error":
                msg = msg.replace("Input should be", "must be")
            problems.append((path or "spec", msg))
        return cls(problems=problems)
