"""The AWS SDK at the edge: credentials, clients, bounded calls and error mapping.

botocore is synchronous. Its calls run in a thread pool that lives for one refresh, at most
``concurrency`` calls per region at a time (an asyncio semaphore per region), so the event loop
that serves ``/metrics`` never waits on AWS. Clients are made once per reader (loading the
service models costs tens of milliseconds each) and are thread-safe; the session is only
touched while the clients are made.

Credentials come from botocore's standard chain: environment variables, the shared config and
credentials files (``profile``), web identity (EKS IRSA: ``AWS_ROLE_ARN`` and
``AWS_WEB_IDENTITY_TOKEN_FILE``), the container and instance metadata endpoints. With
``assume_role_arn`` those credentials only call STS ``AssumeRole``; botocore refreshes the role
credentials before they expire. Throttling is retried by botocore's ``adaptive`` retry mode
(client-side rate limiting plus exponential backoff), ``max_attempts`` times per call.

What can go wrong, and what it becomes::

    AwsError(reason, message)
        auth_failed     no credentials, credentials rejected, AssumeRole refused
        access_denied   the identity lacks a permission (AccessDenied, UnauthorizedOperation)
        throttled       still throttled after every retry
        timeout         no answer within the timeout (connect or read)
        unreachable     connection refused, DNS failure, TLS failure to the endpoint
        not_found       the resource vanished between listing and reading it
        api_error       any other error the service returned (the AWS error code is kept)
        bad_response    an answer botocore could not parse

Messages carry the AWS error code and the operation, never a credential: botocore's messages
do not contain secrets, and ours are cut to a few hundred characters.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import botocore.exceptions as bex
import botocore.parsers
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)

from ...config import AwsSource
from ...errors import ItemFailure, SourceFailure
from ...results import ItemError

#: A listing stops after this many items (one item error says so): memory stays bounded in
#: accounts far larger than any audit needs in one source.
MAX_ITEMS = 100_000

# botocore logs request headers (an assumed role's session token) and response bodies (secret
# values) at DEBUG. ``--log.level debug`` is for certscope, so its dependencies stay at WARNING.
for _name in ("botocore", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

T = TypeVar("T")
R = TypeVar("R")

_MESSAGE_CHARS = 300

_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "Forbidden",
        "AllAccessDisabled",
    }
)
_AUTH = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AuthFailure",
        "InvalidToken",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
_THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "RequestThrottledException",
    }
)
_NOT_FOUND = frozenset(
    {
        "NotFoundException",
        "ResourceNotFoundException",
        "NoSuchBucket",
        "DBInstanceNotFound",
        "DBClusterNotFoundFault",
        "InvalidVolume.NotFound",
        "InvalidSnapshot.NotFound",
    }
)


class AwsError(Exception):
    """One call (or one part of a refresh) failed; ``reason`` is a stable label value."""

    def __init__(self, reason: SourceFailure, message: str, code: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message[:_MESSAGE_CHARS]
        self.code = code


def error_code(exc: bex.ClientError) -> str:
    err = exc.response.get("Error") or {}
    return str(err.get("Code") or "")


#: Everything botocore raises: its own tree, service errors and unparseable answers.
BOTOCORE_ERRORS = (bex.BotoCoreError, bex.ClientError, botocore.parsers.ResponseParserError)


def classify(exc: Exception, what: str) -> AwsError:
    """A botocore exception as an AwsError with a stable reason."""
    if isinstance(exc, bex.ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _DENIED or (status == 403 and code not in _AUTH):
            reason = SourceFailure.ACCESS_DENIED
        elif code in _AUTH:
            reason = SourceFailure.AUTH_FAILED
        elif code in _THROTTLED:
            reason = SourceFailure.THROTTLED
        elif code in _NOT_FOUND:
            reason = SourceFailure.NOT_FOUND
        else:
            reason = SourceFailure.API_ERROR
        return AwsError(reason, f"{what}: {code or status or 'error'}", code)
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return AwsError(
            SourceFailure.AUTH_FAILED, f"{what}: no AWS credentials found (standard chain)"
        )
    if isinstance(exc, bex.CredentialRetrievalError | bex.TokenRetrievalError):
        return AwsError(SourceFailure.AUTH_FAILED, f"{what}: credentials could not be obtained")
    if isinstance(exc, bex.ConnectTimeoutError | bex.ReadTimeoutError):
        return AwsError(SourceFailure.TIMEOUT, f"{what}: no answer in time")
    if isinstance(exc, bex.EndpointConnectionError | bex.ConnectionClosedError):
        return AwsError(SourceFailure.UNREACHABLE, f"{what}: cannot connect to the endpoint")
    if isinstance(exc, bex.SSLError):
        return AwsError(SourceFailure.UNREACHABLE, f"{what}: TLS with the endpoint failed")
    if isinstance(exc, botocore.parsers.ResponseParserError):
        return AwsError(SourceFailure.BAD_RESPONSE, f"{what}: the answer could not be parsed")
    if isinstance(exc, bex.BotoCoreError):
        return AwsError(SourceFailure.API_ERROR, f"{what}: {type(exc).__name__}")
    raise exc


class _Fixed(CredentialProvider):  # type: ignore[misc]
    """Hands the session the assumed-role credentials (botocore refreshes them itself)."""

    METHOD = "assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


@dataclass(frozen=True)
class Identity:
    account: str
    partition: str
    arn: str


class Clients:
    """botocore clients for one source, made on first use in a worker thread."""

    def __init__(self, source: AwsSource) -> None:
        self.source = source
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()  # the botocore session is not thread-safe; clients are
        self._config = BotoConfig(
            connect_timeout=source.timeout,
            read_timeout=source.timeout,
            retries={"mode": "adaptive", "max_attempts": source.max_attempts},
            max_pool_connections=source.concurrency,
            user_agent_extra="certscope",
        )

    def _make_session(self) -> Any:
        base = botocore.session.Session(profile=self.source.profile)
        if not self.source.assume_role_arn:
            return base
        extra: dict[str, Any] = {"RoleSessionName": "certscope"}
        if self.source.external_id:
            extra["ExternalId"] = self.source.external_id
        sts = functools.partial(
            base.create_client,
            region_name=self.source.regions[0],
            endpoint_url=self.source.endpoint_url,
            config=self._config,
        )
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts,
            source_credentials=base.get_credentials(),
            role_arn=self.source.assume_role_arn,
            extra_args=extra,
        )
        creds = DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        session = botocore.session.Session(profile=self.source.profile)
        session.register_component("credential_provider", CredentialResolver([_Fixed(creds)]))
        return session

    def client(self, service: str, region: str) -> Any:
        """The client for ``service`` in ``region`` (call from a worker thread)."""
        key = (service, region)
        found = self._clients.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                if self._session is None:
                    self._session = self._make_session()
                found = self._session.create_client(
                    service,
                    region_name=region,
                    endpoint_url=self.source.endpoint_url,
                    config=self._config,
                )
                self._clients[key] = found
        return found

    def identity(self) -> Identity:
        """Who the credentials are (STS GetCallerIdentity needs no permission): the check that
        the credentials work at all before any service is read."""
        try:
            sts = self.client("sts", self.source.regions[0])
            got = sts.get_caller_identity()
        except BOTOCORE_ERRORS as exc:  # mapped to a stable reason
            raise classify(exc, "sts:GetCallerIdentity") from None
        arn = str(got.get("Arn", ""))
        partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
        return Identity(account=str(got.get("Account", "")), partition=partition, arn=arn)


class Api:
    """One refresh's calls: bounded per region, run in a thread pool owned by the refresh.

    Each part (service, region) reads through its own view (:meth:`part`), which shares the
    pool and the per-region limits and collects the part's notes (listings cut at MAX_ITEMS).
    """

    def __init__(
        self,
        clients: Clients,
        executor: ThreadPoolExecutor,
        identity: Identity,
        location: str = "",
        limits: dict[str, asyncio.Semaphore] | None = None,
    ) -> None:
        self.clients = clients
        self.executor = executor
        self.identity = identity
        self.location = location
        self.notes: list[ItemError] = []
        self._limits: dict[str, asyncio.Semaphore] = {} if limits is None else limits

    def part(self, location: str) -> Api:
        return Api(self.clients, self.executor, self.identity, location, self._limits)

    def _limit(self, region: str) -> asyncio.Semaphore:
        sem = self._limits.get(region)
        if sem is None:
            sem = self._limits[region] = asyncio.Semaphore(self.clients.source.concurrency)
        return sem

    async def _run(self, region: str, fn: Callable[[], T]) -> T:
        async with self._limit(region):
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def call(
        self, service: str, region: str, operation: str, **params: Any
    ) -> Mapping[str, Any]:
        """One API call; raises AwsError."""

        def run() -> Mapping[str, Any]:
            client = self.clients.client(service, region)
            try:
                answer: Mapping[str, Any] = getattr(client, operation)(**params)
            except BOTOCORE_ERRORS as exc:  # mapped to a stable reason
                raise classify(exc, f"{service}:{_api_name(operation)}") from None
            return answer

        return await self._run(region, run)

    async def pages(
        self, service: str, region: str, operation: str, key: str, **params: Any
    ) -> list[Any]:
        """Every item under ``key`` over all pages of a listing (botocore's paginator)."""

        what = f"{service}:{_api_name(operation)}"

        def run() -> list[Any]:
            client = self.clients.client(service, region)
            items: list[Any] = []
            try:
                for page in client.get_paginator(operation).paginate(**params):
                    items.extend(page.get(key) or ())
                    if len(items) > MAX_ITEMS:
                        break
            except BOTOCORE_ERRORS as exc:  # mapped to a stable reason
                raise classify(exc, what) from None
            return items

        items = await self._run(region, run)
        if len(items) > MAX_ITEMS:
            msg = f"{what}: more than {MAX_ITEMS} items; the rest were skipped"
            self.notes.append(ItemError(self.location or region, ItemFailure.TOO_MANY_ITEMS, msg))
            del items[MAX_ITEMS:]
        return items


def _api_name(operation: str) -> str:
    """``list_keys`` → ``ListKeys``, the name IAM policies and error messages use."""
    return "".join(part.capitalize() for part in operation.split("_"))


async def map_bounded(fn: Callable[[T], Awaitable[R]], items: Sequence[T], limit: int) -> list[R]:
    """``[await fn(x) for x in items]`` with at most ``limit`` running at once: a few workers
    pull from one iterator, so 50,000 keys do not mean 50,000 tasks. ``fn`` returns failures
    as data; an exception it raises cancels the rest and propagates."""
    results: dict[int, R] = {}
    todo = iter(enumerate(items))

    async def worker() -> None:
        for i, item in todo:
            results[i] = await fn(item)

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(limit, len(items))):
            tg.create_task(worker())
    return [results[i] for i in range(len(items))]
