"""The session's second (and last) server: LoRA on the CPU engine, then the SIGTERM drain.

LoRA on vLLM's CPU engine needs float32 (with bfloat16 the worker dies), hence a second engine;
its tests are few and share it. The drain test ends it, so it comes last in this module.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.server import make_tiny_lora, running_server, wait_for

pytestmark = pytest.mark.engine
LOAD, UNLOAD = "/v1/load_lora_adapter", "/v1/unload_lora_adapter"


@pytest.fixture(scope="module")
def lora_server(tiny_model_dir, tmp_path_factory, moto_server):
    """Also a pod's S3 access (the moto server; a test makes the bucket) and its ADAPTERS_PATH."""
    root = tmp_path_factory.mktemp("lora")
    adapters = {"sql": make_tiny_lora(root / "sql", seed=1), "chat": make_tiny_lora(root / "chat", seed=2)}
    with running_server(tiny_model_dir, root / "server.log", DTYPE="float32", ENABLE_LORA="true", MAX_LORAS="3",
                        MAX_LORA_RANK="8", LORA_MODULES=f"sql={adapters['sql']}", DRAIN_TIMEOUT_S="120",
                        VLLM_ALLOW_RUNTIME_LORA_UPDATING="true", S3_BUCKET="models",
                        ADAPTERS_PATH=str(root / "pod-adapters"), **moto_server.env) as server:
        yield server, adapters


def greedy(server, model: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/completions", headers=server.headers, timeout=120,
                      json={"model": model, "prompt": "The model serves", "max_tokens": 8, "temperature": 0,
                            "ignore_eos": True})


def test_an_adapter_from_lora_modules_is_served_and_changes_the_output(lora_server):
    server, _ = lora_server
    models = {m.id: m for m in server.openai().models.list().data}
    assert set(models) == {"tiny-llama", "sql"} and models["sql"].parent == "tiny-llama"
    counted = server.metric("vllm_requests_total", status="success", endpoint="/v1/completions")
    base, adapted = greedy(server, "tiny-llama"), greedy(server, "sql")
    assert base.status_code == adapted.status_code == 200, adapted.text
    assert base.json()["choices"][0]["text"] != adapted.json()["choices"][0]["text"]
    assert adapted.json()["usage"]["completion_tokens"] == 8
    assert server.metric("vllm_requests_total", status="success", endpoint="/v1/completions") - counted == 2


def test_runtime_adapter_routes_need_the_key_then_load_and_unload(lora_server):
    server, adapters = lora_server
    load = {"lora_name": "chat", "lora_path": str(adapters["chat"])}
    for path, body in ((LOAD, load), (UNLOAD, {"lora_name": "sql"}), ("/adapters", {"name": "x", "src": "/x"})):
        r = httpx.post(f"{server.url}{path}", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error", path
    assert greedy(server, "chat").status_code == 404  # nothing was loaded

    def post(path: str, body: dict) -> httpx.Response:
        return httpx.post(f"{server.url}{path}", json=body, headers=server.headers, timeout=120)

    assert post(LOAD, load).status_code == 200
    assert "chat" in {m.id for m in server.openai().models.list().data}
    assert greedy(server, "chat").status_code == 200
    assert post(UNLOAD, {"lora_name": "chat"}).status_code == 200
    assert greedy(server, "chat").status_code == 404


def test_adapter_push_live_loads_into_the_running_server_and_rm_live_unloads(lora_server, llmctl, aws, tiny_model_dir,
                                                                            tmp_path):
    from llmctl.actions.model import upload_model
    from llmctl.state import StateStore

    server, _ = lora_server
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="models")
    upload_model(s3, tiny_model_dir, "models", "tiny", {})
    llmctl.write_config("project:\n  name: demo\nmodel:\n  bucket: models\n  prefix: tiny\n")
    StateStore(llmctl.cwd / ".llmctl", "demo").set("local", {"url": server.url, "api_key": server.api_key,
                                                             "state_dir": str(tmp_path)})
    hot = make_tiny_lora(tmp_path / "hot", rank=8, seed=3)
    pushed = json.loads(llmctl("adapter", "push", str(hot), "--name", "hot", "--live", "-o", "json", check=True).stdout)
    assert pushed["live"] == [{"replica": "local", "result": "loaded"}] and pushed["uploaded"]
    base, adapted = greedy(server, "tiny-llama"), greedy(server, "hot")  # no restart: the same process serves it
    assert adapted.status_code == 200 and base.json()["choices"][0]["text"] != adapted.json()["choices"][0]["text"]
    assert server.metric("vllm_tokens_generated_total", model="hot") == 8  # per-adapter series
    assert server.metric("vllm_lora_adapter_loaded", adapter="hot") == server.metric("vllm_lora_adapter_loaded", adapter="sql") == 1
    assert server.metric("vllm_requests_total", model="hot", status="success") == 1
    assert server.metric("vllm_time_to_first_token_seconds_count", model="tiny-llama") >= 1
    listed = json.loads(llmctl("adapter", "list", "-o", "json", check=True).stdout)
    assert listed["replicas"] == [{"replica": "local", "adapters": ["hot", "sql"]}]
    assert [a["name"] for a in listed["adapters"]] == ["hot"]

    removed = json.loads(llmctl("adapter", "rm", "hot", "--live", "--yes", "-o", "json", check=True).stdout)
    assert removed["live"] == [{"replica": "local", "result": "unloaded"}]
    assert greedy(server, "hot").status_code == 404 and "hot" not in {m.id for m in server.openai().models.list().data}
    assert ("vllm_lora_adapter_loaded", (("adapter", "hot"),)) not in server.metrics()
    assert s3.list_objects_v2(Bucket="models", Prefix="tiny-adapters/").get("KeyCount") == 0


def test_push_live_has_every_pod_fetch_it_from_s3_and_names_the_replicas_without_it(lora_server, llmctl, aws, kube,
                                                                                   tiny_model_dir, tmp_path):
    """The server as the deployment's pods, reached through the Kubernetes double's port-forwards: one pod is it,
    the other listens on nothing."""
    import base64

    from llmctl.actions.deploy import pod_selector
    from llmctl.actions.model import upload_model
    from llmctl.config import load_config
    from llmctl.config.names import Names
    from llmctl.k8s.client import Kube

    server, _ = lora_server
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="models")
    upload_model(s3, tiny_model_dir, "models", "tiny", {})
    names = Names.from_config(load_config(llmctl.write_config("project:\n  name: demo\nmodel:\n  bucket: models\n"
                                                              "  prefix: tiny\n")))
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names.namespace}})
    kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": names.api_key_secret,
                 "namespace": names.namespace}, "data": {"api-key": base64.b64encode(server.api_key.encode()).decode()}})
    pods = [f"{names.app}-{suffix}" for suffix in ("a", "b")]
    for pod in pods:
        kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": names.namespace,
                     "labels": pod_selector(names)}, "spec": {"containers": [
                         {"name": "vllm", "image": "vllm@sha256:1", "ports": [{"name": "http", "containerPort": 8000}]}]}})
    kube.wait_for(lambda: all(((kube.get("v1", "Pod", p, names.namespace) or {}).get("status") or {}).get("phase")
                              == "Running" for p in pods))
    kube.expose(pods[0], 8000, ("127.0.0.1", urlsplit(server.url).port))
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    pod_dir = Path(server.env["ADAPTERS_PATH"]) / "pod"
    assert not pod_dir.exists()

    hot = make_tiny_lora(tmp_path / "pod", rank=8, seed=4)
    partial = llmctl("adapter", "push", str(hot), "--name", "pod", "--live", "-o", "json")
    assert partial.returncode == 1, partial.stderr
    document = json.loads(partial.stdout)
    assert document["error"] == f"adapter pod is in S3 and loaded on {pods[0]}; failed on {pods[1]}"
    rows = document["result"]["live"]
    assert rows[0] == {"replica": pods[0], "result": "loaded"}
    assert rows[1]["replica"] == pods[1] and rows[1]["result"] == "failed" and "unreachable" in rows[1]["error"]
    assert (pod_dir / "adapter_model.safetensors").read_bytes() == (hot / "adapter_model.safetensors").read_bytes()
    assert (pod_dir.parent / ".llmctl-pushed").read_text() == "pod\n"  # a restarted container serves it too
    base, adapted = greedy(server, "tiny-llama"), greedy(server, "pod")  # the pod's own copy, no restart
    assert adapted.status_code == 200 and base.json()["choices"][0]["text"] != adapted.json()["choices"][0]["text"]

    listed = json.loads(llmctl("adapter", "list", "-o", "json", check=True).stdout)
    assert listed["replicas"][0] == {"replica": pods[0], "adapters": ["pod", "sql"]}
    assert listed["replicas"][1]["adapters"] is None and "unreachable" in listed["replicas"][1]["error"]
    text = llmctl("adapter", "list", check=True).stdout
    assert pods[1] in text and "unknown:" in text

    Kube.from_kubeconfig(str(kube.kubeconfig_path)).delete("v1", "Pod", pods[1], names.namespace, wait=True)
    bad = make_tiny_lora(tmp_path / "bad", rank=8, seed=5)
    llmctl("adapter", "push", str(bad), "--name", "bad", check=True)
    key = "tiny-adapters/bad/adapter_model.safetensors"  # changed behind llmctl's back: the manifest's sha256 no longer holds
    s3.put_object(Bucket="models", Key=key, Body=b"\0" * s3.head_object(Bucket="models", Key=key)["ContentLength"])
    corrupt = llmctl("adapter", "push", str(bad), "--name", "bad", "--live")  # same size and sha here: not re-sent
    assert corrupt.returncode == 1 and "Traceback" not in corrupt.stderr
    assert f"{pods[0]}: failed: " in corrupt.stdout and key in corrupt.stdout and "checksum mismatch" in corrupt.stdout
    assert f"error: adapter bad is in S3 and loaded on no replica; failed on {pods[0]}" in corrupt.stderr
    assert greedy(server, "bad").status_code == 404  # never renamed into place, never loaded
    assert not (Path(server.env["ADAPTERS_PATH"]) / "bad" / "adapter_model.safetensors").exists()
    assert greedy(server, "pod").status_code == 200  # what the pod had stays served

    removed = json.loads(llmctl("adapter", "rm", "pod", "--live", "--yes", "-o", "json", check=True).stdout)
    assert removed["live"] == [{"replica": pods[0], "result": "unloaded"}] and removed["deleted"]
    assert greedy(server, "pod").status_code == 404
    # forgotten on the pod too: a restart of its container does not bring the removed adapter back
    assert (pod_dir.parent / ".llmctl-pushed").read_text() == "" and not pod_dir.exists()
    assert s3.list_objects_v2(Bucket="models", Prefix="tiny-adapters/pod/").get("KeyCount") == 0
    for route, body in (("fetch", {"lora_name": "x", "s3_prefix": "y"}), ("remove", {"lora_name": "sql"})):
        unauthenticated = httpx.post(f"{server.url}/v1/{route}_lora_adapter", json=body)
        assert unauthenticated.status_code == 401, route


def test_bench_compare_runs_the_base_and_an_adapter_on_the_engine(lora_server, llmctl, tmp_path):
    server, _ = lora_server
    done = llmctl("bench", "--url", server.url, "--api-key", server.api_key, "-n", "16", "--input-len", "32",
                  "--output-len", "32", "--concurrency", "4", "--hourly-price", "0.526", "--compare", "base,sql",
                  "-o", "json", timeout=600)
    assert done.returncode == 0, done.stderr
    (tmp_path / "compare.json").write_text(done.stdout)  # docs/adapters.md quotes a run of it
    compare = json.loads(done.stdout)["compare"]
    assert compare["models"] == ["tiny-llama", "sql"]
    assert all(run["completed"] == 16 and run["failed"] == 0 for run in compare["runs"].values())
    ratios = compare["ratios"]
    assert ratios["median_e2el_ms"] > 0 and ratios["usd_per_million_output_tokens"] > 0, compare
    # TPOT needs streams that came in 2+ reads. The server streams each token as the engine makes it, but on 2
    # cores shared with other work the bench client waits for a CPU most of a run (70-99% measured) and then
    # reads each 32-token stream in one go: that side's TPOT is unmeasured (null, named), its client starved.
    runs = compare["runs"]
    unmeasured = [name for name in compare["models"] if not runs[name]["tpot_requests"]]
    assert compare["tpot_unmeasured"] == unmeasured, compare
    assert all(runs[name]["median_tpot_ms"] is None and runs[name]["client_starved"] for name in unmeasured), compare
    assert ratios["median_tpot_ms"] > 0 if not unmeasured else ratios["median_tpot_ms"] is None, compare
    assert server.metric("vllm_requests_total", model="sql", status="success") >= 16


def test_sigterm_drains_in_flight_requests_then_exits_0(lora_server):
    server, _ = lora_server
    max_tokens = 500
    result: dict = {}

    def long_stream():
        with httpx.stream("POST", f"{server.url}/generate", headers=server.headers, timeout=300,
                          json={"prompt": "drain", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        result["final"] = json.loads(lines[-2][len("data: "):])

    worker = threading.Thread(target=long_stream)
    with server.engine_paused():
        worker.start()
        wait_for(lambda: server.metric("vllm_active_requests") >= 1, "the request to be admitted", 60)

        server.process.terminate()  # SIGTERM to the server process only, as the kubelet does

        def ready_status():
            response = httpx.get(f"{server.url}/ready", timeout=10)
            return response if response.status_code == 503 else None

        ready = wait_for(ready_status, "/ready to turn 503 after SIGTERM", 30)
        assert ready.json()["status"] == "draining"
        for path, body in (("/generate", {"prompt": "x", "max_tokens": 1}),
                           ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1})):
            refused = httpx.post(f"{server.url}{path}", headers=server.headers, json=body)
            assert refused.status_code == 503 and refused.json()["error"]["type"] == "service_unavailable", path
        assert server.metric("vllm_active_requests") == 1

    worker.join(240)
    assert result["final"]["tokens_generated"] == max_tokens and result["final"]["finish_reason"] == "length"
    assert server.process.wait(60) == 0
    log = server.log_tail(200000)
    assert '"in_flight": 1' in log.split('"msg": "draining"')[1][:200]
    assert '"msg": "drained"' in log
