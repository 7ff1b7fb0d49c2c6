"""`Kube.apply_and_prune`: the one apply-then-prune deploy and monitoring share, against the Kubernetes double."""

from __future__ import annotations

import pytest

from llmctl.k8s.client import Kube
from tests.k8s.test_client import NS, config_map, namespace

OURS = {"app.kubernetes.io/managed-by": "llmctl", "app.kubernetes.io/instance": "demo"}
SELECTOR = "app.kubernetes.io/managed-by=llmctl,app.kubernetes.io/instance=demo"
KINDS = (("monitoring.coreos.com/v1", "ServiceMonitor"), ("v1", "ConfigMap"), ("v1", "Secret"))


@pytest.fixture
def k(kube):
    return Kube.from_kubeconfig(str(kube.kubeconfig_path))


def outcomes(results) -> list[tuple[str, str, str]]:
    return [(r.kind, r.name, r.action) for r in results]


def test_prunes_what_is_no_longer_rendered_and_nothing_else(k, kube):
    k.apply_all([namespace(), config_map("other", {}, {**OURS, "app.kubernetes.io/instance": "other"})])
    first = [namespace(), config_map("a", {"x": "1"}, OURS), config_map("b", {}, OURS), config_map("kept", {}, OURS)]
    assert outcomes(k.apply_and_prune(first, SELECTOR, KINDS, [NS])) == [
        ("Namespace", NS, "unchanged"), ("ConfigMap", "a", "created"), ("ConfigMap", "b", "created"),
        ("ConfigMap", "kept", "created")]

    seen = []
    second = [namespace(), config_map("a", {"x": "2"}, OURS)]
    results = k.apply_and_prune(second, SELECTOR, KINDS, [NS], keep={("ConfigMap", NS, "kept")}, report=seen.append)
    # the ServiceMonitor kind is not served: nothing to prune there, and no error
    assert outcomes(results) == [("Namespace", NS, "unchanged"), ("ConfigMap", "a", "updated"),
                                 ("ConfigMap", "b", "deleted")]
    assert seen == results
    assert kube.get("v1", "ConfigMap", "b", NS) is None
    assert kube.get("v1", "ConfigMap", "kept", NS) and kube.get("v1", "ConfigMap", "other", NS)


def test_dry_run_reports_the_prune_and_deletes_nothing(k, kube):
    k.apply_all([namespace(), config_map("a", {}, OURS), config_map("b", {}, OURS)])
    results = k.apply_and_prune([namespace(), config_map("a", {"x": "1"}, OURS)], SELECTOR, KINDS, [NS], dry_run=True)
    assert outcomes(results) == [("Namespace", NS, "unchanged"), ("ConfigMap", "a", "updated"),
                                 ("ConfigMap", "b", "deleted")]
    assert kube.get("v1", "ConfigMap", "a", NS)["data"] == {} and kube.get("v1", "ConfigMap", "b", NS)


def test_prune_alone_deletes_everything_the_selector_finds(k, kube):
    k.apply_all([namespace(), config_map("a", {}, OURS), config_map("plain", {})])
    assert outcomes(k.prune(SELECTOR, KINDS, [NS])) == [("ConfigMap", "a", "deleted")]
    assert kube.get("v1", "ConfigMap", "plain", NS)
