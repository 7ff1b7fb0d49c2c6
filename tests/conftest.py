"""Shared fixtures live in tests/fixtures/<topic>.py; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.cli",
    "tests.fixtures.aws",
    "tests.fixtures.kube",
    "tests.fixtures.eksctl",
    "tests.fixtures.model",
    "tests.fixtures.server",
    "tests.fixtures.upstream",
]
