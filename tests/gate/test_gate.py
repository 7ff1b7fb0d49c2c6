"""The gate's stages and verdicts, without an engine: against a small OpenAI-shaped HTTP server that answers
what each test sets, reached directly and through the Kubernetes double's port-forward to a pod.
(tests/gate/test_gate_live.py judges the real server.)"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmctl.actions.gate import GateCheck, GateReport, gate_pod, run_gate
from llmctl.config.gate import GateConfig
from llmctl.k8s.client import Kube
from llmctl.ui.console import Output
from llmctl.ui.gate import gate_progress, render_gate

NS = "vllm"
SCHEMA = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}}, "required": ["mood"]}


class Answers(ThreadingHTTPServer):
    """`/ready` answers `ready`; completions answer "hi"; chat answers `chat` (finish_reason `finish`);
    `posts` records (path, body) of every POST, `auth` every Authorization header."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ready, self.chat, self.finish = 200, "hello there", "stop"
        self.posts: list[tuple[str, dict]] = []
        self.auth: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Answers
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ready":
            return self._send(self.server.ready, {"status": "ready" if self.server.ready == 200 else "loading"})
        self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append((self.path, body))
        self.server.auth.append(self.headers.get("Authorization"))
        if body.get("model") != "tiny":
            return self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
        if self.path == "/v1/completions":
            return self._send(200, {"choices": [{"text": " hi", "finish_reason": "length"}],
                                    "usage": {"completion_tokens": 2}})
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": self.server.chat},
                                      "finish_reason": self.server.finish}]})


@pytest.fixture
def answers():
    server = Answers()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def gate_with(tmp_path, lines: list[dict], **fields) -> GateConfig:
    (tmp_path / "goldens.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return GateConfig.model_validate({"prompts": "goldens.jsonl", **fields}, context={"config_dir": tmp_path})


def statuses(report: GateReport) -> list[tuple[str, str]]:
    return [(check.name, check.status) for check in report.checks]


def test_every_golden_is_judged_and_reported_and_a_failure_fails_the_gate(tmp_path, answers):
    answers.chat = "hello there, 42 friends"
    gate = gate_with(tmp_path, [{"prompt": "greet", "expect": "hello"}, {"prompt": "count", "regex": r"\b\d+\b"},
                                {"prompt": "shout", "expect": "HELLO"}, {"prompt": "nope", "regex": "^zzz$"},
                                {"prompt": "last", "expect": "friends", "max_tokens": 5}])
    seen: list[GateCheck] = []
    report = run_gate(answers.url, api_key="sk-1", model="tiny", gate=gate, on_check=seen.append)
    assert statuses(report) == [("readiness", "pass"), ("smoke request", "pass"), ("golden line 1", "pass"),
                                ("golden line 2", "pass"), ("golden line 3", "fail"), ("golden line 4", "fail"),
                                ("golden line 5", "pass")]
    assert not report.passed and [c.name for c in report.failures] == ["golden line 3", "golden line 4"]
    assert list(report.checks) == seen  # progress saw each check as it was decided
    assert "answer 'hello there, 42 friends' lacks 'HELLO'" in report.checks[4].detail
    assert "does not match /^zzz$/" in report.checks[5].detail
    assert set(answers.auth) == {"Bearer sk-1"}
    chats = [body for path, body in answers.posts if path == "/v1/chat/completions"]
    assert [c["max_tokens"] for c in chats] == [64, 64, 64, 64, 5] and all(c["temperature"] == 0 for c in chats)
    assert chats[0]["messages"] == [{"role": "user", "content": "greet"}] and "response_format" not in chats[0]
    doc = report.to_dict()
    assert doc["passed"] is False and doc["bench"] is None
    assert doc["checks"][4] == {"name": "golden line 3", "status": "fail", "passed": False,
                                "detail": report.checks[4].detail, "seconds": round(report.checks[4].seconds, 3)}
    json.dumps(doc)


def test_a_json_schema_golden_asks_for_structured_output_and_validates_the_answer(tmp_path, answers):
    gate = gate_with(tmp_path, [{"prompt": "mood?", "json_schema": SCHEMA}])
    answers.chat = '{"mood": "happy"}'
    assert run_gate(answers.url, api_key=None, model="tiny", gate=gate).passed
    path, body = answers.posts[-1]
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "golden", "schema": SCHEMA, "strict": True}}
    answers.chat, answers.finish = '{"mood": "angry"}', "stop"
    report = run_gate(answers.url, api_key=None, model="tiny", gate=gate)
    assert "breaks the schema at mood: 'angry' is not one of ['happy', 'sad']" in report.checks[-1].detail
    answers.chat, answers.finish = '{"mood": "ha', "length"
    detail = run_gate(answers.url, api_key=None, model="tiny", gate=gate).checks[-1].detail
    assert "is not JSON" in detail and "(the answer was cut at max_tokens 64)" in detail


def test_a_server_that_never_turns_ready_stops_the_gate_at_readiness(tmp_path, answers):
    answers.ready = 503
    gate = gate_with(tmp_path, [{"prompt": "a", "expect": "b"}], ready_timeout_s=0.6)
    report = run_gate(answers.url, api_key=None, model="tiny", gate=gate)
    assert statuses(report) == [("readiness", "fail")]
    assert "/ready not 200 after 0.6 s: HTTP 503" in report.checks[0].detail and report.checks[0].seconds >= 0.6
    assert answers.posts == []


def test_a_wrong_model_name_fails_the_smoke_request_with_the_servers_words(tmp_path, answers):
    report = run_gate(answers.url, api_key=None, model="other", gate=gate_with(tmp_path, [{"prompt": "a", "expect": "b"}]))
    assert statuses(report) == [("readiness", "pass"), ("smoke request", "fail")]
    assert report.checks[1].detail == "POST /v1/completions: HTTP 404: The model `other` does not exist."


def test_nothing_listening_fails_readiness_and_a_disabled_gate_passes_as_skipped(tmp_path, answers):
    url = answers.url
    answers.shutdown()
    answers.server_close()
    report = run_gate(url, api_key=None, model="tiny", gate=GateConfig(ready_timeout_s=0.3))
    assert statuses(report) == [("readiness", "fail")] and "no answer" in report.checks[0].detail
    off = run_gate(url, api_key=None, model="tiny", gate=GateConfig(enabled=False))
    assert off.passed and statuses(off) == [("gate", "skip")]


def test_the_table_and_the_progress_lines(tmp_path, answers, capsys):
    answers.chat = "yes"
    gate = gate_with(tmp_path, [{"prompt": "a", "expect": "yes"}, {"prompt": "b", "expect": "no"}])
    output = Output(color=False)
    report = run_gate(answers.url, api_key=None, model="tiny", gate=gate, on_check=gate_progress(output))
    render_gate(output, report.to_dict())
    out, err = capsys.readouterr()
    assert "pass  gate golden line 1: expect matched: 'yes'" in err
    assert "fail  gate golden line 2: answer 'yes' lacks 'no'" in err
    assert "Promotion gate" in out and "golden line 2" in out and out.strip().endswith("gate failed: golden line 2")
    quiet = Output(json_output=True)
    render_gate(quiet, report)
    assert capsys.readouterr().out == ""


# --- through the Kubernetes double's port-forward ---------------------------------------------------


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm@sha256:1",
                                     "ports": [{"name": "http", "containerPort": 8000}]}]}}


def running(kube, name: str) -> None:
    kube.wait_for(lambda: ((kube.get("v1", "Pod", name, NS) or {}).get("status") or {}).get("phase") == "Running")


def test_gate_pod_judges_one_pod_through_a_port_forward(kube, tmp_path, answers):
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube.create(pod("vllm-new"))
    running(kube, "vllm-new")
    kube.expose("vllm-new", 8000, ("127.0.0.1", answers.server_address[1]))
    k = Kube.from_kubeconfig(str(kube.kubeconfig_path))
    answers.chat = "hello"
    gate = gate_with(tmp_path, [{"prompt": "a", "expect": "hello"}])
    report = gate_pod(k, NS, "vllm-new", 8000, api_key="sk-2", model="tiny", gate=gate)
    assert statuses(report) == [("readiness", "pass"), ("smoke request", "pass"), ("golden line 1", "pass")]
    assert set(answers.auth) == {"Bearer sk-2"}  # the requests reached the pod's server through the forward
    missing = gate_pod(k, NS, "vllm-gone", 8000, api_key=None, model="tiny", gate=gate)
    assert statuses(missing) == [("port-forward", "fail")] and "vllm-gone" in missing.checks[0].detail
