"""`cluster.capacity`, `cluster.on_demand_base`, `deploy.autoscaling.idle_minutes` and `.schedule`: defaults,
and one clear line for each bad value (a bad cron field, an unknown timezone, settings that need another)."""

from __future__ import annotations

import pytest

from llmctl.config import load_config
from llmctl.config.autoscaling import cron_problem
from llmctl.errors import ConfigError

SCALING = "deploy:\n  autoscaling:\n    enabled: true\n"


def _load(tmp_path, text):
    path = tmp_path / "llmctl.yaml"
    path.write_text(text)
    return load_config(path, env={})


def test_defaults_keep_todays_behaviour(tmp_path):
    cfg = _load(tmp_path, "")
    assert cfg.cluster.capacity == "nodegroup" and cfg.cluster.on_demand_base == 0
    assert cfg.deploy.autoscaling.idle_minutes == 0 and cfg.deploy.autoscaling.schedule == []
    assert not cfg.deploy.autoscaling.scales_to_zero


def test_a_schedule_and_idle_policy_load(tmp_path):
    cfg = _load(tmp_path, SCALING + "    idle_minutes: 15\n    schedule:\n"
                "      - {start: '0 8 * * MON-FRI', end: '0 20 * * 1-5', timezone: Europe/Berlin, replicas: 2}\n"
                "cluster:\n  capacity: karpenter\n  on_demand_base: 1\n  nodes_max: 2\n")
    window = cfg.deploy.autoscaling.schedule[0]
    assert (window.start, window.timezone, window.replicas) == ("0 8 * * MON-FRI", "Europe/Berlin", 2)
    assert cfg.deploy.autoscaling.scales_to_zero
    assert cfg.cluster.karpenter.spot and cfg.cluster.on_demand_base == 1


@pytest.mark.parametrize("expression, problem", [
    ("0 8 * * 1-5", None), ("*/15 8-18 1,15 jan-jun sun", None), ("0 8 * *", "has 4 field(s)"),
    ("61 8 * * *", "minute field '61': 61 is outside 0-59"), ("0 8 * * 5-1", "runs backwards"),
    ("0 8 * * funday", "'funday' is not a number"), ("0 */0 * * *", "step '0'"),
])
def test_cron_expressions_are_checked_as_keda_parses_them(expression, problem):
    found = cron_problem(expression)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("text, needle", [
    (SCALING + "    schedule: [{start: '0 25 * * *', end: '0 20 * * *'}]\n",
     r"deploy\.autoscaling\.schedule\.0\.start: '0 25 \* \* \*': is not a cron expression: hour field '25'"),
    (SCALING + "    schedule: [{start: '0 8 * * *', end: '0 20 * * *', timezone: Europe/Berlinn}]\n",
     r"timezone: 'Europe/Berlinn': is not a timezone zoneinfo knows"),
    ("deploy:\n  autoscaling:\n    idle_minutes: 10\n", r"idle_minutes set but deploy\.autoscaling\.enabled is false"),
    (SCALING + "    engine: hpa\n    idle_minutes: 10\n", r"need KEDA, but deploy\.autoscaling\.engine is hpa"),
    (SCALING + "    schedule: [{start: '0 8 * * *', end: '0 20 * * *', replicas: 5}]\n", r"above deploy\.autoscaling\.max_replicas"),
    ("cluster:\n  on_demand_base: 1\n", r"cluster\.capacity is nodegroup"),
    ("cluster:\n  capacity: karpenter\n  on_demand_base: 3\n", r"exceeds cluster\.nodes_max"),
    ("cluster:\n  karpenter: {spot: false}\n", r"cluster\.karpenter\.spot set but cluster\.capacity is nodegroup"),
    ("cluster:\n  capacity: karpenter\n  spot: true\n", r"use cluster\.karpenter\.spot"),
    ("cluster:\n  capacity: fargate\n", r"cluster\.capacity"),
])
def test_bad_settings_are_one_clear_line(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        _load(tmp_path, text)
    assert info.value.exit_code == 2
    assert info.value.hint
