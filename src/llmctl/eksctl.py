"""A thin adapter over the `eksctl` binary: run a subcommand, stream its output, read its kubeconfig.

Every call streams eksctl's combined output line by line to `on_line` and raises an
`LlmctlError` carrying the last lines when eksctl exits non-zero.
"""

from __future__ import annotations

import os
import subprocess
from collections import deque
from collections.abc import Callable
from pathlib import Path

from llmctl.errors import LlmctlError

LineSink = Callable[[str], None]


def _ignore(line: str) -> None:
    return None


class Eksctl:
    def __init__(self, path: str | None = None):
        if path is None:
            from llmctl.tools import INSTALL_HINTS, probe

            path = probe("eksctl").path
            if path is None:
                raise LlmctlError("eksctl is not installed", hint=INSTALL_HINTS["eksctl"])
        self.path = path

    def run(self, args: list[str], on_line: LineSink = _ignore, doing: str | None = None) -> list[str]:
        """Run `eksctl <args>`; return its output lines; raise with the last lines when it fails."""
        tail: deque[str] = deque(maxlen=8)
        lines: list[str] = []
        try:
            proc = subprocess.Popen([self.path, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    encoding="utf-8", errors="replace")
        except OSError as exc:
            raise LlmctlError(f"cannot run eksctl at {self.path}: {exc}", hint="reinstall eksctl") from None
        with proc:
            try:
                for raw in proc.stdout:
                    line = raw.rstrip("\n")
                    lines.append(line)
                    tail.append(line)
                    on_line(line)
            except KeyboardInterrupt:
                proc.terminate()
                raise
            code = proc.wait()
        if code != 0:
            last = next((line for line in reversed(tail) if line.strip()), "")
            raise LlmctlError(
                f"{doing or 'eksctl ' + ' '.join(args[:2])} failed (eksctl exited {code}): {last.strip()}",
                hint="see eksctl's output above and the CloudFormation events of the eksctl-* stacks; fix the cause, "
                "then re-run the same command (it resumes)",
            )
        return lines

    # -- the subcommands llmctl uses -----------------------------------------------------------

    def version(self) -> str:
        return self.run(["version"])[0].strip()

    def create_cluster(self, config_file: Path, on_line: LineSink = _ignore) -> None:
        # llmctl installs its own pinned device plugin: eksctl's would be a second, unpinned one
        self.run(["create", "cluster", "-f", str(config_file), "--install-nvidia-plugin=false"], on_line, "creating the EKS cluster")

    def create_nodegroup(self, config_file: Path, nodegroup: str, on_line: LineSink = _ignore) -> None:
        self.run(["create", "nodegroup", "-f", str(config_file), "--include", nodegroup,
                  "--install-nvidia-plugin=false"], on_line,
                 f"creating node group {nodegroup}")

    def associate_oidc_provider(self, config_file: Path, on_line: LineSink = _ignore) -> None:
        self.run(["utils", "associate-iam-oidc-provider", "-f", str(config_file), "--approve"], on_line,
                 "associating the IAM OIDC provider")

    def write_kubeconfig(self, cluster: str, region: str, on_line: LineSink = _ignore) -> None:
        self.run(["utils", "write-kubeconfig", "--cluster", cluster, "--region", region], on_line,
                 "writing the kubeconfig")

    def delete_cluster(self, cluster: str, region: str, on_line: LineSink = _ignore, wait: bool = True) -> None:
        self.run(["delete", "cluster", "--name", cluster, "--region", region, *(["--wait"] if wait else [])], on_line,
                 f"deleting cluster {cluster}")


# -- the kubeconfig eksctl writes --------------------------------------------------------------

def kubeconfig_path() -> Path:
    """Where eksctl writes (and kubectl reads): the first path of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return Path(first) if first else Path.home() / ".kube" / "config"


def eksctl_cluster_name(cluster: str, region: str) -> str:
    return f"{cluster}.{region}.eksctl.io"


def kubeconfig_context(cluster: str, region: str, path: Path | None = None) -> str | None:
    """The context eksctl wrote for this cluster (`<identity>@<cluster>.<region>.eksctl.io`), if any."""
    import yaml

    path = path or kubeconfig_path()
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    wanted = eksctl_cluster_name(cluster, region)
    for item in doc.get("contexts") or []:
        if (item.get("context") or {}).get("cluster") == wanted:
            return item.get("name")
    return None
