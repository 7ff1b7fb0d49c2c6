"""Config problems in the user's words: where each value came from, what is wrong, and the fix.

Every value of the resolved config has a source: a line of the config file, an environment
variable (`LLMCTL_AWS_REGION`, `AWS_REGION`) or a flag (`--region`). A problem names that
source, not the file it did not come from. pydantic reports every field error at once; each
becomes one `Problem`, with a fix: from the validator that raised it (`Invalid`), else from the
kind of error (a whole number, one of the allowed words, the pattern in plain words).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

Path = tuple[str, ...]
_UNSET = object()


class Invalid(ValueError):
    """A validator's objection with its fix (pydantic keeps the exception, so the fix survives)."""

    def __init__(self, message: str, *, fix: str, fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.fix = fix
        # a cross-field check: the dotted field it blames, then those it read (their sources are named too)
        self.fields = fields


@dataclass(frozen=True)
class Problem:
    source: str  # "llmctl.yaml line 3", "LLMCTL_AWS_REGION", "--region", "defaults"
    field: str  # dotted path ("deploy.replicas"); "" for the whole config
    message: str
    fix: str
    value: Any = _UNSET

    @property
    def text(self) -> str:
        shown = "" if self.value is _UNSET or isinstance(self.value, Mapping) else f" {self.value!r}:"
        return f"{self.source}: {self.field or '(top level)'}:{shown} {self.message}"

    def to_dict(self) -> dict:
        data = {"source": self.source, "field": self.field, "error": self.message, "fix": self.fix}
        if self.value is not _UNSET and not isinstance(self.value, Mapping):
            data["value"] = self.value
        return data


@dataclass
class Sources:
    """Which layer set each value: file lines, environment variables, flags (later layers win)."""

    leaves: dict[Path, str] = field(default_factory=dict)
    file_lines: dict[Path, int] = field(default_factory=dict)  # every key and list item of the file
    file: str | None = None
    default: str = "defaults"

    def add_file(self, name: str, data: Mapping, lines: Mapping[Path, int]) -> None:
        self.file, self.file_lines = name, dict(lines)
        for path in _leaf_paths(data):
            self.leaves[path] = self._file_at(path)

    def add(self, data: Mapping, name_of) -> None:
        """An environment or flag layer; `name_of(path)` names the variable or flag that set `path`."""
        for path in _leaf_paths(data):
            self.leaves[path] = name_of(path)

    def of(self, loc: Path) -> str:
        """The source of a value, or of every value under a section (a cross-field problem)."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.leaves:
                return self.leaves[loc[:end]]
        under = [source for path, source in self.leaves.items() if path[: len(loc)] == loc]
        if self.file and loc in self.file_lines:  # the section's own line rather than each leaf's
            under = [self._file_at(loc)] + [s for s in under if not s.startswith(f"{self.file} line ")]
        return ", ".join(dict.fromkeys(under)) or self.default

    def _file_at(self, path: Path) -> str:
        for end in range(len(path), 0, -1):
            if path[:end] in self.file_lines:
                return f"{self.file} line {self.file_lines[path[:end]]}"
        return str(self.file)


def _leaf_paths(data: Any, prefix: Path = ()) -> list[Path]:
    if isinstance(data, Mapping) and data:
        return [p for key, value in data.items() for p in _leaf_paths(value, (*prefix, str(key)))]
    return [prefix] if prefix else []


def yaml_lines(node, prefix: Path = ()) -> dict[Path, int]:
    """Line (1-based) of each key and list item in a composed YAML node tree."""
    import yaml

    lines: dict[Path, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            lines.update(yaml_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            lines[path] = item.start_mark.line + 1
            lines.update(yaml_lines(item, path))
    return lines


def explain(exc: ValidationError, sources: Sources, *, skip: set[Path] = frozenset()) -> list[Problem]:
    """One problem per pydantic error, in the order pydantic found them; `skip`: already reported."""
    problems = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden" and loc in skip:
            continue
        value, source = err.get("input", _UNSET), sources.of(loc)
        blamed = getattr((err.get("ctx") or {}).get("error"), "fields", ())
        if blamed:
            loc, value = tuple(blamed[0].split(".")), _UNSET
            named = [s for f in blamed if (s := sources.of(tuple(f.split(".")))) != sources.default]
            source = ", ".join(dict.fromkeys(named)) or sources.default
        dotted = ".".join(loc)
        message = err["msg"].removeprefix("Value error, ")
        problems.append(Problem(source, dotted, message, fix_for(err, dotted), value))
    return problems


_PATTERN_WORDS = {
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$": "use lowercase letters, digits and '-', starting with a letter (a DNS label)",
    r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$": "use a Kubernetes quantity such as 500m, 2 or 12Gi",
    r"^[0-9]+(ms|s|m|h|d|w|y)$": "use a duration such as 30s, 5m or 15d",
}


def fix_for(err: Mapping, dotted: str) -> str:
    """The fix for one pydantic error: the validator's own, else one for its kind."""
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if isinstance(ctx.get("error"), Invalid):
        return ctx["error"].fix
    by_kind = {
        "int_parsing": "use a whole number", "int_type": "use a whole number", "int_from_float": "use a whole number",
        "float_parsing": "use a number", "float_type": "use a number",
        "bool_parsing": "use true or false", "bool_type": "use true or false",
        "string_type": "use a string (quote it in YAML)",
        "list_type": "use a list, e.g. [a, b] (in an environment variable: comma-separated)",
        "dict_type": f"use a mapping of keys under {dotted}", "model_type": f"use a mapping of keys under {dotted}",
        "missing": f"set {dotted}",
        "literal_error": f"use one of {ctx.get('expected')}", "enum": f"use one of {ctx.get('expected')}",
        "greater_than_equal": f"use a value of at least {ctx.get('ge')}",
        "greater_than": f"use a value above {ctx.get('gt')}",
        "less_than_equal": f"use a value of at most {ctx.get('le')}",
        "less_than": f"use a value below {ctx.get('lt')}",
        "too_short": f"list at least {ctx.get('min_length')} item(s)",
        "too_long": f"list at most {ctx.get('max_length')} item(s)",
        "string_too_long": f"use at most {ctx.get('max_length')} characters",
        "string_too_short": f"use at least {ctx.get('min_length')} characters",
        "string_pattern_mismatch": _PATTERN_WORDS.get(str(ctx.get("pattern")), f"match the pattern {ctx.get('pattern')}"),
        "extra_forbidden": f"remove {dotted} (`llmctl config schema` lists the keys)",
    }
    return by_kind.get(kind, f"correct {dotted or 'the config'} (`llmctl config schema` lists what it accepts)")
