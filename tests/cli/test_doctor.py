"""`llmctl doctor`: pass/warn/fail with the fix, against moto and the fake eksctl."""

from __future__ import annotations

import json


def _checks(done) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_doctor_green_with_credentials_and_tools(llmctl, aws, fake_eksctl):
    llmctl.write_config("model:\n  bucket: my-models\n")
    checks = _checks(llmctl("doctor", "--output", "json"))
    assert checks["aws identity"]["status"] == "pass" and "123456789012" in checks["aws identity"]["detail"]
    assert checks["eksctl"]["status"] == "pass"
    assert checks["kubectl"]["status"] == "pass"
    assert checks["config"]["status"] == "pass"
    assert checks["model bucket"]["status"] == "pass"


def test_doctor_fails_with_fixes_when_nothing_is_set_up(llmctl):
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    done = llmctl("doctor", "-o", "json", env=env)
    assert done.returncode == 1
    checks = _checks(done)
    assert checks["eksctl"]["status"] == "fail" and "eksctl.io" in checks["eksctl"]["fix"]
    assert checks["aws identity"]["status"] == "fail" and checks["aws identity"]["fix"]
    assert checks["model bucket"]["status"] == "warn"
    assert json.loads(done.stdout)["ok"] is False


def test_doctor_reports_a_bad_config_instead_of_crashing(llmctl):
    llmctl.write_config("aws:\n  region: nowhere-1\n")
    done = llmctl("doctor", "-o", "json")
    assert done.returncode == 1
    checks = _checks(done)
    assert checks["config"]["status"] == "fail" and "aws.region" in checks["config"]["detail"]
