"""The build context as a deterministic zip: same files -> same bytes -> same content hash.

Entries are sorted, timestamps fixed, permissions normalised (0644, or 0755 when executable),
and `.dockerignore` is applied (Docker's rules: last matching pattern wins, `!` re-includes,
`**` spans directories), so a rebuild of unchanged sources finds the same S3 key and image tag.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass

from pathlib import Path

from llmctl.errors import ConfigError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
# Files CodeBuild and Docker read even when .dockerignore excludes them.
ALWAYS = ("Dockerfile", "buildspec.yml", ".dockerignore")


@dataclass(frozen=True)
class ContextArchive:
    path: Path
    sha256: str
    size: int
    files: tuple[str, ...]

    @property
    def key(self) -> str:
        """S3 key named by content: an existing object with this key is this exact context."""
        return f"builds/{self.sha256}.zip"


class DockerIgnore:
    def __init__(self, text: str):
        self.rules: list[tuple[bool, re.Pattern[str], str]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            if pattern == ".":
                continue
            self.rules.append((negate, re.compile(_translate(pattern)), pattern))

    def _match(self, path: str) -> bool:
        excluded = False
        for negate, regex, _ in self.rules:
            parts = path.split("/")
            # A pattern matching a parent folder matches everything inside it.
            if any(regex.fullmatch("/".join(parts[: i + 1])) for i in range(len(parts))):
                excluded = not negate
        return excluded

    def excludes(self, path: str) -> bool:
        return self._match(path)

    def can_prune(self, folder: str) -> bool:
        """True when the folder is excluded and no `!` pattern could re-include something in it."""
        if not self._match(folder):
            return False
        for negate, _, pattern in self.rules:
            literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            if negate and (literal.startswith(folder + "/") or (folder + "/").startswith(literal)):
                return False
        return True


def _translate(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def context_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files that belong in the context, sorted."""
    ignore_file = root / ".dockerignore"
    ignore = DockerIgnore(ignore_file.read_text() if ignore_file.is_file() else "")
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(d for d in dirs if d != ".git" and not ignore.can_prune(prefix + d))
        for name in files:
            rel = prefix + name
            full = Path(folder) / name
            if not full.is_file():  # sockets, broken links
                continue
            if rel in ALWAYS or not ignore.excludes(rel):
                found.append(rel)
    return sorted(found)


def zip_context(root: Path, dest: Path) -> ContextArchive:
    if not root.is_dir():
        raise ConfigError(f"build context {root} is not a folder", hint="set build.context to a folder with a Dockerfile")
    if not (root / "Dockerfile").is_file():
        raise ConfigError(f"build context {root} has no Dockerfile", hint="set build.context to a folder with a Dockerfile")
    files = context_files(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w") as archive:
        for rel in files:
            full = root / rel
            info = zipfile.ZipInfo(rel, date_time=FIXED_DATE)
            info.create_system = 3  # unix, so the permission bits below are honoured
            mode = 0o755 if os.access(full, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, full.read_bytes(), compresslevel=9)
    data = dest.read_bytes()
    return ContextArchive(dest, hashlib.sha256(data).hexdigest(), len(data), tuple(files))


def image_tag(context_sha256: str, build_args: dict[str, str]) -> str:
    """The image tag: content hash of the context and the build arguments (a new vLLM version is a new image)."""
    digest = hashlib.sha256(context_sha256.encode())
    for key in sorted(build_args):
        digest.update(f"\n{key}={build_args[key]}".encode())
    return digest.hexdigest()[:20]
