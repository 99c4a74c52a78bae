"""AWS Certificate Manager: every certificate of a region as ordinary stored certificates.

Calls: ``ListCertificates`` (paginated, every key type: by default ACM lists only RSA-2048
and RSA-1024 certificates), then per certificate ``DescribeCertificate`` (type, status,
renewal eligibility, what uses it) and, for certificates that have been issued,
``GetCertificate`` (the certificate and its chain, public data). The certificate body becomes
the same :class:`~certscope.results.StoredCert` rows as any store's (``source_kind`` ``aws_acm``,
location the ARN, the chain at positions 1…), so expiry metrics, rules and the inventory cover
it. ACM renews what it issued when the certificate is eligible (in use); an imported
certificate is never renewed by ACM: its ``renewal`` label is ``manual``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ...errors import SourceFailure
from ...results import ItemError, StoredCert
from ..vault import parse_pem_value
from .client import Api, AwsError, map_bounded
from .model import SOURCE_KINDS, Part, attrs, iso

KIND = SOURCE_KINDS["acm"]
#: Every key type ACM knows; ListCertificates filters on these.
KEY_TYPES = (
    "RSA_1024",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "EC_prime256v1",
    "EC_secp384r1",
    "EC_secp521r1",
)
#: Statuses in which a certificate exists (the others are requests still pending or failed).
_HAS_BODY = frozenset({"ISSUED", "INACTIVE", "EXPIRED", "REVOKED"})


async def read(api: Api, region: str) -> Part:
    summaries = await api.pages(
        "acm",
        region,
        "list_certificates",
        "CertificateSummaryList",
        Includes={"keyTypes": list(KEY_TYPES)},
    )

    async def one(summary: Mapping[str, Any]) -> tuple[list[StoredCert], list[ItemError]]:
        return await _certificate(api, region, str(summary.get("CertificateArn", "")))

    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    for got, bad in await map_bounded(one, summaries, api.clients.source.concurrency):
        certs += got
        errors += bad
    return Part(certs=tuple(certs), errors=tuple(errors))


def renewal(detail: Mapping[str, Any]) -> str:
    """``acm`` when ACM will renew the certificate itself, else ``manual``."""
    if detail.get("Type") == "IMPORTED":
        return "manual"
    return "acm" if detail.get("RenewalEligibility") == "ELIGIBLE" else "manual"


async def _certificate(api: Api, region: str, arn: str) -> tuple[list[StoredCert], list[ItemError]]:
    try:
        described = await api.call("acm", region, "describe_certificate", CertificateArn=arn)
    except AwsError as exc:
        return [], [ItemError(arn, exc.reason, exc.message)]
    detail = described.get("Certificate")
    if not isinstance(detail, Mapping):
        return [], [
            ItemError(arn, SourceFailure.BAD_RESPONSE, "acm:DescribeCertificate: no Certificate")
        ]
    status = str(detail.get("Status", ""))
    if status not in _HAS_BODY:
        return [], []  # a request not (yet) issued: nothing to inventory
    try:
        body = await api.call("acm", region, "get_certificate", CertificateArn=arn)
    except AwsError as exc:
        return [], [ItemError(arn, exc.reason, exc.message)]
    pem = "\n".join(
        v for v in (body.get("Certificate"), body.get("CertificateChain")) if isinstance(v, str)
    )
    certs, errors = parse_pem_value(arn, pem or None)
    in_use = detail.get("InUseBy")
    facts = attrs(
        certificate_type=str(detail.get("Type", "")),
        certificate_status=status,
        renewal_eligibility=str(detail.get("RenewalEligibility", "")),
        renewal_status=str((detail.get("RenewalSummary") or {}).get("RenewalStatus", "")),
        in_use_by=str(len(in_use)) if isinstance(in_use, list) else "",
        region=region,
        imported_at=iso(detail.get("ImportedAt")),
        issued_at=iso(detail.get("IssuedAt")),
    )
    labels = (("renewal", renewal(detail)),)
    return [
        replace(c, source_kind=KIND, labels=labels, attributes=facts if c.position == 0 else ())
        for c in certs
    ], errors
