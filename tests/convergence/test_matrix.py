"""Convergence after faults: every lifecycle command, faulted or SIGKILLed at each mutating call, converges on re-run.

`expected/<command>.json` holds what an undisturbed run makes (the world's snapshot) and the
mutating calls it makes on the way; `test_undisturbed` checks both are current
(`LLMCTL_REGENERATE=1` rewrites them). Each cell then plants one fault at one call, runs the command,
runs it again undisturbed and compares the world with the undisturbed one. `make test` runs the
cells in `QUICK_CELLS`; `LLMCTL_CONVERGENCE=full` (`make convergence`) runs them all, recording each cell in
expected/results.json and re-rendering docs/convergence.md as it goes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.convergence.harness import AWS_FAULTS, K8S_FAULTS, Call, diff, served, snapshot
from tests.convergence.report import record

EXPECTED = Path(__file__).parent / "expected"
COMMANDS = ("build", "cluster up", "deploy", "deploy update", "deploy surge", "deploy zero", "monitoring up",
            "teardown")
# update: a second deploy; surge: a second deploy that grows the node group and gives the emptied node back,
# its cells only at the node group's calls (the rest of its calls are the update's); zero: an NLB endpoint that
# scales to zero (its NLB in front of the interceptor)
SURGE_CALLS = re.compile(r"node-groups/.*/update-config|autoscaling:|/api/v1/nodes/")
ZERO_CALLS = re.compile(r"/namespaces/keda/|/httpscaledobjects/")  # the rest of its calls are the deploy's
FULL = os.environ.get("LLMCTL_CONVERGENCE") == "full"
REGENERATE = os.environ.get("LLMCTL_REGENERATE") == "1"


def expected(command: str) -> dict:
    path = EXPECTED / f"{command.replace(' ', '-')}.json"
    return json.loads(path.read_text()) if path.exists() else {"calls": [], "snapshot": None}


def calls(command: str) -> list[Call]:
    return [Call(**c) for c in expected(command)["calls"]]


def cells() -> list[tuple[str, Call, str]]:
    out = []
    for command in COMMANDS:
        for call in calls(command):
            if command == "deploy surge" and not SURGE_CALLS.search(call.label):
                continue
            if command == "deploy zero" and not ZERO_CALLS.search(call.label):
                continue
            for fault in AWS_FAULTS if call.side == "aws" else K8S_FAULTS:
                out.append((command, call, fault))
    return out


# `make test`'s share of the matrix: every command and every fault kind at least once, at calls where a
# lost reply or a kill is most likely to leave a duplicate or an orphan. The rest: `make convergence`.
QUICK_CELLS = (
    ("build", "aws codebuild:StartBuild", "kill"),
    ("build", "aws codebuild:StartBuild", "5xx"),
    ("cluster up", "aws iam:PutRolePolicy", "throttle"),
    ("deploy", "k8s PATCH /api/v1/namespaces/vllm/secrets/vllm-llama-api-key", "kill"),
    ("deploy", "k8s PATCH /apis/apps/v1/namespaces/vllm/deployments/vllm-llama-59c96831a3", "409"),
    ("deploy update", "k8s PATCH /api/v1/namespaces/vllm/services/vllm-llama (#2)", "kill"),  # at the switch
    ("deploy surge", "k8s PATCH /api/v1/nodes/gpu-node-1", "kill"),  # at the cordon: the re-run gives the node back
    # at the NLB's name added to the interceptor's hosts: the re-run's render reads it back from the Service
    ("deploy zero", "k8s PATCH /apis/http.keda.sh/v1alpha1/namespaces/vllm/httpscaledobjects/vllm-llama (#2)", "kill"),
    ("monitoring up", "k8s PATCH /api/v1/namespaces/monitoring/secrets/demo-grafana-admin", "429"),
    ("monitoring up", "k8s PATCH /apis/apps/v1/namespaces/monitoring/statefulsets/demo-prometheus", "409"),
    ("teardown", "aws iam:DeleteRole", "5xx"),
    ("teardown", "aws ecr:DeleteRepository", "throttle"),
    ("teardown", "k8s DELETE /api/v1/namespaces/vllm", "500"),
)


def quick(cells_: list[tuple[str, Call, str]]) -> set[tuple[str, Call, str]]:
    chosen = {(command, call, fault) for command, call, fault in cells_ if (command, call.name, fault) in QUICK_CELLS}
    assert len(chosen) == len(QUICK_CELLS), "a quick cell names a call the matrix no longer has"
    return chosen


QUICK = quick(cells())


@pytest.mark.parametrize("command", COMMANDS)
def test_undisturbed(command, lifecycle, aws, kube):
    runner, argv = lifecycle(command)
    before = len(kube.requests)
    done = runner.run(*argv)
    assert done.returncode == 0, done.stderr
    got = {"calls": [c.__dict__ for c in runner.mutating_calls(before)], "snapshot": snapshot(aws, kube)}
    path = EXPECTED / f"{command.replace(' ', '-')}.json"
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = expected(command)
    assert got["calls"] == want["calls"], "the mutating calls changed: LLMCTL_REGENERATE=1 rewrites expected/"
    assert not diff(want["snapshot"], got["snapshot"]), diff(want["snapshot"], got["snapshot"])


@pytest.mark.parametrize(("command", "call", "fault"), [
    pytest.param(*cell, id=f"{cell[0]}|{cell[1].name}|{cell[2]}") for cell in cells()])
def test_converges(command, call, fault, lifecycle, aws, kube):
    if not FULL and (command, call, fault) not in QUICK:
        pytest.skip("in the full matrix only (LLMCTL_CONVERGENCE=full)")
    runner, argv = lifecycle(command)
    serving_before = served(kube) if command in ("deploy update", "deploy surge") else set()
    runner.plant(call, fault)
    first = runner.run(*argv)
    runner.clear()
    if command in ("deploy update", "deploy surge"):  # the old revision or the new one serves after the fault, never neither
        assert len(serving_before) == 1 and len(served(kube)) == 1, (serving_before, served(kube))
    killed = runner.killed.is_set()
    second = runner.run(*argv)
    problems = diff(expected(command)["snapshot"], snapshot(aws, kube))
    outcome = ("killed" if killed else "ok" if first.returncode == 0 else f"exit {first.returncode}")
    if FULL:
        record(cells(), command, call, fault, {"first": outcome, "converged": second.returncode == 0 and not problems})
    assert fault != "kill" or killed, "the kill point was never reached"
    assert second.returncode == 0, second.stderr
    assert not problems, "\n".join(problems) + "\n--- first run stderr:\n" + first.stderr[-3000:]
