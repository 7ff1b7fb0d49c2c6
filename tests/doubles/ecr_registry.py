"""ECR for `llmctl build --local`: a real registry on loopback behind moto's ECR API.

ECR is two faces of one service: the API (repositories, GetAuthorizationToken, DescribeImages)
and a registry that docker/podman/buildah push to. moto answers the API but has no registry, and
its repositoryUri names `<account>.dkr.ecr.<region>.amazonaws.com`. This double joins the two the
way ECR does, inside the in-process moto server (class attributes, so its thread sees them):

- the registry is Debian's `docker-registry` (the CNCF distribution registry) on 127.0.0.1 with
  htpasswd auth for user `AWS` and the password moto's GetAuthorizationToken hands out, so a push
  works only after the login llmctl performs;
- moto's repositories get `repositoryUri = 127.0.0.1:<port>/<name>` (what ECR's URI is for a
  real account: the registry's host, then the repository);
- moto's DescribeImages first reads the registry's tags and manifests for the repository (their
  digests are the registry's `Docker-Content-Digest`), so an image is in the API the moment the
  push completes, as in ECR.

podman and buildah reach the plain-http registry through `registries_conf` (insecure = true for
this one address), pointed at by CONTAINERS_REGISTRIES_CONF: engine configuration, not llmctl's.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from llmctl.procs import free_port

ACCOUNT = "123456789012"
USERNAME = "AWS"
PASSWORD = f"{ACCOUNT}-auth-token"  # what moto's GetAuthorizationToken returns for the account
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass
class EcrRegistry:
    root: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def registries_conf(self) -> Path:
        return self.root / "registries.conf"

    # --- the registry process -----------------------------------------------------------------
    def start(self) -> EcrRegistry:
        import bcrypt

        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed: `make system-deps` installs it")
        self.port = free_port()
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        htpasswd = self.root / "htpasswd"
        htpasswd.write_text(f"{USERNAME}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(data)}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "llmctl-test-upload-state"},
            "auth": {"htpasswd": {"realm": "llmctl-test", "path": str(htpasswd)}},
        }
        config_path = self.root / "config.yml"
        config_path.write_text(json.dumps(config))  # YAML is a superset of JSON
        self.registries_conf.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n')
        log = (self.root / "registry.log").open("wb")
        self.process = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while self.status("/v2/", auth=False) != 401:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{(self.root / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    # --- the registry's HTTP API --------------------------------------------------------------
    def _request(self, path: str, *, method: str = "GET", auth: bool = True):
        request = urllib.request.Request(f"http://{self.host}{path}", method=method, headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())
        return urllib.request.urlopen(request, timeout=30)

    def status(self, path: str, *, auth: bool = True) -> int:
        try:
            with self._request(path, auth=auth) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    def tags(self, repository: str) -> list[str]:
        try:
            with self._request(f"/v2/{repository}/tags/list") as response:
                return json.loads(response.read()).get("tags") or []
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return []
            raise

    def manifest(self, repository: str, reference: str) -> tuple[str, str, str]:
        """(body, media type, digest) of repository:reference, as the registry serves it."""
        with self._request(f"/v2/{repository}/manifests/{reference}") as response:
            return response.read().decode(), response.headers["Content-Type"], response.headers["Docker-Content-Digest"]

    # --- moto's ECR, joined to this registry ------------------------------------------------
    def install(self, monkeypatch) -> EcrRegistry:
        from moto.ecr.models import ECRBackend, Repository

        registry = self
        original_init = Repository.__init__
        original_describe = ECRBackend.describe_images

        def init(repo, account_id, region_name, repository_name, *args, **kwargs):
            original_init(repo, account_id, region_name, repository_name, *args, **kwargs)
            repo.uri = f"{registry.host}/{repository_name}"

        def describe_images(backend, repository_name, *args, **kwargs):
            repo = backend.repositories.get(repository_name)
            for tag in registry.tags(repository_name) if repo else []:
                body, media_type, digest = registry.manifest(repository_name, tag)
                if not any(tag in image.image_tags and image.get_image_digest() == digest for image in repo.images):
                    backend.put_image(repository_name, body, tag, media_type, digest)
            return original_describe(backend, repository_name, *args, **kwargs)

        monkeypatch.setattr(Repository, "__init__", init)
        monkeypatch.setattr(ECRBackend, "describe_images", describe_images)
        return self
