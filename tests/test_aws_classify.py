"""What each AWS failure is called: the stable reason operators alert on and read.

``classify`` is the pure core between botocore and the source's results. Access denied and
rejected credentials are told apart (one is an IAM policy to fix, the other a key to rotate),
throttling is not mistaken for an outage, and an error code AWS adds later is
``api_error``, never one of the others. The live paths (moto_server with IAM enforced, a
closed port) are in tests/test_aws_source.py; these are the codes moto does not produce.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions as bex
import botocore.parsers
import pytest

from certscope.errors import SourceFailure
from certscope.sources.aws.client import classify

F = SourceFailure


def client_error(code: str | None, status: int) -> bex.ClientError:
    response: dict[str, Any] = {"ResponseMetadata": {"HTTPStatusCode": status}}
    if code is not None:
        response["Error"] = {"Code": code, "Message": "m"}
    return bex.ClientError(response, "ListKeys")


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("AccessDeniedException", 400, F.ACCESS_DENIED),
        ("UnauthorizedOperation", 403, F.ACCESS_DENIED),
        ("AllAccessDisabled", 403, F.ACCESS_DENIED),
        # Any other 403 that is not about the credentials themselves is a denial.
        ("SomethingForbiddenLater", 403, F.ACCESS_DENIED),
        (None, 403, F.ACCESS_DENIED),
        # Rejected credentials, even where AWS answers 403 for them.
        ("InvalidClientTokenId", 403, F.AUTH_FAILED),
        ("ExpiredToken", 400, F.AUTH_FAILED),
        ("SignatureDoesNotMatch", 403, F.AUTH_FAILED),
        ("AuthFailure", 401, F.AUTH_FAILED),
        ("ThrottlingException", 400, F.THROTTLED),
        ("RequestLimitExceeded", 503, F.THROTTLED),
        ("SlowDown", 503, F.THROTTLED),
        ("ResourceNotFoundException", 400, F.NOT_FOUND),
        ("NoSuchBucket", 404, F.NOT_FOUND),
        ("InvalidSnapshot.NotFound", 400, F.NOT_FOUND),
        # Unknown codes and server faults: an API error, whatever the status.
        ("InternalFailure", 500, F.API_ERROR),
        ("ServiceUnavailable", 503, F.API_ERROR),
        ("ValidationException", 400, F.API_ERROR),
        (None, 500, F.API_ERROR),
    ],
)
def test_client_errors(code: str | None, status: int, reason: SourceFailure) -> None:
    got = classify(client_error(code, status), "kms:ListKeys")
    assert got.reason is reason
    assert got.message == f"kms:ListKeys: {code or status}"
    assert got.code == (code or "")


@pytest.mark.parametrize(
    ("exc", "reason", "message"),
    [
        (bex.NoCredentialsError(), F.AUTH_FAILED, "no AWS credentials found (standard chain)"),
        (
            bex.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            F.AUTH_FAILED,
            "no AWS credentials found (standard chain)",
        ),
        (
            bex.CredentialRetrievalError(provider="sts", error_msg="denied"),
            F.AUTH_FAILED,
            "credentials could not be obtained",
        ),
        (bex.ConnectTimeoutError(endpoint_url="https://kms"), F.TIMEOUT, "no answer in time"),
        (bex.ReadTimeoutError(endpoint_url="https://kms"), F.TIMEOUT, "no answer in time"),
        (
            bex.EndpointConnectionError(endpoint_url="https://kms"),
            F.UNREACHABLE,
            "cannot connect to the endpoint",
        ),
        (
            bex.SSLError(endpoint_url="https://kms", error="bad"),
            F.UNREACHABLE,
            "TLS with the endpoint failed",
        ),
        (
            botocore.parsers.ResponseParserError("no"),
            F.BAD_RESPONSE,
            "the answer could not be parsed",
        ),
        (bex.ParamValidationError(report="x"), F.API_ERROR, "ParamValidationError"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_other_botocore_errors(exc: Exception, reason: SourceFailure, message: str) -> None:
    got = classify(exc, "kms:ListKeys")
    assert (got.reason, got.message) == (reason, f"kms:ListKeys: {message}")


def test_credential_text_never_in_the_message() -> None:
    """botocore puts the variable name in a partial-credentials error, never its value; the
    reason's message does not carry even the name."""
    exc = bex.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY")
    assert "AWS_SECRET_ACCESS_KEY" not in classify(exc, "s3:ListBuckets").message


def test_anything_else_is_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError):
        classify(ZeroDivisionError(), "kms:ListKeys")
