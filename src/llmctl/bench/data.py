"""Prompts for a run: random with exact token lengths, a ShareGPT JSON file, or one fixed prompt.

Random prompts are made like vLLM's random dataset: token ids drawn from the vocabulary,
decoded, re-encoded and trimmed or topped up until the prompt is exactly the wanted number of
tokens. That needs the model's tokenizer on this machine (`--tokenizer DIR`, a Hugging Face
folder or a `tokenizer.json`); without one, lengths are approximated at one word per token and
the dataset says so (`exact_lengths=False`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmctl.bench.client import RequestInput
from llmctl.errors import ConfigError

_WORDS = (
    "time person year way day thing man world life hand part child eye woman place work week case "
    "point government company number group problem fact water room mother area money story month "
    "lot right study book job word business issue side kind head house service friend father power"
).split()


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def special_ids(self) -> set[int]: ...


@dataclass
class LocalTokenizer:
    """`tokenizers.Tokenizer` behind the small interface this module needs."""

    inner: object
    source: str

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(list(ids), skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self.inner.get_vocab_size(with_added_tokens=True)

    @property
    def special_ids(self) -> set[int]:
        return {i for i, tok in self.inner.get_added_tokens_decoder().items() if tok.special}

    def count(self, text: str) -> int:
        return len(self.encode(text))


def load_tokenizer(path: str | Path | None) -> LocalTokenizer | None:
    """The tokenizer in a local model folder (or a tokenizer.json file); None when absent."""
    if path is None:
        return None
    path = Path(path)
    file = path if path.is_file() else path / "tokenizer.json"
    if not file.is_file():
        return None
    from tokenizers import Tokenizer as HfTokenizer

    try:
        return LocalTokenizer(HfTokenizer.from_file(str(file)), str(path))
    except Exception as exc:  # a corrupt tokenizer file is a usage problem, said plainly
        raise ConfigError(f"cannot read tokenizer {file}: {exc}", hint="point --tokenizer at a Hugging Face model folder") from None


@dataclass
class Dataset:
    requests: list[RequestInput]
    kind: str  # random | sharegpt | fixed
    exact_lengths: bool  # prompt lengths counted by the model's tokenizer
    note: str = ""


def _lengths(rng, mean: int, range_ratio: float, n: int) -> list[int]:
    if not 0 <= range_ratio < 1:
        raise ConfigError(f"--range-ratio {range_ratio} must be in [0, 1)")
    low, high = max(1, int(mean * (1 - range_ratio))), max(1, int(mean * (1 + range_ratio)))
    return [int(x) for x in rng.integers(low, high + 1, size=n)]


def random_dataset(
    n: int, input_len: int, output_len: int, *, range_ratio: float = 0.0, tokenizer: LocalTokenizer | None = None, seed: int = 0
) -> Dataset:
    import numpy as np

    rng = np.random.default_rng(seed)
    in_lens = _lengths(rng, input_len, range_ratio, n)
    out_lens = _lengths(rng, output_len, range_ratio, n)
    requests = []
    if tokenizer is None:
        for in_len, out_len in zip(in_lens, out_lens):
            words = [_WORDS[i] for i in rng.integers(0, len(_WORDS), size=in_len)]
            requests.append(RequestInput(" ".join(words), in_len, out_len))
        return Dataset(requests, "random", False, "no local tokenizer: prompt lengths approximated at one word per token")
    special = tokenizer.special_ids
    vocab = np.array([i for i in range(tokenizer.vocab_size) if i not in special])
    for in_len, out_len in zip(in_lens, out_lens):
        requests.append(RequestInput(_exact_prompt(tokenizer, vocab, rng, in_len), in_len, out_len))
    return Dataset(requests, "random", True, f"prompt lengths exact with the tokenizer of {tokenizer.source}")


def _exact_prompt(tokenizer: LocalTokenizer, vocab, rng, length: int) -> str:
    """Random ids -> text whose re-encoding is exactly `length` tokens (vLLM's approach)."""
    ids = [int(x) for x in rng.choice(vocab, size=length)]
    text = tokenizer.decode(ids)
    for _ in range(10):
        ids = tokenizer.encode(text)
        if len(ids) == length:
            return text
        if len(ids) > length:
            ids = ids[:length]
        else:
            ids = ids + [int(x) for x in rng.choice(vocab, size=length - len(ids))]
        text = tokenizer.decode(ids)
    return text  # within a token or two; the server's usage report gives the true count


def fixed_dataset(n: int, prompt: str, output_len: int, tokenizer: LocalTokenizer | None = None) -> Dataset:
    length = tokenizer.count(prompt) if tokenizer else len(prompt.split())
    note = "" if tokenizer else "no local tokenizer: prompt length approximated at one word per token"
    return Dataset([RequestInput(prompt, length, output_len) for _ in range(n)], "fixed", tokenizer is not None, note)


def sharegpt_dataset(
    path: Path, n: int, *, output_len: int | None = None, tokenizer: LocalTokenizer | None = None, seed: int = 0
) -> Dataset:
    """The first human turn as the prompt, the reply's length as the output length (vLLM's rule)."""
    import numpy as np

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"dataset {path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"dataset {path} is not JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(f"dataset {path} is not a ShareGPT list of conversations")
    pairs = []
    for item in data:
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        prompt, reply = str(turns[0].get("value", "")), str(turns[1].get("value", ""))
        if prompt and reply:
            pairs.append((prompt, reply))
    if not pairs:
        raise ConfigError(f"dataset {path} has no conversation with two turns", hint="ShareGPT format: [{\"conversations\": [{\"from\": \"human\", \"value\": ...}, {\"from\": \"gpt\", ...}]}]")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    count = tokenizer.count if tokenizer else (lambda text: len(text.split()))
    requests = []
    for i in range(n):
        prompt, reply = pairs[int(order[i % len(pairs)])]
        out_len = output_len or max(1, count(reply))
        requests.append(RequestInput(prompt, count(prompt), out_len))
    note = "" if tokenizer else "no local tokenizer: lengths approximated at one word per token"
    return Dataset(requests, "sharegpt", tokenizer is not None, note)
