"""The server image built by `make image` (the project's Dockerfile with the CPU engine), and
containers run from it with podman the way the pod runs them.

Runtime: podman with runc. crun 1.8 (Debian 12) refuses this machine's hybrid cgroup v1/v2
hierarchy ("cgroups in hybrid mode not supported") and `buildah run` is a build-step runner (no
port mapping, no read-only root, no `kill`/`wait` of a detached container). The limits are given
explicitly because the VM lacks CAP_SYS_RESOURCE and podman's defaults exceed its hard limits.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.server import REPO

IMAGE = "localhost/llmctl-server:cpu"
BUILD_TIMEOUT_S = 40 * 60


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


@pytest.fixture(scope="session")
def server_image(tmp_path_factory) -> dict:
    """`make image` (a no-op when nothing changed), then the image's `podman image inspect`."""
    for tool in ("buildah", "podman", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: `make system-deps` installs it")
    log = tmp_path_factory.mktemp("image") / "make-image.log"
    with log.open("wb") as out:
        done = subprocess.run(["make", "--no-print-directory", "image"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"make image failed ({done.returncode}):\n{log.read_text(errors='replace')[-4000:]}")
    return json.loads(podman("image", "inspect", IMAGE).stdout)[0]


def layer_dirs(inspected: dict) -> list[Path]:
    """The image's layers as the storage driver keeps them, base first: each is exactly the
    content (files and whiteouts) that a push sends as that layer's tar."""
    driver = inspected["GraphDriver"]
    assert driver["Name"] == "overlay", f"layer inspection reads overlay diff folders, not {driver['Name']}"
    lower = [Path(p) for p in driver["Data"].get("LowerDir", "").split(":") if p]
    return [*reversed(lower), Path(driver["Data"]["UpperDir"])]


@dataclass
class Container:
    name: str

    def inspect(self) -> dict:
        return json.loads(podman("inspect", self.name).stdout)[0]

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr


def pod_like_run_args(models: Path) -> list[str]:
    """What the Deployment gives the containers: a non-root user (the image's), no capabilities,
    no privilege escalation, a read-only root filesystem, one writable volume at /models (the
    emptyDir) and a memory-backed /dev/shm."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return [
        "--runtime", "runc", "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}",
        "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--shm-size", "1g", "--volume", f"{models}:/models",
    ]


@pytest.fixture
def models_volume(tmp_path) -> Path:
    """An empty folder owned by the image's user, like the pod's emptyDir with fsGroup 10001."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.chown(folder, 10001, 10001)
    return folder


@pytest.fixture
def containers():
    """Start containers by name; each is removed after the test (and its output kept on failure)."""
    started: list[Container] = []

    def start(*args: str) -> Container:
        container = Container(f"llmctl-test-{uuid.uuid4().hex[:10]}")
        podman("run", "--detach", "--name", container.name, *args)
        started.append(container)
        return container

    yield start
    for container in started:
        podman("rm", "--force", "--time", "5", container.name, check=False)
