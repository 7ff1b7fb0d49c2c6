"""The one status vocabulary: what happened to a plan step, an applied object or a build step.

    created    it did not exist; now it does
    updated    it existed and differed; now it matches (kubectl says "configured")
    deleted    it existed; now it is gone (also what a prune removes)
    unchanged  it already matched: nothing was done
    done       a step that runs rather than converges finished (a wait, an install, a build phase)
    failed     the step raised; nothing after it ran

A dry run reports the outcome the real run would have, under the command's `dry_run: true`;
`ui/` renders those lines as "would create" and so on. Every `--output json` field named
`status` (plan steps) or `action` (Kubernetes objects) holds one of these words.
"""

from __future__ import annotations

from typing import Literal

Outcome = Literal["created", "updated", "deleted", "unchanged", "done", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("created", "updated", "deleted", "unchanged", "done", "failed")

# A plan step's action (what it must do) -> the outcome once it is done.
_BY_ACTION: dict[str, Outcome] = {"create": "created", "update": "updated", "delete": "deleted", "run": "done",
                                  "none": "unchanged"}


def outcome_of(action: str) -> Outcome:
    return _BY_ACTION[action]
