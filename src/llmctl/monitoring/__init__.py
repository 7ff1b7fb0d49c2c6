"""Monitoring for a deployment: alert rules, Grafana dashboards and the Prometheus stack manifests.

Everything here is pure (config in, documents out); the Kubernetes side effects live in
`llmctl.actions.monitoring`.
"""
