"""The tiny-model factory: a loadable HF folder, byte-identical for a seed, no torch needed."""

from __future__ import annotations

import hashlib
import json

from llmctl.tinymodel import make_tiny_llama


def digest(folder) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, tiny_model_dir):
    again = make_tiny_llama(tmp_path / "again", seed=0)
    other = make_tiny_llama(tmp_path / "other", seed=1)
    assert digest(again) == digest(tiny_model_dir)
    assert digest(other)["model.safetensors"] != digest(again)["model.safetensors"]


def test_folder_is_a_llama_vllm_cpu_can_run(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] >= 32  # vLLM CPU attention
    assert config["max_position_embeddings"] >= 1024
    from safetensors.numpy import load_file

    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    assert weights["model.embed_tokens.weight"].shape == (config["vocab_size"], config["hidden_size"])
    assert weights["lm_head.weight"].shape == (config["vocab_size"], config["hidden_size"])


def test_tokenizer_round_trips_and_has_a_chat_template(tiny_model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    text = "The model serves tokens, 42 of them!"
    assert tok.decode(tok.encode(text).ids) == text
    config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert tok.token_to_id(config["eos_token"]) == json.loads((tiny_model_dir / "config.json").read_text())["eos_token_id"]
    assert "add_generation_prompt" in config["chat_template"]
    assert tok.get_vocab_size() <= json.loads((tiny_model_dir / "config.json").read_text())["vocab_size"]
