"""How the promotion gate looks: a line per check while it runs (stderr), then its table (stdout).

Both take the gate's plain data (`GateCheck`, or `GateReport.to_dict()` as recorded on a revision),
so `llmctl history` can show a past revision's gate the same way a deploy shows its own.
"""

from __future__ import annotations

from typing import Any

from llmctl.ui.console import Output


def gate_progress(output: Output):
    """`on_check` for `actions.gate.run_gate`: one line per decided check (pass, fail or skip, as doctor's)."""

    def on_check(check: Any) -> None:
        output.step(check.status, f"gate {check.name}: {check.detail}")

    return on_check


def render_gate(output: Output, report: Any, title: str = "Promotion gate") -> None:
    """The gate's table: check, status, detail, seconds; then the verdict."""
    data = report.to_dict() if hasattr(report, "to_dict") else report
    rows = [(c["name"], c["status"], c["detail"], f"{c['seconds']:.2f}") for c in data["checks"]]
    output.table(title, ["check", "status", "detail", "seconds"], rows, status_column="status")
    failed = [c["name"] for c in data["checks"] if not c["passed"]]
    output.print("gate passed" if data["passed"] else f"gate failed: {', '.join(failed)}")
