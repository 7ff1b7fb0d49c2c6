"""The Kubernetes API double (implementation in `tests/doubles/kube/`)."""

from .kube import (
                   DEFAULT_NODE,
                   GPU_UNSCHEDULABLE,
                   KEDA_CRDS,
                   PROMETHEUS_OPERATOR_CRDS,
                   KubeDouble,
                   RequestRecord,
                   Scenario,
                   Step,
                   write_kubeconfig,
)

__all__ = ["DEFAULT_NODE", "GPU_UNSCHEDULABLE", "KEDA_CRDS", "PROMETHEUS_OPERATOR_CRDS", "KubeDouble",
           "RequestRecord", "Scenario", "Step", "write_kubeconfig"]
