"""Which adapters each running replica serves, and hot-loading through vLLM's runtime LoRA API.

Replicas are the local server `llmctl local up` recorded and every ready pod of the deployment (each
through its own port-forward, as `llmctl endpoint` reaches a ClusterIP endpoint). A replica's adapters
are the `/v1/models` entries with a parent. vLLM loads an adapter from the replica's own disk: the local
server reads the pushed folder on this machine through vLLM's `/v1/load_lora_adapter`; a pod has only what its
init container fetched, so it is asked to fetch the pushed adapter from S3 itself, verified as the init
container does, and load it through the same vLLM code (`/v1/fetch_lora_adapter`, server/api_adapters.py).
Both need the API key (as every route), and each replica is asked again afterwards, so a load that did not
take is an error.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from llmctl.errors import LlmctlError

TIMEOUT_S = 120


@dataclass
class Replica:
    name: str
    url: str
    api_key: str | None
    pod: bool = False  # a pod fetches an adapter from S3 itself; the local server reads this machine's folder


def _request(replica: Replica, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if replica.api_key:
        headers["Authorization"] = f"Bearer {replica.api_key}"
    request = urllib.request.Request(f"{replica.url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise LlmctlError(f"replica {replica.name} at {replica.url} is unreachable ({exc})") from None


def served(replica: Replica) -> dict[str, str | None]:
    """Model id -> parent (None for the base) of everything the replica's /v1/models lists."""
    status, text = _request(replica, "GET", "/v1/models")
    if status != 200:
        raise LlmctlError(f"replica {replica.name}: /v1/models answered {status}: {text[:200]}")
    return {m["id"]: m.get("parent") for m in json.loads(text).get("data", [])}


def loaded_adapters(replica: Replica) -> list[str]:
    return sorted(name for name, parent in served(replica).items() if parent)


def _error_text(text: str) -> str:
    try:
        return json.loads(text).get("error", {}).get("message") or text
    except (ValueError, AttributeError):
        return text


def load(replica: Replica, name: str, folder: str, s3_prefix: str) -> None:
    """Load (or reload) adapter `name`, from `folder` on this machine or, on a pod, from `s3_prefix` in the
    model's bucket; then check the replica lists it."""
    if replica.pod:
        status, text = _request(replica, "POST", "/v1/fetch_lora_adapter", {"lora_name": name, "s3_prefix": s3_prefix})
    else:
        status, text = _request(replica, "POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": folder})
    if status != 200 and "already been loaded" not in text:
        raise LlmctlError(f"replica {replica.name} refused to load adapter {name}: {status} {_error_text(text)[:300]}",
                          hint="the engine needs ENABLE_LORA and VLLM_ALLOW_RUNTIME_LORA_UPDATING (deploy with an adapter "
                               "declared), and max_lora_rank at least the adapter's r")
    if name not in loaded_adapters(replica):
        raise LlmctlError(f"replica {replica.name} answered {status} but does not list adapter {name} afterwards")


def unload(replica: Replica, name: str) -> bool:
    """Unload `name` where it is loaded; False when it was not. Checked afterwards."""
    if name not in loaded_adapters(replica):
        return False
    # a pod forgets a fetched adapter too (its container's restart would load it again); here, vLLM's unload
    path = "/v1/remove_lora_adapter" if replica.pod else "/v1/unload_lora_adapter"
    status, text = _request(replica, "POST", path, {"lora_name": name})
    if status != 200:
        raise LlmctlError(f"replica {replica.name} refused to unload adapter {name}: {status} {_error_text(text)[:300]}")
    if name in loaded_adapters(replica):
        raise LlmctlError(f"replica {replica.name} still lists adapter {name} after unloading it")
    return True


@contextlib.contextmanager
def replicas(local: dict | None, kube_factory: Callable[[], object] | None, names,
             notes: list[str]) -> Iterator[list[Replica]]:
    """Every running replica, port-forwards open while the block runs; why a source was skipped goes in `notes`."""
    found: list[Replica] = []
    if local and local.get("url"):
        found.append(Replica("local", local["url"].rstrip("/"), local.get("api_key")))
    with contextlib.ExitStack() as stack:
        if kube_factory is not None:
            try:
                found += _pods(kube_factory(), names, stack)
            except LlmctlError as exc:
                notes.append(f"cluster replicas not checked: {exc.message}")
            except Exception as exc:  # no kubeconfig, an unreachable API server
                notes.append(f"cluster replicas not checked: cannot reach the cluster ({type(exc).__name__}: {exc})")
        yield found


def _pods(kube, names, stack: contextlib.ExitStack) -> list[Replica]:
    from llmctl.actions.deploy import existing_api_key, pod_selector
    from llmctl.k8s.portforward import PortForward, _container_port, _is_ready

    selector = ",".join(f"{k}={v}" for k, v in pod_selector(names).items())
    pods = sorted((p for p in kube.list("v1", "Pod", names.namespace, label_selector=selector) if _is_ready(p)),
                  key=lambda p: p["metadata"]["name"])
    if not pods:
        return []
    api_key = existing_api_key(kube, names)
    out = []
    for pod in pods:
        forward = PortForward(kube, names.namespace, pod["metadata"]["name"], _container_port(pod, "http") or 8000)
        forward.start()
        stack.callback(forward.stop)
        out.append(Replica(pod["metadata"]["name"], forward.url, api_key, pod=True))
    return out
