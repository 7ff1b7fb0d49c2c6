"""Container image references: `[registry/]repository(:tag|@digest)`, checked before anything renders them.

The grammar is the distribution project's (`reference/regexp.go`), which Kubernetes, ECR and
every registry apply; llmctl also requires a tag or a digest, because a bare repository means
`:latest`, which is neither reproducible nor what `llmctl build` pushes.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
EXAMPLE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llmctl/llama@sha256:<64 hex digits> or registry/repo:tag"


def image_problem(value: str) -> str | None:
    """What is wrong with an image reference, or None when it is one a cluster can pull."""
    match = REFERENCE.fullmatch(value)
    if match is None:
        return "is not an image reference ([registry/]repository:tag or repository@sha256:digest)"
    if len(match["name"]) > 255:
        return "has a repository name longer than 255 characters"
    if not match["tag"] and not match["digest"]:
        return "has no tag or digest (a bare repository means :latest, which is not reproducible)"
    return None
