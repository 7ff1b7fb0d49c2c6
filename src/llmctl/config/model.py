"""The typed llmctl configuration: one pydantic model, defaults beside the fields.

Defaults reproduce the reference architecture (us-east-1, one g4dn.xlarge T4 node, namespace
`vllm`, service account `vllm-sa`, MAX_MODEL_LEN 512, float16). Defaults that depend on other
fields live in one `model_validator(mode="after")` per model; names derived from the deployment
name live in `names.py`. Default factories are lambdas, not a model class or `list`: pydantic
reads each factory's signature, and for a class or a builtin that costs every command reading
the config about 15 ms (`benchmarks/cli_startup.py`); the JSON schema is the same either way.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmctl.config import gpus
from llmctl.config.autoscaling import AutoscalingConfig
from llmctl.config.capacity import KarpenterConfig, check_capacity
from llmctl.config.exposure import HostNames, TlsConfig, check_exposure
from llmctl.config.gate import GateConfig
from llmctl.config.image_ref import EXAMPLE as IMAGE_EXAMPLE
from llmctl.config.image_ref import image_problem
from llmctl.config.problems import Invalid
from llmctl.config.regions import AWS_REGIONS
from llmctl.config.section import DNS_LABEL, DURATION, QUANTITY, Section
from llmctl.config.server import ServerConfig


class ProjectConfig(Section):
    name: str = Field(
        "llama",
        pattern=DNS_LABEL,
        max_length=24,
        description="Deployment name; every resource name and tag is derived from it.",
    )


class AwsConfig(Section):
    region: str = Field("us-east-1", description="AWS region for every resource.")
    profile: str | None = Field(None, description="AWS shared-config profile (else the default chain).")
    retry_mode: Literal["standard", "adaptive"] = Field(
        "standard", description="botocore retry mode; adaptive also rate-limits the client."
    )

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in AWS_REGIONS:
            close = _did_you_mean(value, AWS_REGIONS)
            raise Invalid("is not an AWS region", fix=close or "use a region code such as us-east-1 or eu-west-1")
        return value


class ModelConfig(Section):
    bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="S3 bucket holding the model (never deleted by teardown unless named).",
    )
    prefix: str = Field("llama-2-7b-merged-vllm", description="Key prefix of the model folder in the bucket.")
    served_name: str = Field("llama-2-7b", description="Model name the OpenAI API reports.")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "float16", description="Weights dtype; the T4 has no bfloat16."
    )
    max_model_len: int = Field(512, ge=16, le=1_048_576, description="Context window (prompt + output tokens).")
    quantization: str | None = Field(None, description="vLLM quantization method (awq, gptq, bitsandbytes...).")
    load_format: Literal["auto", "safetensors", "runai_streamer"] = Field(
        "auto", description="runai_streamer streams weights straight from S3 (no init download)."
    )
    adapters: dict[str, str | None] = Field(
        default_factory=lambda: {}, description="LoRA adapters every replica serves: name -> key prefix in model.bucket "
        "under <prefix>-adapters/ (empty: <prefix>-adapters/<name>, where `llmctl adapter push` puts it).")

    @field_validator("prefix")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("adapters")
    @classmethod
    def _adapter_names(cls, value: dict[str, str | None], info: ValidationInfo) -> dict[str, str | None]:
        if value and info.data.get("load_format") == "runai_streamer":
            raise Invalid("adapters need the init container's download, which load_format runai_streamer skips",
                          fix="set model.load_format: auto, or serve the adapters merged")
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
                raise Invalid(f"adapter name {name!r} has other characters than letters, digits, '.', '_' and '-'",
                              fix="rename the adapter (requests name it as their model)")
        value = {name: (where or "").strip("/") or None for name, where in value.items()}
        root = f"{info.data.get('prefix', '')}-adapters/"
        outside = [f"{name}: {where}" for name, where in value.items() if where and not where.startswith(root)]
        if outside:  # the pod's role reads the model's prefix and the adapters root beside it, nothing else
            raise Invalid(f"adapter location {outside[0]} is outside {root}, the only adapters prefix the pod's role "
                          "can read", fix=f"put it under {root} (or leave it empty: {root}<name>)")
        return value


class BuildConfig(Section):
    context: str | None = Field(None, description="Build context folder (default: the packaged server and Dockerfile).")
    vllm_version: str = Field("0.32.0", pattern=r"^\d+\.\d+\.\d+$", description="CUDA vLLM version baked into the image.")
    compute_type: Literal[
        "BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE", "BUILD_GENERAL1_XLARGE", "BUILD_GENERAL1_2XLARGE"
    ] = Field("BUILD_GENERAL1_LARGE", description="CodeBuild compute type.")
    image: str = Field("aws/codebuild/standard:7.0", description="CodeBuild build image.")

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        return _checked_image(value, "aws/codebuild/standard:7.0")
    dockerhub_secret: str | None = Field(
        None, description="Secrets Manager secret with Docker Hub `username`/`password` (avoids pull rate limits)."
    )
    keep_images: int = Field(10, ge=1, le=1000, description="ECR lifecycle policy: images kept.")
    timeout_minutes: int = Field(60, ge=5, le=480, description="CodeBuild build timeout.")


class ClusterConfig(Section):
    name: str | None = Field(None, pattern=DNS_LABEL, description="EKS cluster name (default: the deployment name).")
    kubernetes_version: str = Field("1.33", pattern=r"^1\.\d{2}$", description="EKS Kubernetes minor version.")
    instance_types: list[str] = Field(
        default_factory=lambda: ["g4dn.xlarge"], min_length=1, description="GPU instance types of the node group."
    )
    nodes_desired: int = Field(1, ge=0, le=100)
    nodes_min: int = Field(1, ge=0, le=100)
    nodes_max: int = Field(1, ge=1, le=100)
    volume_size_gb: int = Field(100, ge=20, le=16384, description="Node root volume (image + model cache).")
    ami_family: Literal["AmazonLinux2023", "AmazonLinux2", "Bottlerocket", "Ubuntu2204"] = Field(
        "AmazonLinux2023", description="Node AMI family; eksctl picks its NVIDIA variant for GPU types."
    )
    spot: bool = Field(False, description="Spot capacity for the GPU node group.")
    gpu_taint: bool = Field(False, description="Taint GPU nodes nvidia.com/gpu=true:NoSchedule.")
    availability_zones: list[str] = Field(default_factory=lambda: [], description="Zones to use (default: eksctl picks).")
    vpc_cidr: str = Field("192.168.0.0/16", pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$", description="The VPC eksctl creates (its default); NetworkPolicies admit "
                          "the NLB's traffic from it.")
    device_plugin_version: str = Field("v0.17.2", pattern=r"^v\d+\.\d+\.\d+$", description="NVIDIA device plugin version.")
    node_labels: dict[str, str] = Field(default_factory=lambda: {}, description="Extra labels on the GPU nodes.")
    nodegroup_name: str = Field("gpu-nodes", pattern=DNS_LABEL, description="Name of the managed GPU node group.")
    gpu_wait_timeout_s: int = Field(
        900, ge=10, le=7200, description="How long `cluster up` waits for a node to report allocatable nvidia.com/gpu."
    )
    capacity: Literal["nodegroup", "karpenter"] = Field(
        "nodegroup", description="GPU capacity: the managed node group, or Karpenter (spot first, on-demand when spot "
        "is short; the node group then runs the system pods only). See docs/scaling.md.")
    on_demand_base: int = Field(0, ge=0, le=100, description="Karpenter: GPU nodes kept on on-demand, so a spot "
                                "interruption never takes the last replicas.")
    karpenter: KarpenterConfig = Field(default_factory=lambda: KarpenterConfig())

    @field_validator("instance_types")
    @classmethod
    def _instance_type_shape(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9]+", item):
                raise Invalid(f"{item!r} is not an EC2 instance type", fix=f"use a GPU type such as {gpus.suggestions()}")
            no_gpu = gpus.not_a_gpu_type(item)
            if no_gpu:
                raise Invalid(no_gpu, fix=f"use a GPU type such as {gpus.suggestions()}")
        return value

    @model_validator(mode="after")
    def _node_counts(self) -> "ClusterConfig":
        check_capacity(self)
        if not self.nodes_min <= self.nodes_desired <= self.nodes_max:
            raise Invalid(
                f"node counts must satisfy nodes_min <= nodes_desired <= nodes_max "
                f"(got {self.nodes_min} <= {self.nodes_desired} <= {self.nodes_max})",
                fix="set cluster.nodes_min, nodes_desired and nodes_max in that order",
            )
        return self


class Resources(Section):
    cpu: str = Field(pattern=QUANTITY)
    memory: str = Field(pattern=QUANTITY)


class DeployConfig(Section):
    namespace: str = Field("vllm", pattern=DNS_LABEL)
    service_account: str = Field("vllm-sa", pattern=DNS_LABEL)
    app_name: str | None = Field(None, pattern=DNS_LABEL, description="Deployment/Service name (default vllm-<name>).")
    image: str | None = Field(None, description="Image to run (default: the digest of the last `llmctl build`).")

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str | None) -> str | None:
        return None if value is None else _checked_image(value, IMAGE_EXAMPLE)
    replicas: int = Field(1, ge=0, le=100)
    gpus: int = Field(1, ge=0, le=8, description="nvidia.com/gpu per pod.")
    requests: Resources = Field(default_factory=lambda: Resources(cpu="2", memory="12Gi"))
    limits: Resources = Field(default_factory=lambda: Resources(cpu="3", memory="14Gi"))
    model_volume_size: str = Field("30Gi", pattern=QUANTITY, description="sizeLimit of the /models emptyDir.")
    node_cache: bool = Field(False, description="Keep the model in a hostPath cache that survives pod restarts.")
    shm_size: str = Field("2Gi", pattern=QUANTITY, description="sizeLimit of the in-memory /dev/shm (counts against memory).")
    exposure: Literal["cluster", "internal", "public"] = Field(
        "cluster", description="Who can reach the endpoint: cluster (a ClusterIP; `llmctl endpoint` port-forwards it), "
        "internal (an internal NLB: the VPC and networks routed to it), public (an internet-facing NLB: needs "
        "deploy.tls and load_balancer_source_ranges). An NLB that scales to zero goes to the KEDA HTTP add-on's "
        "interceptor, which holds requests while the endpoint wakes.")
    tls: TlsConfig = Field(default_factory=lambda: TlsConfig())
    allow_plaintext: bool = Field(False, description="Accept a public endpoint without TLS (bearer key and prompts in cleartext).")
    load_balancer_source_ranges: list[str] = Field(
        default_factory=lambda: [], description="CIDRs allowed through the NLB (internal: empty means the VPC; public: required, "
        "0.0.0.0/0 for anywhere)."
    )
    hostnames: HostNames = Field(
        default_factory=lambda: [], description="With scale to zero: the DNS names clients send as Host (a custom "
        "name) beside the ones llmctl adds (the Services' names, deploy.tls.host_name); the interceptor routes "
        "on Host. Exact names only: a wildcard would be a catch-all that takes other endpoints' requests.")
    startup_timeout_s: int = Field(1200, ge=60, description="How long model download + engine load may take.")
    autoscaling: AutoscalingConfig = Field(default_factory=lambda: AutoscalingConfig())
    strategy: Literal["auto", "surge", "blue-green", "recreate"] = Field(
        "auto", description="How a new revision replaces the serving one: auto (the planner picks: surge when a GPU "
        "can be had, else one pod at a time, else recreate with consent), surge or its other name blue-green (the "
        "new revision's Deployment beside the serving one, the Service moved after the gate; refused when it "
        "cannot schedule), recreate (downtime).")
    allow_downtime: bool = Field(False, description="Accept a recreate (every pod stops before the new one starts) "
                                 "without asking.")
    keep_previous_minutes: int = Field(0, ge=0, description="After a rollout, keep the previous revision scaled up "
                                       "this long (its GPUs cost meanwhile; `llmctl status` shows them) so `llmctl "
                                       "rollback` within the window only moves the Service back; the next llmctl "
                                       "deploy, status or rollback scales it to zero once expired. 0: at once.")
    gate: GateConfig = Field(default_factory=lambda: GateConfig())

    @field_validator("load_balancer_source_ranges")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise Invalid(f"{item!r} is not a CIDR", fix="use an address block such as 203.0.113.0/24") from None
        return value

    @model_validator(mode="after")
    def _exposure_is_safe(self) -> "DeployConfig":
        return check_exposure(self)


class AlertmanagerConfig(Section):
    slack_webhook_secret: str | None = Field(None, description="Kubernetes Secret (key `url`) with the Slack webhook.")
    email_to: str | None = Field(None, description="Address for email alerts.")
    smtp_smarthost: str | None = Field(None, description="SMTP relay host:port for email alerts.")
    smtp_from: str | None = Field(None, description="Sender address of alert emails.")
    smtp_auth_username: str | None = Field(None, description="SMTP user name, when the relay needs one.")
    smtp_auth_password_secret: str | None = Field(None, description="Secret (key `password`) with the SMTP password.")
    pagerduty_routing_key_secret: str | None = Field(None, description="Secret (key `routing_key`) for PagerDuty.")

    @model_validator(mode="after")
    def _email_needs_a_relay(self) -> "AlertmanagerConfig":
        if self.email_to and not self.smtp_smarthost:
            raise Invalid("email_to needs an SMTP relay",
                          fix="set monitoring.alertmanager.smtp_smarthost (host:port) and smtp_from")
        if self.smtp_auth_username and not self.smtp_auth_password_secret:
            raise Invalid("smtp_auth_username needs smtp_auth_password_secret",
                          fix="set it to a Secret in the monitoring namespace with key `password`")
        return self


class MonitoringConfig(Section):
    namespace: str = Field("monitoring", pattern=DNS_LABEL)
    scrape_interval: str = Field("30s", pattern=DURATION)
    retention: str = Field("15d", pattern=DURATION)
    slo_p95_latency_s: float = Field(10.0, gt=0, description="Alert when p95 request latency exceeds this.")
    slo_p95_ttft_s: float = Field(1.0, gt=0, description="Alert when p95 time to first token exceeds this.")
    queue_alert_threshold: int = Field(10, ge=1, description="Alert when requests waiting stay above this for 5m.")
    expose: Literal["cluster-ip", "load-balancer"] = "cluster-ip"
    load_balancer_source_ranges: list[str] = Field(default_factory=lambda: [])
    load_balancer_scheme: Literal["internal", "internet-facing"] = Field(
        "internal", description="With expose load-balancer: an internal NLB (the VPC), or internet-facing.")
    persistent_volume_size: str | None = Field(None, pattern=QUANTITY)
    alertmanager: AlertmanagerConfig = Field(default_factory=lambda: AlertmanagerConfig())
    dcgm: bool = Field(False, description="Deploy the DCGM exporter for GPU metrics.")

    @model_validator(mode="after")
    def _public_needs_source_ranges(self) -> "MonitoringConfig":
        if self.expose == "load-balancer" and not self.load_balancer_source_ranges:
            raise Invalid("expose is load-balancer but load_balancer_source_ranges is empty",
                          fix="list the CIDRs allowed to reach Grafana and Prometheus, or use `llmctl dashboard`")
        return self


class BenchConfig(Section):
    endpoint: Literal["/generate", "/v1/completions", "/v1/chat/completions"] = "/v1/completions"
    num_prompts: int = Field(50, ge=1)
    concurrency: int = Field(4, ge=1)
    request_rate: float | None = Field(None, gt=0, description="Poisson arrival rate (req/s); unset: as fast as concurrency allows.")
    input_len: int = Field(128, ge=1)
    output_len: int = Field(100, ge=1)
    percentiles: list[float] = Field(default_factory=lambda: [50, 90, 95, 99])
    slo_ttft_ms: float | None = Field(None, gt=0)
    slo_tpot_ms: float | None = Field(None, gt=0)


class LlmctlConfig(Section):
    project: ProjectConfig = Field(default_factory=lambda: ProjectConfig())
    aws: AwsConfig = Field(default_factory=lambda: AwsConfig())
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    build: BuildConfig = Field(default_factory=lambda: BuildConfig())
    cluster: ClusterConfig = Field(default_factory=lambda: ClusterConfig())
    server: ServerConfig = Field(default_factory=lambda: ServerConfig())
    deploy: DeployConfig = Field(default_factory=lambda: DeployConfig())
    monitoring: MonitoringConfig = Field(default_factory=lambda: MonitoringConfig())
    bench: BenchConfig = Field(default_factory=lambda: BenchConfig())

    @model_validator(mode="after")
    def _cross_field(self) -> "LlmctlConfig":
        if self.deploy.autoscaling.enabled and self.deploy.autoscaling.max_replicas > self.cluster.nodes_max:
            raise Invalid(
                f"deploy.autoscaling.max_replicas ({self.deploy.autoscaling.max_replicas}) exceeds "
                f"cluster.nodes_max ({self.cluster.nodes_max}); each replica needs its own GPU node",
                fix="raise cluster.nodes_max or lower deploy.autoscaling.max_replicas",
            )
        self._gpu_memory_holds_the_model()
        return self

    def _gpu_memory_holds_the_model(self) -> None:
        """The weights a model's name implies must fit each instance type's GPU memory (pre-flight checks exactly)."""
        m = self.model
        params = gpus.parameters_from_name(m.served_name, m.prefix)
        if params is None:
            return
        weights = gpus.weights_gib(params, m.dtype, m.quantization)
        utilization = self.server.gpu_memory_utilization
        for itype in self.cluster.instance_types:
            short = gpus.too_small(itype, weights, self.server.tensor_parallel_size, utilization)
            if short:
                raise Invalid(
                    f"{short} for model {m.served_name!r} ({params:g}B parameters, {m.dtype})",
                    fields=("cluster.instance_types", "model.served_name", "model.prefix", "model.dtype",
                            "model.quantization", "server.tensor_parallel_size", "server.gpu_memory_utilization"),
                    fix=f"use {gpus.bigger_types(weights, utilization)}, or set model.quantization (awq, gptq) "
                        "for a quantized model")


def _did_you_mean(value: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def _checked_image(value: str, example: str) -> str:
    problem = image_problem(value)
    if problem:
        raise Invalid(problem, fix=f"use a reference such as {example}")
    return value


def _build() -> None:
    """Build every section's validator once, at import, without pydantic's plugin scan.

    Building the first validator makes pydantic look for plugins (observability hooks) in the
    entry points of every installed distribution; llmctl's config uses none, and the scan cost
    every command that reads the config more than the models themselves (Typer builds its
    parameter validators the same way). Children first, so each parent reuses their schemas."""
    previous = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    try:
        for model in Section.__subclasses__():
            model.model_rebuild()
    finally:
        if previous is None:
            del os.environ["PYDANTIC_DISABLE_PLUGINS"]
        else:
            os.environ["PYDANTIC_DISABLE_PLUGINS"] = previous


_build()
