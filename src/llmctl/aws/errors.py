"""The one place an AWS failure becomes words: what llmctl was doing, AWS's code and message, the fix.

Adapters catch `AWS_ERRORS` and nothing broader, so a bug in llmctl (a `KeyError`, a wrong
parameter) surfaces as itself instead of as "an AWS error"; what they catch they turn into an
`LlmctlError` with `aws_error`, whose table below is the only map from AWS failures to fixes.
A new failure class (throttling, an unreachable endpoint, a disabled region) is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError, NoCredentialsError

from llmctl.errors import LlmctlError

# What an adapter catches: AWS's answer to a call it refused.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError,)

DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
_DENIED_HINT = "your AWS identity lacks this permission; see docs/iam.md for the policy llmctl needs"
_EXPIRED_HINT = "your AWS session expired; log in again (`aws sso login`)"
HINTS = {
    **dict.fromkeys(DENIED, _DENIED_HINT),
    "ExpiredToken": _EXPIRED_HINT,
    "ExpiredTokenException": _EXPIRED_HINT,
    "InvalidClientTokenId": "the AWS credentials are not valid; check AWS_PROFILE",
}
NO_CREDENTIALS_HINT = "run `aws configure` or `aws sso login`, or set AWS_PROFILE"
T = TypeVar("T")


def error_code(exc: BaseException) -> str | None:
    """AWS's error code (`NoSuchEntity`, `AccessDenied`, ...); None for anything not AWS's answer."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Message", str(exc))
    return str(exc)


def aws_error(exc: BaseException, doing: str) -> LlmctlError:
    """One line naming the operation, AWS's code and message, and the fix when one is known."""
    if isinstance(exc, NoCredentialsError):
        return LlmctlError("no AWS credentials found", hint=NO_CREDENTIALS_HINT)
    code = error_code(exc) or type(exc).__name__
    return LlmctlError(f"{doing}: {code}: {error_message(exc)}", hint=HINTS.get(code))


def is_denied(exc: BaseException) -> bool:
    return error_code(exc) in DENIED


def aws_call(doing: str, call: Callable[[], T], *, absent: str | tuple[str, ...] = (), default=None) -> T:
    """`call()` with AWS's refusal turned into the domain error for `doing`; an error code in
    `absent` means "not there" and answers `default` instead."""
    codes = (absent,) if isinstance(absent, str) else absent
    try:
        return call()
    except AWS_ERRORS as exc:
        if error_code(exc) in codes:
            return default
        raise aws_error(exc, doing) from None
