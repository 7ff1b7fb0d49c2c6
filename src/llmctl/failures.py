"""The one map from a failure of the world around llmctl to one plain line with its fix.

AWS (no or partial credentials, an expired session, access denied, throttling after botocore's
retries, an unreachable endpoint, an unknown or disabled region), Kubernetes (no kubeconfig, an
unreachable API, 401, 403) and the network under both. The AWS and Kubernetes adapters turn
what they catch into words here (`aws_failure`, `kube_transport_failure`, `KUBE_STATUS_HINTS`),
and the CLI's last resort (`explain`) sends anything an adapter let through the same way, so
every command words a failure class alike; only what no entry matches is an "internal error",
which is reserved for llmctl's own bugs.
"""

from __future__ import annotations

from llmctl.errors import LlmctlError

# --- AWS: AWS's answer (a ClientError code) -> the fix ------------------------------------------
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")
EXPIRED = ("ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired")
INVALID_CREDENTIALS = ("InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure",
                       "SignatureDoesNotMatch", "InvalidSignatureException")
THROTTLED = ("Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
             "TooManyRequestsException", "RequestThrottled", "RequestThrottledException", "SlowDown",
             "ProvisionedThroughputExceededException")
NO_CREDENTIALS_HINT = "run `aws configure` or `aws sso login`, or set AWS_PROFILE"
EXPIRED_HINT = "your AWS session expired; log in again (`aws sso login`) or refresh the credentials"
UNREACHABLE_HINT = ("check the network connection (and HTTPS_PROXY), that aws.region names a region that exists "
                    "and is enabled for the account, and AWS_ENDPOINT_URL if it is set")
HINTS = {
    **dict.fromkeys(DENIED, "your AWS identity lacks this permission; see docs/iam.md for the policy llmctl needs"),
    **dict.fromkeys(EXPIRED, EXPIRED_HINT),
    **dict.fromkeys(INVALID_CREDENTIALS, "AWS does not accept these credentials in this region: check AWS_PROFILE "
                                         "and the access key, or enable the region for the account (opt-in regions)"),
    **dict.fromkeys(THROTTLED, "AWS kept throttling after botocore's retries; wait a minute and re-run, "
                               "or set aws.retry_mode: adaptive"),
    "OptInRequired": "the account is not subscribed to this service in aws.region; enable it, or choose another region",
}


def error_code(exc: BaseException) -> str | None:
    """AWS's error code (`NoSuchEntity`, `AccessDenied`, ...); None for anything not AWS's answer."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return response["Error"].get("Code")
    return None


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return response["Error"].get("Message") or str(exc)
    return str(exc)


def aws_classes() -> tuple[type[Exception], ...]:
    """The botocore exceptions that are the world's doing, not llmctl's (a `ParamValidationError`,
    llmctl passing a wrong parameter, is deliberately absent: it is a bug)."""
    from botocore import exceptions as b

    return (b.ClientError, b.NoCredentialsError, b.PartialCredentialsError, b.CredentialRetrievalError,
            b.TokenRetrievalError, b.SSOError, b.RefreshWithMFAUnsupportedError, b.ConnectionError,
            b.HTTPClientError, b.InvalidRegionError, b.NoRegionError)


def aws_failure(exc: BaseException, doing: str = "") -> LlmctlError:
    """One line for an AWS failure: what llmctl was `doing`, what went wrong, the fix."""
    from botocore import exceptions as b

    if isinstance(exc, b.NoCredentialsError):
        return LlmctlError("no AWS credentials found", hint=NO_CREDENTIALS_HINT)
    if isinstance(exc, (b.PartialCredentialsError, b.CredentialRetrievalError, b.RefreshWithMFAUnsupportedError)):
        return LlmctlError(f"the AWS credentials cannot be used: {exc}", hint=NO_CREDENTIALS_HINT)
    if isinstance(exc, (b.TokenRetrievalError, b.SSOError)):
        return LlmctlError(f"the AWS login session cannot be used: {exc}", hint=EXPIRED_HINT)
    if isinstance(exc, b.InvalidRegionError):
        return LlmctlError(f"aws.region: {exc}", hint="set aws.region (or --region) to a region name like us-east-1")
    if isinstance(exc, b.NoRegionError):
        return LlmctlError("no AWS region set", hint="set aws.region in llmctl.yaml, --region or AWS_REGION")
    prefix = f"{doing}: " if doing else ""
    if isinstance(exc, (b.ConnectionError, b.HTTPClientError)):
        return LlmctlError(f"{prefix}cannot reach AWS: {exc}", hint=UNREACHABLE_HINT)
    code = error_code(exc) or type(exc).__name__
    return LlmctlError(f"{prefix}{code}: {error_message(exc)}", hint=HINTS.get(code))


# --- Kubernetes ----------------------------------------------------------------------------------
KUBE_STATUS_HINTS = {
    401: "the cluster rejected the kubeconfig credentials; refresh them with "
         "`aws eks update-kubeconfig --name <cluster>`",
    403: "the kubeconfig identity lacks RBAC permission for this; check its aws-auth / access entry",
    409: "the object changed or already exists; re-run the command",
    422: "the manifest is invalid for this cluster's Kubernetes version",
}
KUBE_UNREACHABLE_HINT = "check that the cluster exists and the kubeconfig context points at it"
NO_KUBECONFIG_HINT = "run `llmctl cluster up`, or `aws eks update-kubeconfig --name <cluster>`"


def kube_config_failure(exc: BaseException, where: str) -> LlmctlError:
    """The kubeconfig cannot be loaded (absent, no context, unreadable)."""
    return LlmctlError(f"cannot load Kubernetes credentials from {where}: {exc}", hint=NO_KUBECONFIG_HINT)


def kube_transport_failure(exc: BaseException, host: str) -> LlmctlError:
    """No HTTP answer from the API server: refused, timed out, TLS, a dead proxy."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return LlmctlError(f"Kubernetes API at {host}: {getattr(exc, 'reason', '') or status}",
                           hint=KUBE_STATUS_HINTS[status])
    reason = getattr(exc, "reason", None) if status is not None else None
    hint = "check the kubeconfig's cluster endpoint and certificate" if status is not None else KUBE_UNREACHABLE_HINT
    return LlmctlError(f"cannot reach the Kubernetes API at {host}: {reason or exc}", hint=hint)


def _kube_failure(exc: BaseException) -> LlmctlError | None:
    try:
        import urllib3
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    if isinstance(exc, ConfigException):
        return kube_config_failure(exc, "the default kubeconfig (~/.kube/config or $KUBECONFIG)")
    if isinstance(exc, (ApiException, urllib3.exceptions.HTTPError)):
        pool = getattr(exc, "pool", None)
        host = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else "the kubeconfig's server"
        return kube_transport_failure(exc, host)
    return None


def explain(exc: BaseException) -> LlmctlError | None:
    """The line for any failure class above that reached the CLI unworded; None for a real bug."""
    if isinstance(exc, LlmctlError):
        return exc
    try:
        if isinstance(exc, aws_classes()):
            return aws_failure(exc)
    except ImportError:  # pragma: no cover - botocore is a dependency
        pass
    return _kube_failure(exc)
