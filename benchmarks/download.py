"""Model download throughput: `python -m server.download_model` against `s5cmd cp` and boto3's
`download_file`, the same ~1 GiB multi-file model from the same moto server (its own process).

Target (issue 3): ours >= 0.9x s5cmd's throughput. Ours also verifies every byte (sha256); the
others do not. Rounds alternate the tools; the median per tool is reported.

    .venv/bin/python benchmarks/download.py [--mib 1024 --files 4 --rounds 5] [--tools ours,s5cmd,boto3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
BUCKET, PREFIX = "bench-models", "big-model"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
         "AWS_DEFAULT_REGION": "us-east-1"}
BOTO3_SCRIPT = """
import sys, boto3
s3 = boto3.client("s3")
bucket, prefix, dest = sys.argv[1:4]
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for obj in page.get("Contents", []):
        rel = obj["Key"][len(prefix) + 1:]
        target = dest + "/" + rel
        import os; os.makedirs(os.path.dirname(target), exist_ok=True)
        s3.download_file(bucket, obj["Key"], target)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_model(folder: Path, mib: int, files: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (folder / "tokenizer.json").write_text("{}")
    per_file = mib // files
    for i in range(files):
        with (folder / f"model-{i + 1:05d}-of-{files:05d}.safetensors").open("wb") as f:
            for _ in range(per_file):
                f.write(os.urandom(1024 * 1024))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tools", default="ours,s5cmd,boto3", help="comma-separated subset to run")
    args = parser.parse_args()
    import boto3

    from llmctl.actions.model import upload_model

    work = Path(tempfile.mkdtemp(prefix="download-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, **CREDS, "AWS_ENDPOINT_URL": url}
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        source = make_model(work / "source", args.mib, args.files)
        upload_model(s3, source, BUCKET, PREFIX, {"llmctl.io/managed-by": "llmctl"})
        total = sum(p.stat().st_size for p in source.iterdir())
        s5cmd = shutil.which("s5cmd") or str(Path(sys.executable).with_name("s5cmd"))
        tools = {
            "ours": lambda d: [sys.executable, "-m", "server.download_model"],
            "s5cmd": lambda d: [s5cmd, "--endpoint-url", url, "cp", f"s3://{BUCKET}/{PREFIX}/*", f"{d}/"],
            "boto3": lambda d: [sys.executable, "-c", BOTO3_SCRIPT, BUCKET, PREFIX, str(d)],
        }
        tools = {name: cmd for name, cmd in tools.items() if name in args.tools.split(",")}
        seconds: dict[str, list[float]] = {name: [] for name in tools}
        for r in range(args.rounds):
            order = list(tools) if r % 2 == 0 else list(reversed(tools))
            for name in order:
                dest = work / f"{name}-{r}"
                run_env = {**env, "S3_BUCKET": BUCKET, "S3_PREFIX": PREFIX, "MODEL_PATH": str(dest)}
                dest.mkdir()
                start = time.perf_counter()
                subprocess.run(tools[name](dest), cwd=REPO, env=run_env, check=True, stdout=subprocess.DEVNULL)
                seconds[name].append(time.perf_counter() - start)
                got = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and p.suffix != ".json")
                assert got >= total - 4096, (name, got, total)
                shutil.rmtree(dest)
    finally:
        moto.terminate()
        moto.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"model: {total / 2**20:.0f} MiB in {args.files + 2} files, moto server on loopback, "
          f"{args.rounds} rounds (median wall time, process start included)")
    rate = {name: total / statistics.median(s) for name, s in seconds.items()}
    for name, s in seconds.items():
        print(f"{name:6} {statistics.median(s):6.2f} s  {rate[name] / 2**20:7.1f} MiB/s  (rounds: "
              + ", ".join(f"{x:.2f}" for x in s) + ")")
    if "s5cmd" in rate and "ours" in rate:
        ratio = rate["ours"] / rate["s5cmd"]
        print(f"ours/s5cmd: {ratio:.2f}x (target >= 0.9) {'PASS' if ratio >= 0.9 else 'FAIL'}")
    if "boto3" in rate and "ours" in rate:
        print(f"ours/boto3 download_file: {rate['ours'] / rate['boto3']:.2f}x")


if __name__ == "__main__":
    main()
