"""The five lifecycle commands, each in a world ready for it, with AWS behind the fault-injecting proxy."""

from __future__ import annotations

import pytest

from tests.cli.build.conftest import codebuild_sim  # noqa: F401 - CodeBuild that advances and pushes an image
from tests.cli.cluster.conftest import cluster_env  # noqa: F401
from tests.cli.deploy.conftest import IMAGE, config_text, stub_endpoint  # noqa: F401
from tests.cli.teardown.conftest import World
from tests.convergence.harness import Runner
from tests.doubles.faulty_proxy import FaultyProxy
from tests.fixtures.kube import ENDPOINT_PODS

BUILD_CONFIG = "project:\n  name: demo\nbuild:\n  context: ctx\n"
ZERO_PORT = 18431  # `deploy zero`'s server.port, where its interceptor double listens (an unlikely port to be taken)


@pytest.fixture(scope="session")
def faulty_proxy(moto_server):
    proxy = FaultyProxy(moto_server.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxied(llmctl, aws, faulty_proxy):
    """The CLI's AWS endpoint is the proxy; the test's own boto3 still talks to moto directly."""
    faulty_proxy.reset()
    llmctl.env["AWS_ENDPOINT_URL"] = faulty_proxy.url
    return faulty_proxy


def _build(request):
    llmctl = request.getfixturevalue("llmctl")
    request.getfixturevalue("codebuild_sim")
    llmctl.write_config(BUILD_CONFIG)
    ctx = llmctl.cwd / "ctx"
    (ctx / "server").mkdir(parents=True)
    (ctx / "Dockerfile").write_text('FROM python:3.11-slim\nCOPY server/ /app/server/\nCMD ["python", "-m", "server"]\n')
    (ctx / "server" / "__main__.py").write_text("print('serving')\n")
    return ("build", "--poll-interval", "0.05")


def _cluster_up(request):
    request.getfixturevalue("cluster_env")
    return ("cluster", "up", "--yes", "--gpu-timeout", "60")


def _deploy(request):
    llmctl, kube = request.getfixturevalue("llmctl"), request.getfixturevalue("kube")
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    port = request.getfixturevalue("stub_endpoint").port
    kube.on_load_balancer(create=lambda service: {"ip": "127.0.0.1"})
    # the default `cluster` exposure's port-forward; a fixed server.port keeps the revision's config hash, and so
    # its Deployment's name in expected/deploy.json, the same from run to run
    kube.expose(ENDPOINT_PODS, 8000, ("127.0.0.1", port))
    llmctl.write_config(config_text(8000))
    return ("deploy", "--image", IMAGE, "--timeout", "60")


def _deploy_update(request):
    """A second deploy (blue-green): revision 1 serves, revision 2 (another image) comes up beside it on the
    second GPU node, is gated, takes the Service, and revision 1's Deployment goes."""
    llmctl, kube = request.getfixturevalue("llmctl"), request.getfixturevalue("kube")
    argv = _deploy(request)
    kube.add_node("gpu-node-2")
    first = llmctl(*argv, timeout=180)
    assert first.returncode == 0, first.stderr
    return ("deploy", "--image", IMAGE.replace("ab" * 32, "cd" * 32), "--timeout", "60")


def _deploy_surge(request):
    """A second deploy with no spare GPU over a managed node group (moto EKS over a moto Auto Scaling group,
    each instance a node of the double): the group grows for the surge pod, then gives back the node
    revision 1 left (cordoned, drained, its instance terminated, the group's desired size back to 1)."""
    from tests.cli.deploy.test_revisions import Cloud

    llmctl, kube = request.getfixturevalue("llmctl"), request.getfixturevalue("kube")
    argv = _deploy(request)
    cloud = Cloud(request.getfixturevalue("aws"), kube)
    first = llmctl(*argv, timeout=180)
    assert first.returncode == 0, first.stderr
    cloud.__enter__()
    request.addfinalizer(cloud.__exit__)
    return ("deploy", "--image", IMAGE.replace("ab" * 32, "cd" * 32), "--timeout", "60")


def _deploy_zero(request):
    """A first deploy of an `internal` endpoint that scales to zero: its NLB's Service in `keda` in front of the
    KEDA HTTP add-on's interceptor (the double, on a fixed port: server.port is part of the config hash, and so
    of the revision's name in expected/deploy-zero.json), whose DNS name `deploy` adds to the hosts before the
    smoke request goes through it."""
    from tests.cli.deploy.test_bench_zero import ZERO
    from tests.doubles.interceptor import InterceptorDouble

    llmctl, kube = request.getfixturevalue("llmctl"), request.getfixturevalue("kube")
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    stub = request.getfixturevalue("stub_endpoint").port
    kube.install_keda(http_add_on=True)
    kube.install_aws_load_balancer_controller()
    kube.on_load_balancer(create=lambda service: "localhost")
    kube.expose(ENDPOINT_PODS, ZERO_PORT, ("127.0.0.1", stub))  # the gate's port-forward to the pod

    def hosts() -> list[str]:
        routing = kube.get("http.keda.sh/v1alpha1", "HTTPScaledObject", "vllm-llama", "vllm")
        return routing["spec"]["hosts"] if routing else []

    interceptor = InterceptorDouble(("127.0.0.1", stub), condition_wait_s=30, hosts=hosts, ready=lambda: True,
                                    port=ZERO_PORT).start()
    request.addfinalizer(interceptor.stop)
    llmctl.write_config(config_text(ZERO_PORT, extra=ZERO + "  exposure: internal\n"))
    return ("deploy", "--image", IMAGE, "--timeout", "60")


def _monitoring_up(request):
    llmctl, kube = request.getfixturevalue("llmctl"), request.getfixturevalue("kube")
    llmctl.write_config("project:\n  name: demo\n")
    llmctl.env["KUBECONFIG"] = str(kube.kubeconfig_path)
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vllm"}})
    return ("monitoring", "up")


def _teardown(request):
    world = request.getfixturevalue("world")
    world.seed()
    return ("teardown", "--all", "--yes")


SETUPS = {"build": _build, "cluster up": _cluster_up, "deploy": _deploy, "deploy update": _deploy_update,
          "deploy surge": _deploy_surge, "deploy zero": _deploy_zero,
          "monitoring up": _monitoring_up,
          "teardown": _teardown}


@pytest.fixture
def lifecycle(request, llmctl, aws, kube, proxied):
    """`lifecycle(command)` -> (runner, argv): the world for `command`, set up as the commands before it leave it."""
    def prepare(command: str):
        argv = SETUPS[command](request)
        return Runner(llmctl, proxied, kube), argv

    return prepare


@pytest.fixture
def world(aws, kube, llmctl, fake_eksctl) -> World:
    from tests.cli.teardown.conftest import CONFIG

    llmctl.write_config(CONFIG)
    llmctl.env.update(KUBECONFIG=str(kube.kubeconfig_path))
    return World(aws, kube, fake_eksctl.bin_dir)
