"""Local memory of what llmctl did (the last build's image digest, the local endpoint).

The cloud stays the source of truth for whether a step is done; this file only remembers
choices a later command should default to. One JSON file per deployment under the state dir
(`LLMCTL_STATE_DIR`, default `.llmctl/` beside the config file). The folder holds the local
endpoint's API key: it is private to the user (0700, files 0600) and carries a `.gitignore` of `*`
so that `git add .` beside the config never commits it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def state_dir(config_file: Path, env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("LLMCTL_STATE_DIR") or (config_file.resolve().parent / ".llmctl"))


class StateStore:
    def __init__(self, root: Path, deployment: str):
        self.root = root
        self.path = root / f"{deployment}.json"

    def ensure(self) -> Path:
        """Create the state folder (private, git-ignored) if needed; return it."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# llmctl's local state (API keys, pid files, models): never commit it\n*\n")
        return self.root

    def load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.load().get(key, default)

    def set(self, key: str, value: Any) -> None:
        data = self.load()
        data[key] = value
        self._write(data)

    def delete(self, key: str) -> None:
        data = self.load()
        if data.pop(key, None) is not None:
            self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        """Atomic: a crash never leaves a torn state file; 0600 (mkstemp's mode) as it may hold a key."""
        self.ensure()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(tmp, self.path)
