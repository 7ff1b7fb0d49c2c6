"""A Kubernetes API server double for tests: see `cluster.KubeDouble` and `kubelet.Scenario`."""

from .cluster import DEFAULT_NODE, KEDA_CRDS, PROMETHEUS_OPERATOR_CRDS, KubeDouble, write_kubeconfig
from .kubelet import GPU_UNSCHEDULABLE, Scenario, Step
from .server import RequestRecord

__all__ = ["DEFAULT_NODE", "GPU_UNSCHEDULABLE", "KEDA_CRDS", "PROMETHEUS_OPERATOR_CRDS", "KubeDouble",
           "RequestRecord", "Scenario", "Step", "write_kubeconfig"]
