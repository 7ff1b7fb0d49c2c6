"""`llmctl model upload` and `python -m server.download_model` against the moto server: verified,
resumable, skip-unchanged, one clear line per failure."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from llmctl.actions.model import MANIFEST_NAME, upload_model
from llmctl.errors import LlmctlError
from tests.fixtures.server import REPO

TAGS = {"llmctl.io/deployment": "demo", "llmctl.io/managed-by": "llmctl"}


@pytest.fixture
def s3(moto_server):
    return moto_server.client("s3")


@pytest.fixture
def bucket(s3) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def downloader(moto_server, bucket: str, prefix: str, dest: Path, **env: str) -> subprocess.Popen:
    full_env = {**os.environ, **moto_server.env, "S3_BUCKET": bucket, "S3_PREFIX": prefix, "MODEL_PATH": str(dest),
                "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen([sys.executable, "-m", "server.download_model"], cwd=REPO, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def download(moto_server, bucket: str, prefix: str, dest: Path, **env: str) -> tuple[int, list[dict], str]:
    proc = downloader(moto_server, bucket, prefix, dest, **env)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def test_upload_then_download_round_trip_and_skips(s3, bucket, moto_server, tiny_model_dir, tmp_path):
    seen = []
    result = upload_model(s3, tiny_model_dir, bucket, "tiny/v1", TAGS, progress=lambda d, t: seen.append((d, t)))
    assert sorted(result.uploaded) == sorted(p.name for p in tiny_model_dir.iterdir()) and result.skipped == []
    assert seen[-1][0] == seen[-1][1] == result.bytes_total
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"tiny/v1/{MANIFEST_NAME}")["Body"].read())
    assert manifest["version"] == 1 and {f["path"] for f in manifest["files"]} == set(result.uploaded)
    tags = s3.get_object_tagging(Bucket=bucket, Key="tiny/v1/model.safetensors")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS

    again = upload_model(s3, tiny_model_dir, bucket, "tiny/v1", TAGS)
    assert again.uploaded == [] and len(again.skipped) == len(result.uploaded)

    dest = tmp_path / "model"
    code, events, err = download(moto_server, bucket, "tiny/v1", dest)
    assert code == 0, err
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[-1]["bytes_fetched"] == manifest["total_bytes"]
    assert same_files(tiny_model_dir, dest) and (dest / ".llmctl-complete").exists()

    code, events, _ = download(moto_server, bucket, "tiny/v1", dest)
    assert code == 0 and events[-1]["bytes_fetched"] == 0 and events[-1]["files_downloaded"] == 0


def test_upload_rejects_a_folder_that_is_not_a_model(s3, bucket, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LlmctlError, match="has no weights"):
        upload_model(s3, tmp_path, bucket, "x", TAGS)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(LlmctlError, match="has no tokenizer"):
        upload_model(s3, tmp_path, bucket, "x", TAGS)


def big_model(folder: Path, mib: int) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(os.urandom(mib * 1024 * 1024))
    return folder


def test_killed_download_resumes_and_a_corrupted_part_is_refetched(s3, bucket, moto_server, tmp_path):
    source = big_model(tmp_path / "src", 96)
    upload_model(s3, source, bucket, "big", TAGS)
    dest = tmp_path / "model"
    proc = downloader(moto_server, bucket, "big", dest, DOWNLOAD_PART_MB="1", DOWNLOAD_CONCURRENCY="1")
    journal = dest / "model.safetensors.llmctl-part.journal"
    deadline = time.monotonic() + 60
    while not (journal.exists() and len(journal.read_text().splitlines()) > 8):
        assert proc.poll() is None and time.monotonic() < deadline, "finished before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not (dest / "model.safetensors").exists() and not (dest / ".llmctl-complete").exists()
    done_parts = len(journal.read_text().splitlines()) - 1

    code, events, err = download(moto_server, bucket, "big", dest, DOWNLOAD_PART_MB="1")
    assert code == 0, err
    assert events[-1]["bytes_fetched"] <= 96 * 1024 * 1024 - done_parts * 1024 * 1024 + 2 * 1024 * 1024
    assert same_files(source, dest)

    # Flip one byte: the next run's checksum notices it and fetches that file again.
    data = bytearray((dest / "model.safetensors").read_bytes())
    data[12345] ^= 0xFF
    (dest / "model.safetensors").write_bytes(bytes(data))
    code, events, _ = download(moto_server, bucket, "big", dest, DOWNLOAD_PART_MB="8")
    assert code == 0 and events[-1]["files_downloaded"] == 1 and same_files(source, dest)


def test_a_corrupted_resumed_part_fails_verification_and_is_refetched(s3, bucket, moto_server, tmp_path):
    source = big_model(tmp_path / "src", 4)
    upload_model(s3, source, bucket, "m", TAGS)
    dest = tmp_path / "model"
    dest.mkdir()
    # A partial download whose journal claims part 0 is done, but a byte in it is wrong.
    header = json.dumps({"size": 4 * 1024 * 1024, "sha256": json.loads(
        s3.get_object(Bucket=bucket, Key=f"m/{MANIFEST_NAME}")["Body"].read())["files"][1]["sha256"],
        "etag": None, "part_size": 1024 * 1024})
    data = bytearray((source / "model.safetensors").read_bytes()[: 1024 * 1024])
    data[7] ^= 0x01
    (dest / "model.safetensors.llmctl-part").write_bytes(bytes(data))
    (dest / "model.safetensors.llmctl-part.journal").write_text(header + "\n0\n")
    code, events, err = download(moto_server, bucket, "m", dest, DOWNLOAD_PART_MB="1")
    assert code == 0, err
    assert {"event": "verify_failed", "path": "model.safetensors", "action": "refetch"} in events
    assert same_files(source, dest)


def test_per_part_digests_catch_a_corrupted_part_and_refetch_only_that_part(s3, bucket, moto_server, tmp_path):
    source = big_model(tmp_path / "src", 4)
    upload_model(s3, source, bucket, "m", TAGS, part_size=1024 * 1024)
    entry = next(f for f in json.loads(s3.get_object(Bucket=bucket, Key=f"m/{MANIFEST_NAME}")["Body"].read())["files"]
                 if f["path"] == "model.safetensors")
    assert entry["part_size"] == 1024 * 1024 and len(entry["part_sha256"]) == 4
    dest = tmp_path / "model"
    dest.mkdir()
    # A resumed download whose journal claims parts 0 and 2, with a byte of part 2 wrong on disk.
    data = bytearray((source / "model.safetensors").read_bytes())
    data[2 * 1024 * 1024 + 5] ^= 0x01
    (dest / "model.safetensors.llmctl-part").write_bytes(bytes(data))
    header = json.dumps({"size": entry["size"], "sha256": entry["sha256"], "etag": None, "part_size": 1024 * 1024})
    (dest / "model.safetensors.llmctl-part.journal").write_text(header + "\n0\n2\n")
    code, events, err = download(moto_server, bucket, "m", dest, DOWNLOAD_PART_MB="1")
    assert code == 0, err
    assert {"event": "verify_failed", "path": "model.safetensors", "part": 2, "action": "refetch"} in events
    assert events[-1]["bytes_fetched"] == 3 * 1024 * 1024 + sum(  # parts 1, 2, 3 and the small files
        (source / n).stat().st_size for n in ("config.json", "tokenizer.json"))
    assert same_files(source, dest)


def test_a_part_that_never_matches_its_digest_fails_with_one_line(s3, bucket, moto_server, tmp_path):
    source = big_model(tmp_path / "src", 2)
    upload_model(s3, source, bucket, "m", TAGS, part_size=1024 * 1024)
    data = bytearray((source / "model.safetensors").read_bytes())
    data[1024 * 1024 + 9] ^= 0xFF  # the object in S3 no longer matches the manifest
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=bytes(data))
    code, _, err = download(moto_server, bucket, "m", tmp_path / "model", DOWNLOAD_PART_MB="1")
    assert code == 1
    assert err.strip() == "download_model: m/model.safetensors bytes 1048576-2097151 failed verification twice (checksum mismatch)"
    assert not (tmp_path / "model" / "model.safetensors").exists()


def test_without_a_manifest_files_are_checked_by_size_and_etag(s3, bucket, moto_server, tmp_path):
    s3.put_object(Bucket=bucket, Key="raw/config.json", Body=b'{"a": 1}')
    s3.put_object(Bucket=bucket, Key="raw/sub/weights.bin", Body=b"w" * 1000)
    dest = tmp_path / "model"
    code, events, err = download(moto_server, bucket, "raw/", dest)
    assert code == 0, err
    assert (dest / "sub" / "weights.bin").read_bytes() == b"w" * 1000
    assert events[0]["files_total"] == 2


def test_progress_lines_at_least_once_a_second(s3, bucket, moto_server, tmp_path):
    source = big_model(tmp_path / "src", 64)
    upload_model(s3, source, bucket, "p", TAGS)
    code, events, err = download(moto_server, bucket, "p", tmp_path / "model", DOWNLOAD_CONCURRENCY="1",
                                 DOWNLOAD_PART_MB="1")
    assert code == 0, err
    progress = [e for e in events if e["event"] == "progress"]
    for e in progress:
        assert set(e) == {"event", "bytes_done", "bytes_total", "files_done", "files_total", "rate_bps"}
    assert len(progress) >= int(events[-1]["seconds"]) - 1
    assert all(a["bytes_done"] <= b["bytes_done"] for a, b in itertools.pairwise(progress))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-bucket", "bucket {bucket}-nope does not exist"),
        ("missing-prefix", "no objects under s3://{bucket}/nothing-here/"),
        ("access-denied", "access denied to s3://{bucket}/secret"),
    ],
)
def test_failures_exit_1_with_one_clear_line(s3, bucket, moto_server, tmp_path, case, message):
    target = bucket
    prefix = {"missing-prefix": "nothing-here", "access-denied": "secret"}.get(case, "x")
    if case == "missing-bucket":
        target = f"{bucket}-nope"
    if case == "access-denied":
        s3.put_object(Bucket=bucket, Key="secret/config.json", Body=b"{}")
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    code, events, err = download(moto_server, target, prefix, tmp_path / "model")
    assert code == 1
    line = message.format(bucket=bucket)
    assert err.strip().startswith(f"download_model: {line}") and len(err.strip().splitlines()) == 1
    assert events[-1]["event"] == "error" and line in events[-1]["message"]
    assert not (tmp_path / "model" / ".llmctl-complete").exists()


def test_disk_full_is_one_clear_line(s3, bucket, tmp_path, monkeypatch, moto_server):
    import shutil

    from server.s3_download import Downloader, DownloadError

    source = big_model(tmp_path / "src", 2)
    upload_model(s3, source, bucket, "d", TAGS)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 9, 1))
    with pytest.raises(DownloadError, match=r"disk full: .* has 1 bytes free, the model needs \d+ more"):
        Downloader(s3, bucket, "d", tmp_path / "model", part_size=1 << 20, concurrency=2).run()


def test_the_revision_s_manifest_digest_is_the_only_one_the_downloader_takes(s3, bucket, moto_server,
                                                                              tiny_model_dir, tmp_path):
    """`llmctl deploy` records the manifest's digest and hands it to the init container: weights uploaded again
    after the deploy read them are refused in one line, never loaded as that revision."""
    import hashlib

    upload_model(s3, tiny_model_dir, bucket, "tiny/v1", TAGS)
    body = s3.get_object(Bucket=bucket, Key=f"tiny/v1/{MANIFEST_NAME}")["Body"].read()
    recorded = "sha256:" + hashlib.sha256(body).hexdigest()
    code, events, err = download(moto_server, bucket, "tiny/v1", tmp_path / "ok", MODEL_MANIFEST_DIGEST=recorded)
    assert code == 0 and events[-1]["event"] == "done", err
    other = "sha256:" + "0" * 64  # what a re-upload since the deploy would leave
    code, events, err = download(moto_server, bucket, "tiny/v1", tmp_path / "other", MODEL_MANIFEST_DIGEST=other)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"s3://{bucket}/tiny/v1/{MANIFEST_NAME} is {recorded}, but this revision was deployed with {other}" in err
    assert not (tmp_path / "other" / ".llmctl-complete").exists()
    s3.delete_object(Bucket=bucket, Key=f"tiny/v1/{MANIFEST_NAME}")
    code, _, err = download(moto_server, bucket, "tiny/v1", tmp_path / "gone", MODEL_MANIFEST_DIGEST=recorded)
    assert code == 1 and f"is gone, but this revision was deployed with {recorded}" in err
