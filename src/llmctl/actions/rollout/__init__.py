"""Follow an endpoint from applied manifests to Ready, and say why when it does not get there.

`events` (phases, events, the timeline: what `ui/rollout.py` and `local up` share), `pods`
(reading one pod's status), `diagnosis` (typed failures and their words), `watcher` (one
revision's pods through the Kubernetes API) and `endpoint` (the load balancer's address and a
smoke request).
"""
