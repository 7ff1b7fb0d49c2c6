"""Plans as data: each step observes the world, says what it would do, and can do it.

The same steps serve `--dry-run` (observe and describe) and a real run (observe, then apply
only what differs), so a re-run after any failure resumes where the last one stopped
(eksctl's task tree with plan mode; SkyPilot's stages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

from llmctl.errors import LlmctlError
from llmctl.outcome import Outcome, outcome_of

Action = Literal["create", "update", "delete", "run", "none"]


@dataclass
class Step:
    """One idempotent unit of work.

    `observe()` makes only read calls and returns the action needed now ("none" when the world
    already matches); `apply()` performs that action and may return a detail for the report.
    """

    title: str
    kind: str
    observe: Callable[[], Action]
    apply: Callable[[], str | None]
    monthly_cost: float | None = None
    detail: str | None = None


@dataclass
class StepResult:
    title: str
    kind: str
    action: Action  # what the step had to do
    status: Outcome  # what came of it (in a dry run: what would)
    detail: str | None = None
    monthly_cost: float | None = None

    @property
    def outcome(self) -> Outcome:
        return self.status

    @property
    def subject(self) -> str:
        return self.title + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict:
        return asdict(self)


class StepFailed(LlmctlError):
    """A step's observe or apply failed: the step, and the domain error it raised (same message)."""

    def __init__(self, step: Step, cause: LlmctlError):
        super().__init__(cause.message, hint=cause.hint, exit_code=cause.exit_code)
        self.step = step
        self.cause = cause


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def describe(self, report: Callable[[StepResult], None] | None = None) -> list[StepResult]:
        """Observe every step without changing anything (`--dry-run`): each reports the outcome it would have."""
        results = []
        for step in self.steps:
            action = step.observe()
            result = StepResult(step.title, step.kind, action, outcome_of(action), step.detail, step.monthly_cost)
            results.append(result)
            if report:
                report(result)
        return results

    def execute(self, report: Callable[[StepResult], None] | None = None) -> list[StepResult]:
        """Apply each step whose observed state differs; stop at the first failure (`StepFailed`)."""
        results = []
        for step in self.steps:
            try:
                action = step.observe()
                detail = step.apply() if action != "none" else None
            except LlmctlError as exc:
                raise StepFailed(step, exc) from exc
            if action == "none":
                result = StepResult(step.title, step.kind, action, "unchanged", step.detail, step.monthly_cost)
            else:
                result = StepResult(step.title, step.kind, action, outcome_of(action), detail or step.detail,
                                    step.monthly_cost)
            results.append(result)
            if report:
                report(result)
        return results
