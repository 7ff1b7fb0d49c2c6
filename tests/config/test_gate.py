"""`deploy.gate`: the golden prompts file is read and checked at config-validate time, one problem per line."""

from __future__ import annotations

import json

import pytest

from llmctl.config import LlmctlConfig, load_config
from llmctl.errors import ConfigError

SCHEMA = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}}, "required": ["mood"]}


def write(tmp_path, lines, yaml_extra: str = "", folder: str = "conf"):
    """A config in `folder` naming `goldens.jsonl` beside it (relative, as users write it)."""
    where = tmp_path / folder
    where.mkdir(exist_ok=True)
    (where / "goldens.jsonl").write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                                                 for line in lines))
    path = where / "llmctl.yaml"
    path.write_text(f"deploy:\n  gate:\n    prompts: goldens.jsonl\n{yaml_extra}")
    return path


def problems(path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.exit_code == 2
    return [p.text + " | fix: " + p.fix for p in info.value.problems]


def test_defaults_gate_with_readiness_and_smoke_only():
    gate = LlmctlConfig().deploy.gate
    assert gate.enabled and gate.prompts is None and gate.goldens == () and gate.bench_requests == 0
    assert not gate.slo.configured()


def test_goldens_are_read_relative_to_the_config_files_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the config's folder
    path = write(tmp_path, [{"prompt": "Say hi", "expect": "hi"}, "", {"prompt": "n?", "regex": r"\d+", "max_tokens": 8},
                            {"prompt": "mood?", "json_schema": SCHEMA}])
    gate = load_config(path, env={}).deploy.gate
    assert gate.prompts_file == (tmp_path / "conf" / "goldens.jsonl").resolve()
    assert [(g.line, g.kind, g.max_tokens) for g in gate.goldens] == [(1, "expect", 64), (3, "regex", 8),
                                                                      (4, "json_schema", 64)]
    assert gate.goldens[2].expected == SCHEMA
    assert "goldens" not in load_config(path, env={}).model_dump()["deploy"]["gate"]  # parsed, not a config key


def test_every_bad_line_is_its_own_problem_naming_the_config_line_and_the_file_line(tmp_path):
    path = write(tmp_path, [
        {"prompt": "a", "expect": "x", "regex": "y"},
        {"prompt": "b", "regex": "(unclosed"},
        {"prompt": "c", "json_schema": {"type": "strnig"}},
        {"prompt": "d", "json_schema": "object"},
        {"prompt": "e"},
        "not json",
        {"prompt": "", "expect": "x"},
        {"prompt": "f", "expect": "x", "max_tokens": 0},
        {"prompt": "g", "expect": "x", "temperature": 1},
        {"prompt": "fine", "expect": "ok"},
    ])
    found = problems(path)
    assert len(found) == 9, found
    assert all(text.startswith(f"{path} line 3: deploy.gate.prompts: 'goldens.jsonl': line ") for text in found), found
    for number, needle in [(1, "has expect and regex: give exactly one of expect, regex, json_schema"),
                           (2, "regex '(unclosed' does not compile (missing ), unterminated subpattern"),
                           (3, "json_schema is not a valid JSON schema at type: 'strnig' is not valid"),
                           (4, "json_schema is a str, not a JSON schema object"),
                           (5, "has no expectation"),
                           (6, "not JSON (Expecting value at column 1)"),
                           (7, "needs a non-empty string \"prompt\""),
                           (8, "max_tokens 0 is not a whole number from 1 to 65536"),
                           (9, "unknown key(s) 'temperature' | fix: use only prompt, expect, regex, json_schema, max_tokens")]:
        assert any(f"line {number}: {needle}" in text for text in found), (number, found)


def test_a_missing_prompts_file_names_where_it_was_looked_for(tmp_path):
    path = write(tmp_path, [{"prompt": "a", "expect": "b"}])
    (path.parent / "goldens.jsonl").unlink()
    [text] = problems(path)
    assert f"deploy.gate.prompts: 'goldens.jsonl': {path.parent / 'goldens.jsonl'}: no such file" in text
    assert "relative to the config file's folder" in text


def test_an_empty_prompts_file_is_a_problem(tmp_path):
    [text] = problems(write(tmp_path, ["", "  "]))
    assert "has no golden prompts" in text


def test_an_slo_without_a_bench_is_refused_beside_the_prompt_problems(tmp_path):
    path = write(tmp_path, [{"prompt": "a"}], "    slo:\n      p95_ttft_s: 0.5\n")
    found = problems(path)
    assert len(found) == 2, found
    assert any("deploy.gate.bench_requests: deploy.gate.slo is set but deploy.gate.bench_requests is 0" in t for t in found)
    assert any("line 1: has no expectation" in t for t in found)


@pytest.mark.parametrize("yaml_extra, needle", [
    ("    slo:\n      max_error_rate: 1.5\n", "deploy.gate.slo.max_error_rate"),
    ("    slo:\n      p95_tpot: 1\n", "deploy.gate.slo.p95_tpot: unknown key"),
    ("    bench_requests: -1\n", "deploy.gate.bench_requests"),
])
def test_bad_gate_values_name_the_field(tmp_path, yaml_extra, needle):
    found = problems(write(tmp_path, [{"prompt": "a", "expect": "b"}], yaml_extra))
    assert any(needle in text for text in found), found


def test_slo_with_a_bench_validates(tmp_path):
    path = write(tmp_path, [{"prompt": "a", "expect": "b"}],
                 "    bench_requests: 8\n    slo:\n      p95_ttft_s: 0.5\n      min_throughput_ratio: 0.8\n")
    gate = load_config(path, env={}).deploy.gate
    assert gate.slo.configured() and gate.slo.min_throughput_ratio == 0.8 and gate.bench_requests == 8
