"""`llmctl bench` against a TLS endpoint whose address is not the name on its certificate (a TLS NLB: an AWS
host name in front, the user's domain on the ACM certificate), with a real TLS server on loopback and a
self-signed certificate naming only `llm.example.test` (trusted through SSL_CERT_FILE, as a private CA is)."""

from __future__ import annotations

import base64
import datetime
import json
import ssl

import pytest

from llmctl.actions.bench import BenchOptions, run_bench
from llmctl.actions.bench_target import resolve_target
from llmctl.errors import ConfigError, LlmctlError
from tests.bench.fakeserver import FakeServer, Script

NAME = "llm.example.test"
CERT_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """(cert.pem, key.pem) of a self-signed certificate for NAME only (no IP address in it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def tls_server(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with FakeServer(Script(tokens=3), ssl_context=context) as srv:
        yield srv


def bench(llmctl, *args: str):
    return llmctl("bench", "-n", "3", "--output-len", "3", "--warmup", "0", "-o", "json", *args, timeout=120)


def test_the_name_on_the_certificate_is_checked_sent_as_sni_and_host(llmctl, tls_server, certificate):
    llmctl.env["SSL_CERT_FILE"] = str(certificate[0])
    # the address is not the certificate's name: refused, and the line says what to do
    refused = bench(llmctl, "--url", tls_server.url)
    assert refused.returncode != 0 and "its TLS certificate does not verify" in refused.stderr, refused.stderr
    assert "--tls-server-name" in refused.stderr and "Traceback" not in refused.stderr
    # named: the connection goes to the address, the certificate is checked against the name
    done = bench(llmctl, "--url", tls_server.url, "--tls-server-name", NAME)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["completed"] == 3
    assert doc["llmctl"]["crosscheck"]["status"] == "ok"  # /metrics through the same TLS settings
    assert set(tls_server.hosts) == {f"{NAME}:{tls_server.port}"}


def test_the_tls_server_name_flag_needs_an_https_url():
    loaders = {"local": None, "config_loader": lambda: None, "names_loader": lambda: None, "kube_factory": lambda: None}
    with pytest.raises(ConfigError, match="needs an https --url"):
        resolve_target("http://127.0.0.1:1", None, tls_server_name=NAME, **loaders)
    with pytest.raises(ConfigError, match="--tls-server-name needs --url"):
        resolve_target(None, None, tls_server_name=NAME, **loaders)
    with pytest.raises(ConfigError, match="--metrics-url 'x' is not an http"):
        resolve_target("http://127.0.0.1:1", None, metrics_url="x", **loaders)


def _deployed_tls_endpoint(kube, port: int) -> None:
    """What `deploy` leaves for an internal TLS exposure: the NLB Service (its listener port made the test
    server's) with the controller's TLS annotations and an address, and the API key Secret."""
    kube.on_load_balancer(create=lambda service: {"ip": "127.0.0.1"})
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vllm"}})
    kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vllm-llama-api-key", "namespace": "vllm"},
                 "data": {"api-key": base64.b64encode(b"key").decode()}})
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "vllm-llama", "namespace": "vllm",
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
                        "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": CERT_ARN}},
        "spec": {"type": "LoadBalancer", "selector": {"app": "vllm"},
                 "ports": [{"name": "https", "port": port, "targetPort": "http"}]}})


@pytest.mark.parametrize("host_name", [NAME, None])
def test_a_deployed_tls_endpoint_is_benched_as_deploy_tls_host_name(kube, tls_server, certificate, monkeypatch,
                                                                      host_name):
    from llmctl.config import LlmctlConfig, Names
    from llmctl.k8s.client import Kube

    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    _deployed_tls_endpoint(kube, tls_server.port)
    tls = {"certificate_arn": CERT_ARN, **({"host_name": host_name} if host_name else {})}
    cfg = LlmctlConfig.model_validate({"project": {"name": "llama"}, "model": {"bucket": "llama-models"},
                                       "deploy": {"exposure": "internal", "tls": tls}})
    client = Kube.from_kubeconfig(str(kube.kubeconfig_path))
    assert kube.wait_for(lambda: (client.get("v1", "Service", "vllm-llama", "vllm").get("status") or {})
                         .get("loadBalancer", {}).get("ingress"))
    target = resolve_target(None, None, local=None, config_loader=lambda: cfg,
                            names_loader=lambda: Names.from_config(cfg), kube_factory=lambda: client)
    try:
        assert target.base_url == tls_server.url and target.api_key == "key"
        assert target.metrics_url is None  # no ready pod: the cross-check says so, bench goes on
        notes: list[str] = []
        from llmctl.actions.bench import Hooks

        doc = run_bench(BenchOptions(num_prompts=2, output_len=3, warmup=0), target, Hooks(on_info=notes.append))
    finally:
        target.close()
    assert doc["completed"] == 2 and doc["llmctl"]["crosscheck"]["status"] == "unavailable"
    if host_name:  # checked against the configured name, sent as SNI and Host
        assert target.tls_server_name == NAME and set(tls_server.hosts) == {f"{NAME}:{tls_server.port}"}
        assert not [n for n in notes if n.startswith("TLS:")]
    else:  # no name known: the chain is checked (this CA is trusted), not the name, and bench says so
        assert target.tls_server_name is None and set(tls_server.hosts) == {f"127.0.0.1:{tls_server.port}"}
        assert [n for n in notes if n.startswith("TLS: the certificate chain is checked, not its name")]


def test_an_untrusted_certificate_is_refused_named_or_not(kube, tls_server, monkeypatch, tmp_path):
    from llmctl.config import LlmctlConfig, Names
    from llmctl.k8s.client import Kube

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    _deployed_tls_endpoint(kube, tls_server.port)
    cfg = LlmctlConfig.model_validate({"project": {"name": "llama"}, "model": {"bucket": "llama-models"},
                                       "deploy": {"exposure": "internal", "tls": {"certificate_arn": CERT_ARN}}})
    client = Kube.from_kubeconfig(str(kube.kubeconfig_path))
    kube.wait_for(lambda: (client.get("v1", "Service", "vllm-llama", "vllm").get("status") or {}).get("loadBalancer"))
    target = resolve_target(None, None, local=None, config_loader=lambda: cfg,
                            names_loader=lambda: Names.from_config(cfg), kube_factory=lambda: client)
    with pytest.raises(LlmctlError, match="its TLS certificate does not verify") as refused:
        run_bench(BenchOptions(num_prompts=1, warmup=0), target)
    assert "deploy.tls.host_name" in (refused.value.hint or "")
    flagged = resolve_target(tls_server.url, "key", local=None, config_loader=lambda: cfg, names_loader=lambda: None,
                             kube_factory=lambda: client, tls_server_name=NAME)
    with pytest.raises(LlmctlError, match="its TLS certificate does not verify"):
        run_bench(BenchOptions(num_prompts=1, warmup=0), flagged)
