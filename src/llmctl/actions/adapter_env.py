"""What the declared adapters add to the server's environment, and their discovery at deploy time.

Every replica downloads each declared adapter beside the model in its init container (`ADAPTERS`:
`name=key-prefix` words, fetched into `ADAPTERS_PATH/<name>` and verified against their manifests by
`python -m server.download_model`) and serves them from the start (`LORA_MODULES`), and so every complete
adapter pushed under the adapters root since (`ADAPTERS_ROOT`): a replica that starts later serves the same
adapters as the others. Runtime loading stays on (behind the API key) for `adapter push --live`.
"""

from __future__ import annotations

import shlex

from llmctl.actions.adapter import adapter_prefix, adapters_root
from llmctl.actions.adapter_fit import derived_rank


def adapters_path(cfg) -> str:
    return f"/models/{adapters_root(cfg).rstrip('/')}"


def adapter_env(cfg) -> dict[str, str]:
    """ENABLE_LORA and the engine's LoRA limits (server.* overrides; else derived: a slot for each declared
    adapter plus one for a hot-loaded one, and vLLM's default rank unless `with_discovered` read theirs)."""
    adapters, server = sorted(cfg.model.adapters), cfg.server
    if not adapters:
        return {}
    root = adapters_path(cfg)
    modules = {**server.lora_modules, **{name: f"{root}/{name}" for name in adapters}}
    return {"ADAPTERS": shlex.join(f"{name}={adapter_prefix(cfg, name)}" for name in adapters),
            "ADAPTERS_PATH": root,
            "ADAPTERS_ROOT": adapters_root(cfg).rstrip("/"),
            "ENABLE_LORA": "true",
            "MAX_LORAS": str(server.max_loras or len(adapters) + 1),
            "MAX_LORA_RANK": str(server.max_lora_rank or 16),
            "LORA_MODULES": shlex.join(f"{name}={path}" for name, path in modules.items()),
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true"}


def with_discovered(cfg, s3):
    """The config with every complete adapter under the adapters prefix declared too, and server.max_lora_rank
    derived from their ranks unless set: what `llmctl deploy` renders (render itself stays pure)."""
    from llmctl.actions.adapter import stored

    if not cfg.model.bucket:
        return cfg
    found = [a for a in stored(cfg, s3) if a["complete"]]
    if not found and not cfg.model.adapters:
        return cfg
    adapters = {**{a["name"]: None for a in found}, **cfg.model.adapters}
    rank = cfg.server.max_lora_rank or derived_rank([a["rank"] for a in found if isinstance(a.get("rank"), int)])
    return cfg.model_copy(update={
        "model": cfg.model.model_copy(update={"adapters": adapters}),
        "server": cfg.server.model_copy(update={"enable_lora": True, "max_lora_rank": rank})})
