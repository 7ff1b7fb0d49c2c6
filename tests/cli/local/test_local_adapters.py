"""`llmctl local up --adapter DIR[:NAME]` before anything starts: the checks, and the environment the
downloader and the server get (the float32 LoRA engine itself runs in tests/server/test_second_engine.py)."""

from __future__ import annotations

import shlex

import pytest

from llmctl.actions import local_adapters
from llmctl.config import load_config
from llmctl.errors import ConfigError
from tests.cli.local.test_local import CONFIG
from tests.fixtures.server import make_tiny_lora


def test_a_mismatched_adapter_stops_local_up_before_anything_starts(llmctl, tmp_path):
    llmctl.write_config(CONFIG + "server:\n  enable_lora: true\n  max_lora_rank: 8\n")
    done = llmctl("local", "up", "--adapter", f"{make_tiny_lora(tmp_path / 'big', rank=16)}:big")
    assert done.returncode == 2 and "--adapter" in done.stderr and "r=16 is above" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (llmctl.cwd / ".llmctl" / "local" / "server.pid").exists()


def test_adapters_are_declared_downloaded_beside_the_model_and_served_in_float32(llmctl, tiny_model_dir, tmp_path):
    cfg = load_config(llmctl.write_config(CONFIG))
    specs = local_adapters.parse([f"{make_tiny_lora(tmp_path / 'sql')}", f"{make_tiny_lora(tmp_path / 'c', rank=16)}:chat"])
    assert [name for name, _ in specs] == ["sql", "chat"]
    served = local_adapters.with_adapters(cfg, local_adapters.check(specs, tiny_model_dir, cfg))
    env = local_adapters.env(served, tmp_path / "state")
    root = tmp_path / "state" / "models" / f"{cfg.model.prefix}-adapters"
    assert env["ADAPTERS_PATH"] == str(root) and env["DTYPE"] == "float32" and env["MAX_LORA_RANK"] == "16"
    assert shlex.split(env["LORA_MODULES"]) == [f"chat={root}/chat", f"sql={root}/sql"]
    with pytest.raises(ConfigError, match="given twice"):
        local_adapters.parse([str(tmp_path / "sql"), f"{tmp_path / 'c'}:sql"])
