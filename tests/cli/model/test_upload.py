"""`llmctl model upload` against the moto server, as a user runs it."""

from __future__ import annotations

import json


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
