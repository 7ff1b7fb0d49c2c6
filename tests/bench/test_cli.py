"""`llmctl bench` run the way a user runs it, and where it finds its target."""

from __future__ import annotations

import json

import pytest

from llmctl.actions.bench_target import resolve_target
from llmctl.errors import ConfigError, LlmctlError
from tests.bench.fakeserver import FakeServer, Script


def test_cli_against_url_writes_vllm_json(llmctl):
    with FakeServer(Script(tokens=5)) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "6", "--output-len", "5", "--slo", "ttft:1000",
                      "--hourly-price", "0.526", "--output-json", "out.json", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Serving benchmark" in done.stdout and "Median TTFT" in done.stdout and "per million output tokens" in done.stdout
    doc = json.loads((llmctl.cwd / "out.json").read_text())
    assert doc["completed"] == 6 and doc["total_output_tokens"] == 30 and doc["request_goodput"] > 0
    assert doc["model_id"] == "fake-model"  # from /v1/models
    assert doc["llmctl"]["cost"]["usd_per_million_output_tokens"] > 0


def test_cli_json_output_and_failures_exit_1(llmctl):
    with FakeServer(Script(status=429)) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "4", "--warmup", "0", "-o", "json", timeout=120)
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["failed"] == 4 and doc["llmctl"]["errors_by_type"] == {"HTTP 429": 4}


def test_cli_without_url_uses_the_local_endpoint(llmctl):
    with FakeServer(Script(tokens=3)) as srv:
        state = llmctl.cwd / ".llmctl"
        state.mkdir()
        (state / "llama.json").write_text(json.dumps({"local": {"url": srv.url, "api_key": "k", "model": "fake-model"}}))
        done = llmctl("bench", "-n", "3", "--output-len", "3", "-o", "json", timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["llmctl"]["target_source"] == "local" and doc["llmctl"]["url"] == srv.url and doc["completed"] == 3


def test_cli_bad_flags_exit_2(llmctl):
    assert llmctl("bench", "--url", "http://127.0.0.1:1", "--slo", "latency:3").returncode == 2
    assert llmctl("bench", "--url", "ftp://x").returncode == 2
    assert llmctl("bench", "--url", "http://127.0.0.1:1", "--endpoint", "/v2").returncode == 2


class FakeKube:
    def __init__(self, objects):
        self.objects = objects

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get((kind, namespace, name))

    def list(self, api_version, kind, namespace=None, label_selector=None):
        wanted = dict(term.split("=", 1) for term in (label_selector or "").split(",") if term)
        return [obj for (k, ns, _), obj in self.objects.items() if k == kind and ns == namespace and
                wanted.items() <= ((obj.get("metadata") or {}).get("labels") or {}).items()]


def _cfg():
    from llmctl.config.model import LlmctlConfig

    return LlmctlConfig()


def _names():
    from llmctl.config import Names

    return Names.from_config(_cfg())


def test_resolution_order_flag_then_local_then_cluster():
    local = {"url": "http://127.0.0.1:9/", "api_key": "lk", "model": "m"}
    never = lambda: (_ for _ in ()).throw(AssertionError("not consulted"))  # noqa: E731
    flag = resolve_target("http://h:1/", "fk", local=local, config_loader=never, names_loader=never, kube_factory=never)
    assert (flag.base_url, flag.api_key, flag.source) == ("http://h:1", "fk", "flag")
    loc = resolve_target(None, None, local=local, config_loader=_cfg, names_loader=_names, kube_factory=never)
    assert (loc.base_url, loc.api_key, loc.source, loc.model) == ("http://127.0.0.1:9", "lk", "local", "m")


def test_cluster_target_from_service_and_secret():
    import base64

    names = _names()
    kube = FakeKube({
        ("Service", names.namespace, names.app): {
            "spec": {"type": "LoadBalancer", "ports": [{"port": 8000}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "abc.elb.amazonaws.com"}]}},
        },
        ("Secret", names.namespace, names.api_key_secret): {"data": {"api-key": base64.b64encode(b"sekret").decode()}},
    })
    t = resolve_target(None, None, local=None, config_loader=_cfg, names_loader=_names, kube_factory=lambda: kube)
    assert (t.base_url, t.api_key, t.source, t.instance_type) == ("http://abc.elb.amazonaws.com:8000", "sekret", "cluster", "g4dn.xlarge")


def test_cluster_without_address_or_service_is_a_clear_error():
    names = _names()
    pending = FakeKube({("Service", names.namespace, names.app): {"spec": {"type": "LoadBalancer"},
                                                                  "status": {"loadBalancer": {}}}})
    with pytest.raises(LlmctlError, match="no load-balancer address yet"):
        resolve_target(None, None, local=None, config_loader=_cfg, names_loader=_names, kube_factory=lambda: pending)
    with pytest.raises(LlmctlError, match="does not exist") as err:
        resolve_target(None, None, local=None, config_loader=_cfg, names_loader=_names, kube_factory=lambda: FakeKube({}))
    assert "--url" in err.value.hint
    with pytest.raises(ConfigError):
        resolve_target("127.0.0.1:8000", None, local=None, config_loader=_cfg, names_loader=_names, kube_factory=lambda: None)


def test_cost_per_million_tokens():
    from llmctl.bench.cost import estimate

    e = estimate(100.0, replicas=2, hourly_usd=0.526)
    # 2 nodes * $0.526/h over 100 tok/s * 3600 s = 360,000 tok/h -> $2.922 per million
    assert e.usd_per_million_output_tokens == pytest.approx(2 * 0.526 / 360_000 * 1e6)
    assert e.output_throughput_per_replica == 50.0
    assert estimate(100.0) is None
    # the price table `cluster` and `cost` use: g4dn.xlarge on demand in us-east-1
    from llmctl import pricing

    table = estimate(100.0, instance_type="g4dn.xlarge")
    assert table.hourly_usd == pricing.hourly("g4dn.xlarge") and table.source == "price table"
    assert estimate(100.0, instance_type="x9.nonexistent") is None
