"""The README's configuration reference is generated from the config model and must match it.

Regenerate with `LLMCTL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_readme.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from llmctl.config.reference import reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- config-reference:start -->\n)(.*?)(<!-- config-reference:end -->)", re.S)


def test_readme_config_reference_matches_the_model():
    text = README.read_text()
    match = BLOCK.search(text)
    assert match, "README.md lacks the <!-- config-reference:start/end --> block"
    expected = reference_markdown()
    if os.environ.get("LLMCTL_UPDATE_GOLDEN") and match.group(2) != expected:
        README.write_text(text[: match.start(2)] + expected + text[match.end(2) :])
        return
    assert match.group(2) == expected, "README config reference is stale: regenerate (see this test's docstring)"


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
