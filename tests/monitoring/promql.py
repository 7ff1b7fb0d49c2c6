"""Small PromQL helpers for the tests: metric names in an expression, and a promtool parse check."""

from __future__ import annotations

import re

import yaml

from tests.monitoring.conftest import run_tool

GRAFANA_VARIABLES = {"$__rate_interval": "1m"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "Inf", "NaN"}
SYNTHETIC = {"up"}  # written by Prometheus itself for every target


def concrete(expr: str) -> str:
    """The query with Grafana's variables replaced, as Grafana sends it to Prometheus."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (identifiers that are not functions or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()[:1]
        if following != "(" and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def check_parse(promtool: str, exprs: list[str], tmp_path) -> None:
    """Every expression parses: promtool checks them as recording rules."""
    rules = [{"record": f"llmctl:check_{i}", "expr": concrete(e)} for i, e in enumerate(exprs)]
    path = tmp_path / "parse_check.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse", "rules": rules}]}))
    result = run_tool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
