"""`deploy.autoscaling.*`: replicas that follow the queue, scale to zero when idle, and warm for schedules.

The schedule is written in the terms of KEDA's cron scaler (a `start` and an `end` cron expression and
a timezone per window), so what llmctl renders is what the user wrote. The cron check here is the
5-field syntax KEDA's scaler parses (robfig/cron's standard parser: numbers, ranges, lists, steps,
`*`, month and weekday names); the timezone must be an IANA name `zoneinfo` knows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from llmctl.config.problems import Invalid
from llmctl.config.section import Section

_FIELDS = (  # name, low, high, names accepted (robfig/cron's standard parser)
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_FIX = 'write five fields "minute hour day-of-month month day-of-week", e.g. "0 8 * * 1-5"'


def cron_problem(expression: str) -> str | None:
    """Why KEDA's cron scaler would refuse `expression`, in words; None when it parses."""
    parts = expression.split()
    if len(parts) != 5:
        return f"has {len(parts)} field(s), a cron expression has 5"
    for text, (name, low, high, names) in zip(parts, _FIELDS):
        for item in text.split(","):
            problem = _item_problem(item.lower(), low, high, names)
            if problem:
                return f"{name} field {text!r}: {problem}"
    return None


def _item_problem(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    body, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return f"step {step!r} is not a positive whole number"
    if body in ("*", "?"):
        return None
    bounds = body.split("-")
    if len(bounds) > 2:
        return f"{body!r} is not a number or a range"
    values = []
    for bound in bounds:
        if bound in names:
            values.append(names.index(bound) + low)
        elif bound.isdigit():
            values.append(int(bound))
        else:
            return f"{bound!r} is not a number" + (f" or a name ({', '.join(names[:3])}, ...)" if names else "")
    for value in values:
        if not low <= value <= high:
            return f"{value} is outside {low}-{high}"
    if len(values) == 2 and values[0] > values[1]:
        return f"range {body!r} runs backwards"
    return None


def cron_values(expression: str) -> list[set[int]]:
    """The values each of the five fields matches (an expression `cron_problem` accepts); day of week 7 is 0."""
    out = []
    for text, (_, low, high, names) in zip(expression.lower().split(), _FIELDS):
        values: set[int] = set()
        for item in text.split(","):
            body, _, step = item.partition("/")
            if body in ("*", "?"):
                a, b = low, high
            else:
                bounds = [names.index(v) + low if v in names else int(v) for v in body.split("-")]
                a, b = bounds[0], (bounds[-1] if len(bounds) == 2 or not step else high)
            values |= set(range(a, b + 1, int(step) if step else 1))
        out.append({v % 7 for v in values} if high == 6 else values)
    return out


def cron_matches(fields: list[set[int]], minute: int, hour: int, day: int, month: int, weekday: int) -> bool:
    """robfig/cron's rule: when both day fields are restricted, either may match."""
    m, h, dom, mon, dow = fields
    if minute not in m or hour not in h or month not in mon:
        return False
    dom_any, dow_any = len(dom) == 31, len(dow) == 7
    if dom_any or dow_any:
        return day in dom and weekday in dow
    return day in dom or weekday in dow


class ScheduleWindow(Section):
    """One window of KEDA's cron scaler: at least `replicas` from `start` to `end`, in `timezone`."""

    start: str = Field(description="Cron expression (5 fields) of the window's start, e.g. \"0 8 * * 1-5\".")
    end: str = Field(description="Cron expression of the window's end, e.g. \"0 20 * * 1-5\".")
    timezone: str = Field("UTC", description="IANA timezone of start and end, e.g. Europe/Berlin.")
    replicas: int = Field(1, ge=1, le=100, description="Replicas kept during the window.")

    @field_validator("start", "end")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise Invalid(f"is not a cron expression: {problem}", fix=_CRON_FIX)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            import difflib

            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "use an IANA name such as Europe/Berlin or UTC"
            raise Invalid("is not a timezone zoneinfo knows", fix=hint) from None
        return value


class AutoscalingConfig(Section):
    enabled: bool = False
    max_replicas: int = Field(2, ge=1, le=100)
    queue_target: int = Field(4, ge=1, description="Target vllm:num_requests_waiting per replica.")
    engine: Literal["keda", "hpa"] = Field(
        "keda", description="KEDA ScaledObject (Prometheus trigger) or an HPA (needs prometheus-adapter)."
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus KEDA queries (default: the llmctl monitoring stack's Prometheus)."
    )
    idle_minutes: int = Field(
        0, ge=0, le=10080, description="Scale to zero after this many minutes without requests (the server's own "
        "metrics); the KEDA HTTP add-on holds the next request while a replica starts (past the hold: 503, "
        "Retry-After). 0: keep one replica.")
    schedule: list[ScheduleWindow] = Field(
        default_factory=lambda: [], description="Windows (KEDA cron scaler: start, end, timezone, replicas) kept warm; "
        "each starts early by the measured cold start. Outside them the endpoint follows idle_minutes.")

    @property
    def scales_to_zero(self) -> bool:
        return self.enabled and (self.idle_minutes > 0 or bool(self.schedule))

    @model_validator(mode="after")
    def _zero_needs_keda(self) -> "AutoscalingConfig":
        wanted = [name for name, on in (("idle_minutes", self.idle_minutes > 0), ("schedule", bool(self.schedule))) if on]
        if not wanted:
            return self
        keys = " and ".join(f"deploy.autoscaling.{name}" for name in wanted)
        if not self.enabled:
            raise Invalid(f"{keys} set but deploy.autoscaling.enabled is false",
                          fix="set deploy.autoscaling.enabled: true (KEDA scales the endpoint)")
        if self.engine != "keda":
            raise Invalid(f"{keys} need KEDA, but deploy.autoscaling.engine is hpa (an HPA never goes below one "
                          "replica)", fix="set deploy.autoscaling.engine: keda")
        for window in self.schedule:
            if window.replicas > self.max_replicas:
                raise Invalid(f"a schedule window keeps {window.replicas} replicas, above deploy.autoscaling."
                              f"max_replicas ({self.max_replicas})", fix="raise max_replicas or lower the window's replicas")
        return self

