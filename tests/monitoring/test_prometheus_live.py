"""A real Prometheus on loopback scrapes a real `python -m server`; after traffic, every dashboard
query and every alert signal returns data through Prometheus' HTTP API, and every rule evaluates.

There is no cluster here, so the scrape job is static with the labels Kubernetes SD would add
(`pod_ready`); everything else is the generated rules and dashboards, unchanged.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from llmctl.monitoring.dashboards import all_queries
from llmctl.monitoring.rules import alert_rules, rule_file
from tests.monitoring.conftest import require_tool, rules_test_scope
from tests.monitoring.promql import SYNTHETIC, concrete, metric_names

pytestmark = pytest.mark.engine

DEADLINE_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def post(server, path: str, body: dict) -> int:
    headers = {"Content-Type": "application/json", **server.headers}
    request = urllib.request.Request(f"{server.url}{path}", data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def live_config():
    return rules_test_scope(dcgm=False)  # no GPU here: DCGM series cannot exist


@pytest.fixture
def prometheus(live_server, tmp_path):
    """A Prometheus server (Debian's binary) scraping the live server every second."""
    binary = require_tool("prometheus")
    scope = live_config()
    target = scope.target
    server = urllib.parse.urlsplit(live_server.metrics_url)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_file(scope)))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": target.job,
                "static_configs": [{"targets": [server.netloc], "labels": {"pod_ready": "true"}}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        poll(lambda: _ready(base, proc), "Prometheus ready", tmp_path / "prometheus.log")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _ready(base: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"prometheus exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def poll(check, what: str, log=None, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    tail = log.read_text()[-2000:] if log else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def query(base: str, expr: str) -> list:
    data = get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert data["status"] == "success", (expr, data)
    return data["data"]["result"]


def test_dashboards_and_alerts_have_data_from_the_real_server(prometheus, live_server):
    scope = live_config()
    target = scope.target
    poll(lambda: query(prometheus, f'up{{{target.sel}}} == 1'), "the first scrape of the server")

    for i in range(3):
        assert post(live_server, "/generate", {"prompt": f"hello {i}", "max_tokens": 8, "seed": i}) == 200
    assert post(live_server, "/generate", {"prompt": "hi", "max_tokens": 4, "stream": True}) == 200
    assert post(live_server, "/generate", {"prompt": "bad", "max_tokens": 0}) == 400

    queries = {concrete(q) for q in all_queries(scope)} | {r.signal for r in alert_rules(scope)}
    missing = set(queries)

    def all_have_data() -> bool:
        for expr in sorted(missing):
            if query(prometheus, expr):
                missing.discard(expr)
        return not missing

    try:
        poll(all_have_data, "every dashboard query and alert signal to return data")
    except AssertionError as err:
        raise AssertionError(f"{err}\nno data for:\n" + "\n".join(sorted(missing))) from None

    # Every full alert expression runs, and Prometheus evaluates every rule without error.
    for rule in alert_rules(scope):
        query(prometheus, rule.expr)

    def rules_evaluated():
        rules = [r for g in get_json(f"{prometheus}/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else None

    rules = poll(rules_evaluated, "the alert rules to be evaluated")
    assert {r["name"] for r in rules} == {r.name for r in alert_rules(scope)}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # Healthy server, light traffic: no alert fires.
    assert [r["name"] for r in rules if r["state"] == "firing"] == []


def test_queries_name_only_metrics_the_server_exposes(live_server):
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{live_server.metrics_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    exposed = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}
    scope = live_config()
    used = set().union(*(metric_names(q) for q in all_queries(scope) + [r.expr for r in alert_rules(scope)]))
    assert used - SYNTHETIC <= exposed, sorted(used - SYNTHETIC - exposed)
    assert {"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm_model_loaded"} <= used
