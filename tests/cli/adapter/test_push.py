"""`llmctl adapter push | list | rm` against the moto server, as a user runs them (no engine)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from llmctl.actions import model
from tests.fixtures.server import make_tiny_lora

CONFIG = "project:\n  name: demo\nmodel:\n  bucket: models\n  prefix: tiny\n"


@pytest.fixture
def base(llmctl, aws, tiny_model_dir):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="models")
    llmctl.write_config(CONFIG)
    model.upload_model(s3, tiny_model_dir, "models", "tiny", {})  # `model upload`'s own test drives its CLI
    return s3


def keys(s3, prefix: str, bucket: str = "models") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_push_uploads_with_the_manifest_skips_unchanged_then_list_and_rm(llmctl, base, tmp_path):
    adapter = make_tiny_lora(tmp_path / "sql", rank=8)
    first = json.loads(llmctl("adapter", "push", str(adapter), "--name", "sql", "-o", "json", check=True).stdout)
    assert first["uri"] == "s3://models/tiny-adapters/sql/" and first["rank"] == 8
    assert sorted(first["uploaded"]) == ["adapter_config.json", "adapter_model.safetensors"]
    manifest = json.loads(base.get_object(Bucket="models", Key="tiny-adapters/sql/llmctl-manifest.json")["Body"].read())
    assert {f["path"] for f in manifest["files"]} == set(first["uploaded"]) and all(f["sha256"] for f in manifest["files"])
    tags = base.get_object_tagging(Bucket="models", Key="tiny-adapters/sql/adapter_model.safetensors")["TagSet"]
    assert {"Key": "llmctl.io/deployment", "Value": "demo"} in tags

    again = json.loads(llmctl("adapter", "push", str(adapter), "--name", "sql", "-o", "json", check=True).stdout)
    assert again["uploaded"] == [] and sorted(again["skipped"]) == sorted(first["uploaded"])
    llmctl("adapter", "push", str(make_tiny_lora(tmp_path / "chat", rank=16, seed=2)), "--name", "chat", check=True)

    listed = json.loads(llmctl("adapter", "list", "-o", "json", check=True).stdout)
    rows = {a["name"]: a for a in listed["adapters"]}
    assert set(rows) == {"sql", "chat"} and rows["sql"]["rank"] == 8 and rows["chat"]["rank"] == 16
    assert rows["sql"]["size"] == first["size"] and rows["sql"]["pushed_at"] and rows["sql"]["complete"]
    assert listed["replicas"] == [] and listed["notes"]  # no cluster here: said, not hidden
    text = llmctl("adapter", "list", check=True).stdout
    assert "sql" in text and "chat" in text

    refused = llmctl("adapter", "rm", "sql")  # no terminal to ask on: needs --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr and keys(base, "tiny-adapters/sql/")
    plan = json.loads(llmctl("adapter", "rm", "sql", "--dry-run", "-o", "json", check=True).stdout)
    assert plan["objects"] == 3 and plan["dry_run"] and keys(base, "tiny-adapters/sql/")
    llmctl("adapter", "rm", "sql", "--yes", check=True)
    assert keys(base, "tiny-adapters/sql/") == [] and keys(base, "tiny-adapters/chat/")
    gone = llmctl("adapter", "rm", "sql", "--yes")
    assert gone.returncode == 1 and "no adapter sql" in gone.stderr


def _reshaped(src, dest, hidden: int):
    """The same adapter trained for a model of another hidden size."""
    shutil.copytree(src, dest)
    tensors = {k: np.zeros((v.shape[0], hidden) if "lora_A" in k else (hidden, v.shape[1]), np.float32)
               for k, v in load_file(str(src / "adapter_model.safetensors")).items()}
    save_file(tensors, str(dest / "adapter_model.safetensors"))
    return dest


def _edited(src, dest, **changes):
    shutil.copytree(src, dest)
    config = json.loads((dest / "adapter_config.json").read_text())
    config.update(changes)
    (dest / "adapter_config.json").write_text(json.dumps(config))
    return dest


def test_mismatched_adapters_are_refused_in_one_line_before_upload(llmctl, base, tmp_path):
    from llmctl.actions import adapter
    from llmctl.config import Names, load_config
    from llmctl.errors import ConfigError

    good = make_tiny_lora(tmp_path / "good")
    pickled = shutil.copytree(good, tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    cases = {
        "missing-module": (_edited(good, tmp_path / "gate", target_modules=["q_proj", "gate_projx"]),
                           "targets module 'gate_projx' but the base model"),
        "not-lora": (_edited(good, tmp_path / "ia3", peft_type="IA3"), "peft_type is IA3, not LORA"),
        "pickled": (pickled, "has no safetensors weights (adapter_model.bin is pickled)"),
        "no-config": (tmp_path, "has no adapter_config.json"),
        "r16": (make_tiny_lora(tmp_path / "r16", rank=16), "r=16 is above the engine's max_lora_rank 8 (server.max_lora_rank)"),
        "bad name!": (good, "is not an adapter name"),
    }
    path = llmctl.write_config(CONFIG + "server:\n  enable_lora: true\n  max_lora_rank: 8\n")
    cfg = load_config(path)
    for name, (folder, words) in cases.items():
        with pytest.raises(ConfigError) as refused:
            adapter.push(cfg, Names.from_config(cfg), base, folder, name)
        assert words in refused.value.message and "\n" not in refused.value.message, name
    # As a user sees it: one line and its hint, exit 2.
    done = llmctl("adapter", "push", str(_reshaped(good, tmp_path / "wide", 256)), "--name", "wide")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "adapter wide" in done.stderr and "has 256 inputs but the base model's has 128" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
    assert keys(base, "tiny-adapters/") == []  # nothing was uploaded


def test_push_needs_the_base_model_in_s3(llmctl, aws, tmp_path):
    from llmctl.actions import adapter
    from llmctl.config import Names, load_config
    from llmctl.errors import ConfigError

    aws.client("s3").create_bucket(Bucket="models")
    cfg = load_config(llmctl.write_config(CONFIG))
    with pytest.raises(ConfigError) as refused:
        adapter.push(cfg, Names.from_config(cfg), aws.client("s3"), make_tiny_lora(tmp_path / "a"), "a")
    assert "no base model at s3://models/tiny" in refused.value.message and "model upload" in refused.value.hint


def test_deploy_serves_every_pushed_adapter_with_the_rank_derived(llmctl, base, tmp_path):
    from llmctl.actions import adapter
    from llmctl.actions.adapter_env import adapter_env, with_discovered
    from llmctl.config import Names, load_config

    cfg = load_config(llmctl.write_config(CONFIG))
    assert with_discovered(cfg, base) is cfg and adapter_env(cfg) == {}  # none pushed: LoRA stays off
    for name, rank in (("sql", 8), ("chat", 16)):
        adapter.push(cfg, Names.from_config(cfg), base, make_tiny_lora(tmp_path / name, rank=rank), name)
    env = adapter_env(with_discovered(cfg, base))
    assert env["ADAPTERS"] == "chat=tiny-adapters/chat sql=tiny-adapters/sql" and env["MAX_LORA_RANK"] == "16"
    assert env["ENABLE_LORA"] == "true" and env["MAX_LORAS"] == "3"



def test_without_model_bucket_a_running_local_stack_keeps_them_in_its_embedded_s3(llmctl, moto_server, tiny_model_dir,
                                                                                  tmp_path):
    """`local up`'s S3 (a moto server, as `local up` runs it) holds the model it serves: push, list and rm go there."""
    from llmctl.actions.local import LOCAL_BUCKET
    from llmctl.procs import free_port
    from llmctl.state import StateStore

    moto_server.reset()
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket=LOCAL_BUCKET)
    model.upload_model(s3, tiny_model_dir, LOCAL_BUCKET, "tiny", {})
    llmctl.write_config("project:\n  name: demo\nmodel:\n  prefix: tiny\n")  # no model.bucket, as demo/llmctl.yaml
    gone = f"http://127.0.0.1:{free_port()}"  # the stack's server stopped answering
    StateStore(llmctl.cwd / ".llmctl", "demo").set("local", {"url": gone, "api_key": "k", "s3_url": moto_server.url,
                                                             "state_dir": str(tmp_path)})
    pushed = json.loads(llmctl("adapter", "push", str(make_tiny_lora(tmp_path / "sql")), "--name", "sql", "-o", "json",
                               check=True).stdout)
    assert pushed["uri"] == f"s3://{LOCAL_BUCKET}/tiny-adapters/sql/" and keys(s3, "tiny-adapters/sql/", LOCAL_BUCKET)
    listed = json.loads(llmctl("adapter", "list", "-o", "json").stdout)
    assert [a["name"] for a in listed["adapters"]] == ["sql"]
    assert listed["replicas"][0]["replica"] == "local" and listed["replicas"][0]["adapters"] is None
    assert "unreachable" in listed["replicas"][0]["error"]
    live = llmctl("adapter", "rm", "sql", "--live", "--yes")
    assert live.returncode == 1 and "nothing deleted from S3" in live.stdout and keys(s3, "tiny-adapters/sql/", LOCAL_BUCKET)
    assert "error: adapter sql is unloaded on no replica; failed on local (nothing deleted from S3)" in live.stderr
    llmctl("adapter", "rm", "sql", "--yes", check=True)
    assert keys(s3, "tiny-adapters/sql/", LOCAL_BUCKET) == []

