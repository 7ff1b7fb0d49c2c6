"""The init container's downloader fetches and verifies every declared adapter beside the model (moto, no engine)."""

from __future__ import annotations

from llmctl.actions.adapter_fit import read_adapter
from llmctl.actions.model import upload_model
from tests.fixtures.server import make_tiny_lora
from tests.server.test_download import TAGS, bucket, download, s3  # noqa: F401 - fixtures


def test_every_declared_adapter_is_downloaded_verified_and_a_missing_manifest_fails(s3, bucket, moto_server,  # noqa: F811
                                                                                   tiny_model_dir, tmp_path):
    upload_model(s3, tiny_model_dir, bucket, "tiny", TAGS)
    adapters = {"sql": make_tiny_lora(tmp_path / "sql", seed=1), "chat": make_tiny_lora(tmp_path / "chat", rank=16, seed=2)}
    for name, folder in adapters.items():
        upload_model(s3, folder, bucket, f"tiny-adapters/{name}", TAGS, files=read_adapter(folder).files)
    root = tmp_path / "models" / "tiny-adapters"
    env = {"ADAPTERS": "sql=tiny-adapters/sql chat=tiny-adapters/chat", "ADAPTERS_PATH": str(root)}
    code, events, err = download(moto_server, bucket, "tiny", tmp_path / "models" / "tiny", **env)
    assert code == 0, err
    assert events[-1]["event"] == "done" and [a["name"] for a in events[-1]["adapters"]] == ["sql", "chat"]
    assert {e["name"] for e in events if e["event"] == "adapter_done"} == {"sql", "chat"}
    for name, folder in adapters.items():
        for path in ("adapter_config.json", "adapter_model.safetensors"):
            assert (root / name / path).read_bytes() == (folder / path).read_bytes()
        assert (root / name / ".llmctl-complete").exists()

    s3.delete_object(Bucket=bucket, Key="tiny-adapters/chat/llmctl-manifest.json")  # a half-pushed adapter
    code, events, err = download(moto_server, bucket, "tiny", tmp_path / "again", **env)
    assert code == 1 and events[-1]["event"] == "error"
    assert err.strip() == (f"download_model: adapter chat: s3://{bucket}/tiny-adapters/chat/llmctl-manifest.json is "
                           "missing (push it with `llmctl adapter push`, or remove it from model.adapters)")
    code, _, err = download(moto_server, bucket, "tiny", tmp_path / "x", ADAPTERS="nameonly")
    assert code == 2 and "ADAPTERS entry 'nameonly' must be name=key-prefix" in err


def test_a_replica_started_after_a_push_fetches_and_serves_every_complete_pushed_adapter(s3, bucket, moto_server,  # noqa: F811
                                                                                        tiny_model_dir, tmp_path):
    """`adapter push` after the deploy: the pod's ADAPTERS predates it, ADAPTERS_ROOT finds it."""
    from server.settings import load_settings

    upload_model(s3, tiny_model_dir, bucket, "tiny", TAGS)
    for name in ("sql", "new"):
        folder = make_tiny_lora(tmp_path / name, seed=len(name))
        upload_model(s3, folder, bucket, f"tiny-adapters/{name}", TAGS, files=read_adapter(folder).files)
    half = make_tiny_lora(tmp_path / "half", seed=9)
    s3.put_object(Bucket=bucket, Key="tiny-adapters/half/adapter_config.json",  # a push that did not finish
                  Body=(half / "adapter_config.json").read_bytes())
    root = tmp_path / "models" / "tiny-adapters"
    env = {"ADAPTERS": "sql=tiny-adapters/sql", "ADAPTERS_PATH": str(root), "ADAPTERS_ROOT": "tiny-adapters"}
    code, events, err = download(moto_server, bucket, "tiny", tmp_path / "models" / "tiny", **env)
    assert code == 0, err
    assert [a["name"] for a in events[-1]["adapters"]] == ["sql", "new"]
    assert (root / "new" / "adapter_model.safetensors").read_bytes() == (tmp_path / "new" / "adapter_model.safetensors").read_bytes()
    assert (root / ".llmctl-pushed").read_text() == "new\n" and not (root / "half").exists()

    settings = load_settings({"MODEL_PATH": str(tmp_path / "models" / "tiny"), "ENABLE_LORA": "true",
                              "LORA_MODULES": f"sql={root / 'sql'}", "ADAPTERS_PATH": str(root)})
    assert settings.lora_modules == (f"sql={root / 'sql'}", f"new={root / 'new'}")  # served from the start
