"""A tiny random-weight Llama in Hugging Face format, made on the spot (nothing downloaded).

Used by the tests, `llmctl local up` and the benchmarks: hidden 128 with 2 heads gives
head_dim 64 (vLLM's CPU attention needs >= 32). Weights are written with numpy and
safetensors' numpy API, so llmctl itself needs no torch. Same seed, same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

HIDDEN = 128
HEADS = 2
LAYERS = 2
INTERMEDIATE = 256
VOCAB = 512
MAX_POSITIONS = 2048
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '</s>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
_WORDS = ["the", "a", "model", "serves", "tokens", "from", "a", "cluster", "of", "nodes", "on", "demand", "each", "request", "streams", "text", "back", "to", "the", "client", "while", "the", "engine", "schedules", "batches", "keeps", "a", "cache", "of", "keys", "and", "values", "and", "measures", "latency", "throughput", "and", "time", "to", "first", "token", "for", "every", "prompt", "it", "receives", "data", "moves", "from", "storage", "into", "memory", "then", "into", "the", "accelerator", "where", "attention", "runs"]


def _corpus(seed: int, lines: int = 400) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(lines):
        n = int(rng.integers(5, 20))
        words = [_WORDS[i] for i in rng.integers(0, len(_WORDS), n)]
        out.append(" ".join(words).capitalize() + ". Numbers 0123456789, symbols: !?-'\"()")
    return out


def _write_tokenizer(dest: Path, seed: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    tok.save(str(dest / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "add_bos_token": False,
        "model_max_length": MAX_POSITIONS,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    (dest / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def _model_config() -> dict:
    ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "vocab_size": VOCAB,
        "max_position_embeddings": MAX_POSITIONS,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
        "pad_token_id": ids["<pad>"],
    }


def _weights(seed: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)

    def normal(*shape: int):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tensors = {"model.embed_tokens.weight": normal(VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"{p}self_attn.{name}.weight"] = normal(HIDDEN, HIDDEN)
        tensors[f"{p}mlp.gate_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        tensors[f"{p}mlp.up_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        tensors[f"{p}mlp.down_proj.weight"] = normal(HIDDEN, INTERMEDIATE)
        tensors[f"{p}input_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
        tensors[f"{p}post_attention_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    tensors["model.norm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    tensors["lm_head.weight"] = normal(VOCAB, HIDDEN)
    return tensors


def make_tiny_llama(dest: Path, *, seed: int = 0) -> Path:
    """Write a random-weight Llama (config, safetensors, BPE tokenizer) into `dest`; return it."""
    from safetensors.numpy import save_file

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = _model_config()
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "pad_token_id": config["pad_token_id"],
    }
    (dest / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    save_file(_weights(seed), str(dest / "model.safetensors"), metadata={"format": "pt"})
    _write_tokenizer(dest, seed)
    return dest


def make_tiny_lora(dest: Path, *, rank: int = 8, seed: int = 1) -> Path:
    """A PEFT LoRA adapter (q_proj, v_proj) for llmctl.tinymodel's Llama, with weights large enough
    that greedy output differs from the base model's."""
    import numpy as np
    from safetensors.numpy import save_file

    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(LAYERS):
        for module in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((rank, HIDDEN)) * 0.5).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (rng.standard_normal((HIDDEN, rank)) * 0.5).astype(np.float32)
    save_file(tensors, str(dest / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
              "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0, "bias": "none",
              "fan_in_fan_out": False, "base_model_name_or_path": "tiny-llama"}
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return dest
