"""How an AWS adapter turns a failure into words: `AWS_ERRORS` to catch, `aws_error` to word it.

Adapters catch `AWS_ERRORS` and nothing broader, so a bug in llmctl (a `KeyError`, a wrong
parameter) surfaces as itself instead of as "an AWS error"; what they catch they turn into an
`LlmctlError` with `aws_error`. The words and fixes live in `llmctl/failures.py`, the one map of
every AWS, Kubernetes and network failure class: a new class is one entry there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from llmctl.errors import LlmctlError
from llmctl.failures import DENIED, HINTS, NO_CREDENTIALS_HINT, aws_classes, aws_failure, error_code, error_message

__all__ = ["AWS_ERRORS", "DENIED", "HINTS", "NO_CREDENTIALS_HINT", "aws_call", "aws_error", "error_code",
           "error_message", "is_denied"]

# What an adapter catches: AWS's answer to a call it refused, and the credential, connection and
# region failures botocore raises before (or instead of) an answer.
AWS_ERRORS: tuple[type[Exception], ...] = aws_classes()
T = TypeVar("T")


def aws_error(exc: BaseException, doing: str) -> LlmctlError:
    """One line naming the operation, what went wrong, and the fix when one is known."""
    return aws_failure(exc, doing)


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
