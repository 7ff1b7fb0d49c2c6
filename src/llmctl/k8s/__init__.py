"""Thin Kubernetes adapter over the official client: dict objects in and out, errors as LlmctlError."""
