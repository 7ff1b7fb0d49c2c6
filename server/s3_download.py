"""Verified, resumable, parallel S3 -> local model download (used by `python -m server.download_model`).

Every file is fetched as ranged GETs (botocore, pooled connections) in parallel parts written at
their offsets into `<file>.llmctl-part`; a journal beside it records finished parts, so a killed
download resumes where it stopped. When the manifest has per-part sha256 digests for the part size
in use, each part is hashed as it streams in and fetched again once on a mismatch (no second read
of the file); otherwise the finished file is verified (the manifest's sha256, else size plus the
MD5 ETag of single-part uploads) and fetched again once on a mismatch. Only a verified file is
renamed into place; the completion marker is written last.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from server.settings import COMPLETE_MARKER, MANIFEST_NAME

PART_SUFFIX = ".llmctl-part"
JOURNAL_SUFFIX = ".llmctl-part.journal"
# Each chunk is received, hashed and written to the page cache while it is still in the CPU's L2
# cache: 256 KiB takes a third less CPU than 1 MiB chunks (benchmarks/download.py, 2 cores).
CHUNK = 256 * 1024


class DownloadError(Exception):
    """One line for the operator: what failed and what to check."""


@dataclass
class RemoteFile:
    path: str
    size: int
    sha256: str | None = None
    etag: str | None = None
    part_size: int | None = None
    part_sha256: list[str] | None = None

    def check_path(self) -> None:
        p = PurePosixPath(self.path)
        if p.is_absolute() or ".." in p.parts or not self.path or self.path.endswith("/"):
            raise DownloadError(f"refusing unsafe path {self.path!r} in the model listing")


@dataclass
class Progress:
    bytes_total: int = 0
    files_total: int = 0
    bytes_done: int = 0
    files_done: int = 0
    bytes_fetched: int = 0  # this run, over the network
    refetched: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fetched: int = 0, done: int = 0, files: int = 0) -> None:
        with self.lock:
            self.bytes_fetched += fetched
            self.bytes_done += done
            self.files_done += files


def hash_range(fd: int, start: int, end: int, h) -> None:
    """Feed bytes start..end (inclusive) of an open file into hasher `h`."""
    offset = start
    while offset <= end and (chunk := os.pread(fd, min(CHUNK, end + 1 - offset), offset)):
        h.update(chunk)
        offset += len(chunk)


def verify(local: Path, remote: RemoteFile) -> bool:
    """A file already on disk: right size and, where S3 or the manifest gives one, right digest."""
    if not local.is_file() or local.stat().st_size != remote.size:
        return False
    algorithm, expected = expected_digest(remote)
    if algorithm is None:
        return True
    with local.open("rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest() == expected


def expected_digest(remote: RemoteFile) -> tuple[str | None, str | None]:
    """(hash algorithm, hex digest) a file is checked against: the manifest's sha256, else the
    MD5 that a single-part upload's ETag is; (None, None) when S3 gives only the size."""
    if remote.sha256:
        return "sha256", remote.sha256
    etag = (remote.etag or "").strip('"')
    if etag and "-" not in etag:
        return "md5", etag
    return None, None


class FileTask:
    """One file being fetched in parts. With per-part digests each part is checked as it streams in;
    otherwise parts are fed to the whole-file hasher in order as soon as they are contiguous."""

    def __init__(self, remote: RemoteFile, part_path: Path, journal_path: Path, part_size: int, done: set[int],
                 retries: int):
        self.remote, self.part_path, self.journal_path, self.retries = remote, part_path, journal_path, retries
        count = max(1, -(-remote.size // part_size))
        self.parts = [(i, i * part_size, min(remote.size, (i + 1) * part_size) - 1) for i in range(count)]
        self.completed = set(done)
        self.left = count - len(done)
        self.lock, self.hash_lock = threading.Lock(), threading.Lock()
        # Per-part digests that match this part size verify each part as it arrives.
        self.part_digests = remote.part_sha256 if (
            remote.part_size == part_size and remote.part_sha256 and len(remote.part_sha256) == count) else None
        algorithm, self.expected = (None, None) if self.part_digests else expected_digest(remote)
        self.hasher = hashlib.new(algorithm) if algorithm else None
        self.hashed = 0  # parts [0, hashed) are in the hasher
        self.fd = os.open(part_path, os.O_RDWR | os.O_CREAT)
        os.ftruncate(self.fd, remote.size)
        self.journal = journal_path.open("a")

    def drop_corrupt_parts(self) -> list[int]:
        """Re-hash the parts a resumed journal claims; forget (to fetch again) those that differ."""
        bad = []
        for index in sorted(self.completed):
            _, start, end = self.parts[index]
            h = hashlib.sha256()
            hash_range(self.fd, start, end, h)
            if h.hexdigest() != self.part_digests[index]:
                self.completed.discard(index)
                self.left += 1
                bad.append(index)
        return bad

    def part_done(self, index: int) -> bool:
        """Journal the part (a restart skips it); True for the file's last part."""
        with self.lock:
            self.journal.write(f"{index}\n")
            self.journal.flush()
            self.completed.add(index)
            self.left -= 1
            last = self.left == 0
        self._hash_ready(block=False)
        return last

    def _hash_ready(self, block: bool) -> None:
        while True:
            if not self.hash_lock.acquire(blocking=block):
                return  # the holder re-checks after releasing, so nothing is missed
            try:
                while self.hasher and self.hashed < len(self.parts) and self.hashed in self.completed:
                    _, start, end = self.parts[self.hashed]
                    hash_range(self.fd, start, end, self.hasher)
                    self.hashed += 1
            finally:
                self.hash_lock.release()
            if block or not self.hasher or self.hashed >= len(self.parts) or self.hashed not in self.completed:
                return

    def verified(self) -> bool:
        self._hash_ready(block=True)
        if os.fstat(self.fd).st_size != self.remote.size:
            return False
        return self.hasher is None or self.hasher.hexdigest() == self.expected

    def close(self) -> None:
        os.close(self.fd)
        self.journal.close()


class Downloader:
    def __init__(self, s3, bucket: str, prefix: str, dest: Path, *, part_size: int, concurrency: int,
                 on_event: Callable[[dict], None] = lambda e: None, manifest_digest: str | None = None):
        self.s3, self.bucket, self.dest = s3, bucket, dest
        self.manifest_digest = manifest_digest  # "sha256:<hex>" of the manifest the deploy recorded, if any
        self.prefix = prefix.strip("/")
        self.part_size, self.concurrency, self.on_event = part_size, concurrency, on_event
        self.progress = Progress()
        self._errors: list[BaseException] = []

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def plan(self) -> tuple[list[RemoteFile], dict]:
        """The files to have locally: the manifest's, else the prefix's listing."""
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key(MANIFEST_NAME))["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            if self.manifest_digest:
                raise DownloadError(f"{self.url}/{MANIFEST_NAME} is gone, but this revision was deployed with "
                                    f"{self.manifest_digest}: upload the model again, then `llmctl deploy`") from None
            return self._listing(), {}
        found = "sha256:" + hashlib.sha256(body).hexdigest()
        if self.manifest_digest and found != self.manifest_digest:
            raise DownloadError(f"{self.url}/{MANIFEST_NAME} is {found}, but this revision was deployed with "
                                f"{self.manifest_digest}: the weights changed since; `llmctl deploy` again makes "
                                "them a new revision")
        try:
            manifest = json.loads(body)
            files = [RemoteFile(f["path"], int(f["size"]), f.get("sha256"), part_size=f.get("part_size"),
                                part_sha256=f.get("part_sha256")) for f in manifest["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DownloadError(f"{self.url}/{MANIFEST_NAME} is not a valid llmctl manifest ({exc})") from None
        for f in files:
            f.check_path()
        return files, manifest

    def _listing(self) -> list[RemoteFile]:
        files = []
        start = f"{self.prefix}/" if self.prefix else ""
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    files.append(RemoteFile(obj["Key"][len(start):], obj["Size"], etag=obj.get("ETag")))
        if not files:
            raise DownloadError(f"no objects under {self.url}/ (wrong S3_PREFIX?)")
        for f in files:
            f.check_path()
        return files

    def run(self) -> dict:
        files, manifest = self.plan()
        self.dest.mkdir(parents=True, exist_ok=True)
        marker = self.dest / COMPLETE_MARKER
        p = self.progress
        p.bytes_total, p.files_total = sum(f.size for f in files), len(files)
        todo = []
        for f in files:
            if verify(self.dest / f.path, f):
                p.add(done=f.size, files=1)
            else:
                todo.append(f)
        self.on_event({"event": "start", "source": self.url, "dest": str(self.dest), "files_total": p.files_total,
                       "bytes_total": p.bytes_total, "files_present": p.files_done})
        if todo:
            marker.unlink(missing_ok=True)
            self._check_space(todo)
            local_manifest = manifest or {"version": 1, "files": [{"path": f.path, "size": f.size, "etag": f.etag}
                                                                  for f in files]}
            (self.dest / MANIFEST_NAME).write_text(json.dumps(local_manifest, indent=2) + "\n")
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3get") as pool:
                self.pool = pool
                for f in todo:
                    self._start_file(f, retries=1)
                self._wait()
        marker.write_text(json.dumps({"source": self.url, "files": p.files_total, "bytes": p.bytes_total,
                                      "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
        return {"files_total": p.files_total, "bytes_total": p.bytes_total, "files_downloaded": len(todo),
                "bytes_fetched": p.bytes_fetched, "refetched": p.refetched}

    def _check_space(self, todo: list[RemoteFile]) -> None:
        need = sum(f.size for f in todo)
        free = shutil.disk_usage(self.dest).free
        if free < need:
            raise DownloadError(f"disk full: {self.dest} has {free} bytes free, the model needs {need} more")

    # --- parts -------------------------------------------------------------------------------
    def _start_file(self, f: RemoteFile, retries: int) -> None:
        local = self.dest / f.path
        local.parent.mkdir(parents=True, exist_ok=True)
        part, journal = local.with_name(local.name + PART_SUFFIX), local.with_name(local.name + JOURNAL_SUFFIX)
        header = json.dumps({"size": f.size, "sha256": f.sha256, "etag": f.etag, "part_size": self.part_size})
        done: set[int] = set()
        if part.exists() and journal.exists():
            lines = journal.read_text().splitlines()
            if lines and lines[0] == header:
                done = {int(x) for x in lines[1:] if x.strip().isdigit()}
        if not done:
            journal.write_text(header + "\n")
        task = FileTask(f, part, journal, self.part_size, done, retries)
        if task.part_digests and done:
            for index in task.drop_corrupt_parts():
                self.on_event({"event": "verify_failed", "path": f.path, "part": index, "action": "refetch"})
        self.progress.add(done=sum(end - start + 1 for i, start, end in task.parts if i in task.completed))
        if task.left == 0:
            self.pool.submit(self._guard, self._finish_file, task)
        for i, start, end in task.parts:
            if i not in task.completed:
                self.pool.submit(self._guard, self._fetch_part, task, i, start, end)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - surfaced by _wait, first error wins
            self._errors.append(exc)

    def _fetch_part(self, task: FileTask, index: int, start: int, end: int) -> None:
        if self._errors:
            return
        f = task.remote
        for attempt in (1, 2):
            digest = self._fetch_range(task, start, end)
            if task.part_digests is None or digest == task.part_digests[index]:
                break
            self.progress.add(done=-(end + 1 - start))
            if attempt == 2:
                raise DownloadError(f"{self.key(f.path)} bytes {start}-{end} failed verification twice (checksum mismatch)")
            if f.path not in self.progress.refetched:
                self.progress.refetched.append(f.path)
            self.on_event({"event": "verify_failed", "path": f.path, "part": index, "action": "refetch"})
        if task.part_done(index):
            self._finish_file(task)

    def _fetch_range(self, task: FileTask, start: int, end: int) -> str | None:
        """Write bytes start..end at their offset; their sha256 when the file has per-part digests."""
        f = task.remote
        h = hashlib.sha256() if task.part_digests is not None else None
        if not f.size:
            return h.hexdigest() if h is not None else None
        body = self.s3.get_object(Bucket=self.bucket, Key=self.key(f.path), Range=f"bytes={start}-{end}")["Body"]
        offset = start
        while chunk := body.read(CHUNK):
            try:
                os.pwrite(task.fd, chunk, offset)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise DownloadError(f"disk full writing {self.dest / f.path}") from None
                raise
            if h is not None:
                h.update(chunk)
            offset += len(chunk)
            self.progress.add(fetched=len(chunk), done=len(chunk))
        if offset != end + 1:
            raise DownloadError(f"short read on {self.key(f.path)} bytes {start}-{end}")
        return h.hexdigest() if h is not None else None

    def _finish_file(self, task: FileTask) -> None:
        f = task.remote
        ok = task.verified()
        task.close()
        if ok:
            os.replace(task.part_path, self.dest / f.path)
            task.journal_path.unlink(missing_ok=True)
            self.progress.add(files=1)
            return
        task.part_path.unlink(missing_ok=True)
        task.journal_path.unlink(missing_ok=True)
        self.progress.add(done=-f.size)
        if task.retries <= 0:
            raise DownloadError(f"{self.key(f.path)} failed verification twice (checksum mismatch)")
        self.progress.refetched.append(f.path)
        self.on_event({"event": "verify_failed", "path": f.path, "action": "refetch"})
        self._start_file(f, retries=task.retries - 1)

    def _wait(self) -> None:
        """Block until every file is in place (a re-fetch enqueues more parts), raising the first error."""
        while self.progress.files_done < self.progress.files_total:
            if self._errors:
                self.pool.shutdown(wait=True, cancel_futures=True)
                raise self._errors[0]
            time.sleep(0.02)
