"""`llmctl local up --adapter DIR[:NAME]`: LoRA adapters on the local stack, through the cloud's own paths.

Each adapter is checked against the base model before anything starts (`adapter push`'s checks), uploaded
to the embedded S3 beside the model, fetched back by the pod's downloader (`ADAPTERS`), and served from the
start. vLLM's CPU engine runs LoRA in float32 only, so the local server does.
"""

from __future__ import annotations

from pathlib import Path

from llmctl.actions.adapter import adapter_prefix, check_name
from llmctl.actions.adapter_env import adapter_env
from llmctl.actions.adapter_fit import VLLM_LORA_RANKS, Adapter, base_from_folder, derived_rank, fit_problem, read_adapter
from llmctl.errors import ConfigError


def parse(values: list[str]) -> list[tuple[str, Path]]:
    """DIR[:NAME] (NAME defaults to the folder's name), each name once."""
    out: dict[str, Path] = {}
    for value in values:
        folder, _, name = value.partition(":")
        name = name or Path(folder).name
        check_name(name)
        if name in out:
            raise ConfigError(f"--adapter {value}: the name {name} is given twice", hint="name them DIR:NAME")
        out[name] = Path(folder)
    return list(out.items())


def check(specs: list[tuple[str, Path]], base_dir: Path, cfg) -> dict[str, Adapter]:
    if not specs:
        return {}
    if "dtype" in cfg.model.model_fields_set and cfg.model.dtype != "float32":
        raise ConfigError(f"--adapter needs model.dtype float32 on the CPU engine (is {cfg.model.dtype})",
                          hint="remove model.dtype for local up, or set it to float32")
    base = base_from_folder(base_dir)
    limit, source = (cfg.server.max_lora_rank, "server.max_lora_rank") if cfg.server.max_lora_rank else (
        VLLM_LORA_RANKS[-1], "vLLM's largest")
    checked = {}
    for name, folder in specs:
        adapter = read_adapter(folder)
        problem = fit_problem(adapter, base, limit, source)
        if problem:
            raise ConfigError(f"--adapter {folder}:{name}: {problem}", hint="nothing was started")
        checked[name] = adapter
    return checked


def with_adapters(cfg, adapters: dict[str, Adapter]):
    """The config as if the adapters were declared, the rank derived from theirs."""
    if not adapters:
        return cfg
    rank = cfg.server.max_lora_rank or derived_rank([a.rank for a in adapters.values()])
    return cfg.model_copy(update={
        "model": cfg.model.model_copy(update={"adapters": {**cfg.model.adapters, **dict.fromkeys(adapters)}}),
        "server": cfg.server.model_copy(update={"enable_lora": True, "max_lora_rank": rank})})


def upload(s3, bucket: str, cfg, adapters: dict[str, Adapter], tags: dict[str, str]) -> None:
    from llmctl.actions.model import upload_model

    for name, adapter in adapters.items():
        upload_model(s3, adapter.folder, bucket, adapter_prefix(cfg, name), tags, files=adapter.files)


def store(cfg, local: dict | None):
    """(config, S3 client) for `llmctl adapter` beside a running `local up` when model.bucket is unset: its
    embedded S3, where it put the model it serves; None otherwise (model.bucket it is). That S3 lives as long
    as the stack: `local up --adapter` serves an adapter from the start of the next one."""
    if cfg.model.bucket or not (local or {}).get("s3_url"):
        return None
    from llmctl.actions.local import EMBEDDED_S3_CREDENTIALS, LOCAL_BUCKET
    from llmctl.aws.session import endpoint_client

    s3 = endpoint_client("s3", local["s3_url"], cfg.aws.region, EMBEDDED_S3_CREDENTIALS)
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"bucket": LOCAL_BUCKET})}), s3


def env(cfg, root: Path) -> dict[str, str]:
    """adapter_env's, with this machine's adapters folder for the pod's /models."""
    values = adapter_env(cfg)
    if not values:
        return {}
    local = str(root / "models" / values["ADAPTERS_PATH"].removeprefix("/models/"))
    return {**{k: v.replace(values["ADAPTERS_PATH"], local) for k, v in values.items()}, "DTYPE": "float32"}
