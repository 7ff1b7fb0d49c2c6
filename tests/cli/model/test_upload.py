"""`llmctl model upload` against the moto server, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from llmctl.actions import model


def test_upload_then_reupload_skips_unchanged(llmctl, aws, tiny_model_dir):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="models")
    llmctl.write_config("project:\n  name: demo\nmodel:\n  bucket: models\n  prefix: tiny\n")

    first = json.loads(llmctl("model", "upload", str(tiny_model_dir), "-o", "json", check=True).stdout)
    assert first["skipped"] == [] and "config.json" in first["uploaded"]
    manifest = json.loads(s3.get_object(Bucket="models", Key="tiny/llmctl-manifest.json")["Body"].read())
    assert {f["path"] for f in manifest["files"]} == set(first["uploaded"])
    tags = s3.get_object_tagging(Bucket="models", Key="tiny/config.json")["TagSet"]
    assert {"Key": "llmctl.io/deployment", "Value": "demo"} in tags
    assert {"Key": "llmctl.io/managed-by", "Value": "llmctl"} in tags

    second = json.loads(llmctl("model", "upload", str(tiny_model_dir), "-o", "json", check=True).stdout)
    assert second["uploaded"] == [] and sorted(second["skipped"]) == sorted(first["uploaded"])


def test_upload_needs_a_bucket_and_a_model_folder(llmctl, aws, tmp_path):
    done = llmctl("model", "upload", str(tmp_path))
    assert done.returncode == 2 and "model.bucket" in done.stderr and "Traceback" not in done.stderr
    done = llmctl("model", "upload", str(tmp_path), "--bucket", "models")
    assert done.returncode == 2 and "config.json" in done.stderr


@pytest.mark.parametrize("size", [0, 999, 1000, 2500])
def test_manifest_digests_cover_the_whole_file_and_each_part(tmp_path, monkeypatch, size):
    monkeypatch.setattr(model, "HASH_CHUNK", 300)  # several reads per part, the last one short
    data = os.urandom(size)
    (tmp_path / "w.bin").write_bytes(data)
    whole, parts = model.file_digests(tmp_path / "w.bin", part_size=1000)
    assert whole == hashlib.sha256(data).hexdigest()
    assert parts == [hashlib.sha256(data[i:i + 1000]).hexdigest() for i in range(0, size, 1000)]
