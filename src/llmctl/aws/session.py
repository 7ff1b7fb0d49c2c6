"""One boto3 session factory for every command.

botocore itself honours `AWS_PROFILE`, `AWS_REGION` and `AWS_ENDPOINT_URL` /
`AWS_ENDPOINT_URL_<SERVICE>`, so every command runs unchanged against a local AWS double.
Retries use botocore's standard mode, or adaptive with `aws.retry_mode: adaptive`, 8 attempts
unless botocore's own `AWS_MAX_ATTEMPTS` (or the profile's `max_attempts`) says otherwise.
Credentials are never read, written or printed here: the default chain resolves them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from llmctl.errors import ConfigError

MAX_ATTEMPTS = 8  # botocore's default of 3 gives up too soon on a throttled `teardown`


class AwsClients:
    """Lazily created, cached clients for one region/profile."""

    def __init__(self, region: str, profile: str | None = None, session: Any = None, retry_mode: str = "standard"):
        self.region = region
        self.profile = profile
        self.retry_mode = retry_mode
        self._session = session
        self._clients: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg) -> "AwsClients":
        return cls(cfg.aws.region, cfg.aws.profile, retry_mode=cfg.aws.retry_mode)

    @cached_property
    def session(self):
        if self._session is not None:
            return self._session
        import boto3
        import botocore.exceptions

        try:
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        except botocore.exceptions.ProfileNotFound:
            raise ConfigError(
                f"aws.profile: {self.profile!r} is not in your AWS config",
                hint="run `aws configure list-profiles` or unset aws.profile",
            ) from None

    def client(self, service: str):
        if service not in self._clients:
            from botocore.config import Config

            retries: dict = {"mode": self.retry_mode}
            core = getattr(self.session, "_session", None)  # boto3's botocore session: its config chain
            if core is None or core.get_config_variable("max_attempts") is None:
                retries["max_attempts"] = MAX_ATTEMPTS  # unless AWS_MAX_ATTEMPTS / the profile says otherwise
            config = Config(
                retries=retries,
                user_agent_extra="llmctl",
                connect_timeout=10,
                read_timeout=60,
            )
            self._clients[service] = self.session.client(service, config=config)
        return self._clients[service]

    def __getattr__(self, service: str):
        """`clients.s3`, `clients.iam`, ... (attribute names are service names, `-` as `_`)."""
        if service.startswith("_"):
            raise AttributeError(service)
        return self.client(service.replace("_", "-"))

    @cached_property
    def account_id(self) -> str:
        return self.identity()["Account"]

    def identity(self) -> dict[str, str]:
        """STS caller identity, with the usual failures turned into a fix."""
        from llmctl.aws.errors import AWS_ERRORS, aws_error

        try:
            return self.client("sts").get_caller_identity()
        except AWS_ERRORS as exc:
            raise aws_error(exc, "checking AWS identity") from None

    def price_list_client(self):
        """The Pricing API (answered in us-east-1 only), with short timeouts and no retries: it is optional."""
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=3, read_timeout=5,
                        user_agent_extra="llmctl")
        return self.session.client("pricing", region_name="us-east-1", config=config)


def endpoint_client(service: str, endpoint_url: str, region: str, credentials: dict[str, str]):
    """A client of one explicit endpoint with fixed credentials (`llmctl local`'s embedded S3)."""
    import boto3

    keys = {k.lower(): v for k, v in credentials.items()}
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **keys)
