"""What the endpoint exposes, to whom, and how far its pod is fenced in (issue 17).

The `restricted` Pod Security Standard is encoded in `restricted_violations` from the standard's text
(https://kubernetes.io/docs/concepts/security/pod-security-standards/): the baseline controls plus the
restricted ones, each a named check, so a failure says which control broke.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from pydantic import ValidationError

from llmctl.actions.deploy import render
from llmctl.config import LlmctlConfig, Names
from tests.deploy.test_render import CERT, IMAGE, ROLE, SCENARIOS, by_kind

PREFIX = "service.beta.kubernetes.io/aws-load-balancer-"
EXPOSURES = {
    "cluster": {},
    "internal": {"exposure": "internal"},
    "internal-ranges": {"exposure": "internal", "load_balancer_source_ranges": ["10.20.0.0/16"]},
    "public-tls": {"exposure": "public", "tls": {"certificate_arn": CERT},
                   "load_balancer_source_ranges": ["203.0.113.0/24"]},
    "public-plaintext": {"exposure": "public", "allow_plaintext": True, "load_balancer_source_ranges": ["0.0.0.0/0"]},
}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def docs_for(deploy: dict, **extra) -> dict[str, dict]:
    cfg = LlmctlConfig.model_validate({"model": {"bucket": "llama-models"}, "deploy": deploy, **extra})
    return by_kind(render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k"))


def restricted_violations(pod: dict) -> list[str]:
    """The `restricted` Pod Security Standard's controls a pod spec breaks (empty: it passes)."""
    bad: list[str] = []
    psc = pod.get("securityContext") or {}
    containers = [*(pod.get("initContainers") or []), *pod["containers"], *(pod.get("ephemeralContainers") or [])]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            bad.append(f"host namespaces: {field}")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        bad.append("HostProcess")
    for volume in pod.get("volumes") or []:
        kind = next(k for k in volume if k != "name")
        if kind == "hostPath":
            bad.append(f"hostPath volume {volume['name']}")
        elif kind not in RESTRICTED_VOLUMES:
            bad.append(f"volume type {kind} ({volume['name']})")
    if psc.get("runAsUser") == 0:
        bad.append("runAsUser 0 (pod)")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for sysctl in psc.get("sysctls") or []:
        bad.append(f"sysctl {sysctl['name']}")
    for c in containers:
        sc, name = c.get("securityContext") or {}, c["name"]
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            bad.append(f"{name}: HostProcess")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            bad.append(f"{name}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            bad.append(f"{name}: procMount")
        if (sc.get("appArmorProfile") or {}).get("type", "RuntimeDefault") not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: AppArmor")
        if (sc.get("seLinuxOptions") or {}).get("type", "") not in ("", "container_t", "container_init_t",
                                                                     "container_kvm_t", "container_engine_t"):
            bad.append(f"{name}: SELinux type")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation is not false")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            bad.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile {seccomp}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities do not drop ALL")
        added = set(caps.get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities add {sorted(added - {'NET_BIND_SERVICE'})}"
                       f"{' (not even baseline)' if added - BASELINE_CAPABILITIES else ''}")
    return bad


# --- exposure ------------------------------------------------------------------------------------


def test_the_default_exposes_nothing_outside_the_cluster() -> None:
    docs = docs_for({})
    svc = docs["Service"]
    assert svc["spec"]["type"] == "ClusterIP" and "loadBalancerSourceRanges" not in svc["spec"]
    assert not (svc["metadata"].get("annotations") or {})


def test_internal_is_an_internal_nlb_from_the_vpc() -> None:
    svc = docs_for(EXPOSURES["internal"])["Service"]
    annotations = svc["metadata"]["annotations"]
    assert svc["spec"]["type"] == "LoadBalancer"
    assert annotations[PREFIX + "scheme"] == "internal"
    assert annotations[PREFIX + "type"] == "external" and annotations[PREFIX + "nlb-target-type"] == "ip"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["192.168.0.0/16"]  # the VPC, not 0.0.0.0/0
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert not any(key.startswith(PREFIX + "ssl") for key in annotations)


def test_public_tls_terminates_on_443_with_the_acm_certificate() -> None:
    svc = docs_for(EXPOSURES["public-tls"])["Service"]
    annotations = svc["metadata"]["annotations"]
    assert annotations[PREFIX + "scheme"] == "internet-facing"
    assert annotations[PREFIX + "ssl-cert"] == CERT and annotations[PREFIX + "ssl-ports"] == "443"
    assert annotations[PREFIX + "ssl-negotiation-policy"].startswith("ELBSecurityPolicy-TLS13")
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]


@pytest.mark.parametrize(("deploy", "message"), [
    ({"exposure": "public", "load_balancer_source_ranges": ["0.0.0.0/0"]},
     "deploy.exposure is public but deploy.tls.certificate_arn is not set"),
    ({"exposure": "public", "tls": {"certificate_arn": CERT}},
     "deploy.exposure is public but deploy.load_balancer_source_ranges is empty"),
    ({"exposure": "public", "allow_plaintext": True}, "load_balancer_source_ranges is empty"),
    ({"load_balancer_source_ranges": ["203.0.113.0/24"]},
     "deploy.load_balancer_source_ranges needs a load balancer but deploy.exposure is cluster"),
    ({"tls": {"certificate_arn": CERT}}, "deploy.tls.certificate_arn needs a load balancer"),
])
def test_unsafe_or_unhonourable_exposures_are_refused_with_the_fix(deploy: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as raised:
        LlmctlConfig.model_validate({"deploy": deploy})
    text = str(raised.value)
    assert ": set " in text or ": list " in text  # the fix is in the same line


def test_an_explicit_choice_allows_a_public_plaintext_endpoint() -> None:
    cfg = LlmctlConfig.model_validate({"deploy": EXPOSURES["public-plaintext"]})
    assert cfg.deploy.exposure == "public"


# --- NetworkPolicy -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXPOSURES)
def test_network_policy_admits_only_the_exposure_source_and_allows_only_dns_and_https_out(name: str) -> None:
    docs = docs_for(EXPOSURES[name])
    policy = docs["NetworkPolicy"]
    kubernetes_validate.validate(policy, "1.33", strict=True)
    spec = policy["spec"]
    # every revision's pods (the Deployment's selector adds its revision's config hash)
    assert spec["podSelector"]["matchLabels"].items() < docs["Deployment"]["spec"]["selector"]["matchLabels"].items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    rule, metrics = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]  # the server port, nothing else
    peers = rule["from"]
    if name == "cluster":
        assert peers == [{"namespaceSelector": {}}]  # pods of the cluster; port-forwards bypass policies
    else:
        cidrs = [p["ipBlock"]["cidr"] for p in peers]  # the NLB's VPC addresses and the source ranges, only
        assert cidrs == list(dict.fromkeys(["192.168.0.0/16", *EXPOSURES[name].get("load_balancer_source_ranges", [])]))
    # the metrics port, from the monitoring namespace alone, whatever the exposure; the Service never carries it
    assert metrics == {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                       "ports": [{"protocol": "TCP", "port": 9100}]}
    [container] = [c for c in docs["Deployment"]["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]
    assert [p["targetPort"] for p in docs["Service"]["spec"]["ports"]] == ["http"]
    assert docs["ConfigMap"]["data"]["METRICS_PORT"] == "9100"
    dns, https = spec["egress"]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert https == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}],
                     "ports": [{"protocol": "TCP", "port": 443}]}


def test_behind_a_load_balancer_that_scales_to_zero_only_the_interceptor_is_admitted() -> None:
    zero = {"enabled": True, "max_replicas": 1, "idle_minutes": 15}
    warm = docs_for({**EXPOSURES["internal"], "autoscaling": {**zero, "idle_minutes": 0}})
    docs = docs_for({**EXPOSURES["internal"], "autoscaling": zero})
    kubernetes_validate.validate(docs["NetworkPolicy"], "1.33", strict=True)
    rule, _ = docs["NetworkPolicy"]["spec"]["ingress"]
    # the NLB sends to the KEDA HTTP add-on's interceptor (tests/deploy/test_nlb_front.py), which forwards to
    # the pods: no VPC address reaches them directly any more
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert warm["NetworkPolicy"]["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "192.168.0.0/16"}}]


# --- the pod -------------------------------------------------------------------------------------


def test_the_checker_catches_what_the_standard_forbids() -> None:
    pod = {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}]}
    found = restricted_violations(pod)
    for control in ("host namespaces: hostNetwork", "hostPath volume h", "c: privileged",
                    "c: allowPrivilegeEscalation", "c: runAsNonRoot", "c: seccompProfile", "c: capabilities do not drop ALL",
                    "c: capabilities add ['SYS_ADMIN'] (not even baseline)"):
        assert any(item.startswith(control) for item in found), control


@pytest.mark.parametrize("name", [n for n in SCENARIOS if not SCENARIOS[n].get("deploy", {}).get("node_cache")])
def test_the_pod_passes_the_restricted_pod_security_standard(name: str) -> None:
    cfg = LlmctlConfig.model_validate(SCENARIOS[name])
    docs = by_kind(render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k"))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    labels = docs["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]


def test_the_node_cache_is_the_one_documented_exception() -> None:
    cfg = LlmctlConfig.model_validate(SCENARIOS["scale-out"])
    docs = by_kind(render(cfg, Names.from_config(cfg), image=IMAGE, role_arn=ROLE, api_key="k"))
    found = restricted_violations(docs["Deployment"]["spec"]["template"]["spec"])
    assert found and all("hostPath" in item or "cache-permissions" in item for item in found)
    labels = docs["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_writable_paths_are_emptydirs_and_no_api_token_is_mounted() -> None:
    docs = docs_for({})
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert docs["ServiceAccount"]["automountServiceAccountToken"] is False
    # IRSA still works: the pod identity webhook adds its own projected `aws-iam-token` volume whatever
    # automount says, for a ServiceAccount with the role annotation
    assert docs["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE
    volumes = {v["name"]: v for v in pod["volumes"]}
    [main] = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    # the Dockerfile's HOME holds vLLM's, torch.compile's and Triton's caches; TMPDIR is /tmp
    assert mounts == {"/models": "models", "/dev/shm": "dshm", "/home/app": "home", "/tmp": "tmp"}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    assert all(volumes[name]["emptyDir"].get("sizeLimit") for name in mounts.values())


@pytest.mark.parametrize(("deploy", "prestop"), [({}, 5), (EXPOSURES["internal"], 15)])
def test_prestop_lets_the_load_balancer_deregister_before_the_drain(deploy: dict, prestop: int) -> None:
    docs = docs_for(deploy, server={"drain_timeout_s": 30})
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    [main] = pod["containers"]
    assert main["lifecycle"]["preStop"] == {"sleep": {"seconds": prestop}}
    # the grace period covers the preStop wait, then the server's whole SIGTERM drain
    assert pod["terminationGracePeriodSeconds"] >= prestop + 30
    kubernetes_validate.validate(docs["Deployment"], "1.31", strict=True)
    if deploy:
        annotations = docs["Service"]["metadata"]["annotations"]
        assert annotations[PREFIX + "target-group-attributes"] == \
            f"deregistration_delay.timeout_seconds={pod['terminationGracePeriodSeconds']}"
