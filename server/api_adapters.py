"""POST /v1/fetch_lora_adapter: a running replica fetches one LoRA adapter from S3 and loads it, no restart;
POST /v1/remove_lora_adapter undoes it.

vLLM loads an adapter from a path on the replica's own disk, and in the cluster only the init container
fills that disk. This route does for one adapter what the init container does for the declared ones
(`server.download_model`: the manifest is required, every file is checked against its sha256) into
ADAPTERS_PATH/<name>, with the pod's own S3 access (IRSA; the role reads the model's and the adapters'
prefixes only), then hands that folder to vLLM's own runtime load, the one behind /v1/load_lora_adapter.
Like every route but the probes it needs the API key (middleware.py). `llmctl adapter push --live` calls
it on every pod through a port-forward, then reads each pod's /v1/models. The name is added to
ADAPTERS_PATH/.llmctl-pushed, which the server reads at start (settings.py), so a restarted container serves
it again; a new pod's init container finds it in S3 (download_model.py). `llmctl adapter rm --live` calls
/v1/remove_lora_adapter: vLLM's runtime unload, then the name leaves .llmctl-pushed and its fetched folder
goes, so a restarted container does not bring the removed adapter back.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from server import vllm_seam
from server.download_model import download_adapters, explain, s3_client
from server.errors import error_body
from server.settings import PUSHED_ADAPTERS, Settings

log = logging.getLogger("server.adapters")
ENDPOINT = "/v1/fetch_lora_adapter"
REMOVE_ENDPOINT = "/v1/remove_lora_adapter"
PART_SIZE = 8 * 1024 * 1024  # adapters are 10-300 MB: parts small enough to go in parallel
CONCURRENCY = 4


class FetchRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    lora_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    s3_prefix: str = Field(min_length=1, max_length=1024)  # the adapter's key prefix in S3_BUCKET


class RemoveRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    lora_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _error(status: int, message: str, type: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(error_body(message, type, status), status_code=status)


def router_for(settings: Settings) -> APIRouter:
    router = APIRouter()
    one_at_a_time = asyncio.Lock()  # two pushes of one adapter must not write the same files

    @router.post(ENDPOINT, dependencies=[Depends(vllm_seam.validate_json_request)])
    async def fetch_lora_adapter(request: FetchRequest, raw_request: Request):
        unset = [name for name, value in (("ENABLE_LORA", settings.enable_lora), ("S3_BUCKET", settings.s3_bucket),
                                          ("ADAPTERS_PATH", settings.adapters_path)) if not value]
        if unset:
            return _error(400, f"this server cannot fetch adapters: {', '.join(unset)} not set (deploy with an "
                               "adapter declared or pushed, which sets them)")
        prefix = request.s3_prefix.strip("/")
        if not prefix or ".." in prefix.split("/"):
            return _error(400, f"s3_prefix {request.s3_prefix!r} is not a key prefix")
        name, root = request.lora_name, Path(settings.adapters_path)
        async with one_at_a_time:
            try:
                fetched = await asyncio.to_thread(download_adapters, s3_client(CONCURRENCY), settings.s3_bucket,
                                                  [(name, prefix)], root, PART_SIZE, CONCURRENCY, _log_event)
            except Exception as exc:  # noqa: BLE001 - every failure is one line naming what failed
                line = explain(exc, settings.s3_bucket, prefix)
                log.error("adapter fetch failed", extra={"adapter": name, "reason": line})
                return _error(502, f"adapter {name}: {line}", type="adapter_fetch_failed")
        refused = await vllm_seam.load_lora(raw_request.app.state, name, str(root / name))
        if refused is not None:
            return JSONResponse(refused.model_dump(), status_code=refused.error.code)
        _remember(root, name)
        sizes = {"bytes_total": fetched[0]["bytes_total"], "bytes_fetched": fetched[0]["bytes_fetched"]}
        log.info("adapter fetched and loaded", extra={"adapter": name, **sizes})
        return JSONResponse({"lora_name": name, "lora_path": str(root / name), **sizes})

    @router.post(REMOVE_ENDPOINT, dependencies=[Depends(vllm_seam.validate_json_request)])
    async def remove_lora_adapter(request: RemoveRequest, raw_request: Request):
        name = request.lora_name
        async with one_at_a_time:
            refused = await vllm_seam.unload_lora(raw_request.app.state, name)
            if refused is not None:
                return JSONResponse(refused.model_dump(), status_code=refused.error.code)
            forgotten = _forget(Path(settings.adapters_path), name) if settings.adapters_path else False
        log.info("adapter unloaded", extra={"adapter": name, "forgotten": forgotten})
        return JSONResponse({"lora_name": name, "forgotten": forgotten})

    return router


def _remember(root: Path, name: str) -> None:
    """A restart of this container (not of the pod: the init container does not run again) serves it too."""
    pushed = root / PUSHED_ADAPTERS
    names = pushed.read_text().split() if pushed.is_file() else []
    if name not in names:
        pushed.write_text("".join(f"{n}\n" for n in [*names, name]))


def _forget(root: Path, name: str) -> bool:
    """A fetched (pushed) adapter leaves .llmctl-pushed and the disk; one the deploy declared stays on disk
    (LORA_MODULES names it, so a restart loads it again until a deploy without it). Whether it was pushed."""
    pushed = root / PUSHED_ADAPTERS
    names = pushed.read_text().split() if pushed.is_file() else []
    if name not in names:
        return False
    pushed.write_text("".join(f"{n}\n" for n in names if n != name))
    shutil.rmtree(root / name, ignore_errors=True)
    return True


def _log_event(event: dict) -> None:
    if event["event"] in ("adapter_verify_failed", "adapter_done"):
        log.info(event["event"], extra={"adapter" if k == "name" else k: v for k, v in event.items() if k != "event"})
