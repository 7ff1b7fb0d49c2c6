"""`llmctl cluster up | status | render`: an eksctl-built EKS GPU cluster, ready for `deploy`.

One module per verb, around one manager built from injected clients (eksctl's `pkg/actions`):

* `manager.py`: `ClusterManager` (the clients, the config file eksctl reads) and `ClusterState`
  (what AWS and the kubeconfig say about the cluster, read once and again only after a step
  changed it);
* `preflight.py`: what would make `eksctl create cluster` fail half an hour in (GPU quota,
  instance offerings, tools, identity, model fit), and the price;
* `up.py`: the steps of `cluster up` as a `plan.Plan`: 1. EKS cluster (`eksctl create cluster
  -f`), 2. IAM OIDC provider, 3. GPU node group, 4. kubeconfig context, 5. IRSA role, 6. NVIDIA
  device plugin, 7. wait for an allocatable GPU; each observes first, so a re-run resumes;
* `status.py`: `cluster status`;
* `render.py`: the eksctl ClusterConfig and the device plugin manifest (pure).

`cluster down` is teardown's steps 1-4 (`actions/teardown.py`).
"""

from llmctl.actions.cluster.manager import ClusterManager
from llmctl.actions.cluster.preflight import Check, Preflight
from llmctl.actions.cluster.render import device_plugin_objects, render_cluster_config

__all__ = ["Check", "ClusterManager", "Preflight", "device_plugin_objects", "render_cluster_config"]
