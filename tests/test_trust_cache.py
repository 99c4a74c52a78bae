"""The cached trust verdict: a changed chain, trust store or day is judged afresh.

Trust is judged without the clock and cached per (chain, store contents, day); a stale entry
would keep reporting a chain as trusted after its CA was removed from the trust store.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from certscope import verify
from certscope.certs import facts_from_der
from certscope.errors import VerifyFailure
from helpers.pki import TestPKI

NOW = datetime.now(UTC).replace(hour=12, minute=0)  # a day with hours either side


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    for cache in (verify._store, verify._trust_errors, verify._to_openssl):
        cache.cache_clear()
    yield
    for cache in (verify._store, verify._trust_errors, verify._to_openssl):
        cache.cache_clear()


def chain_of(pki: TestPKI, name: str) -> tuple[bytes, ...]:
    leaf = pki.leaf(name)
    return (leaf.der, pki.intermediate.certificate.public_bytes(Encoding.DER))


def judge(chain: tuple[bytes, ...], ca_file: Path, now: datetime = NOW) -> verify.Verdict:
    facts = [facts_from_der(der) for der in chain]
    return verify.verify_chain(chain, facts, None, str(ca_file), now)


def test_a_replaced_trust_store_is_judged_afresh(
    pki: TestPKI, other_pki: TestPKI, tmp_path: Path
) -> None:
    chain = chain_of(pki, "store.test")
    ca_file = tmp_path / "ca.pem"
    shutil.copy(pki.ca_file, ca_file)
    assert judge(chain, ca_file).chain_trusted
    assert judge(chain, ca_file).chain_trusted  # from the cache
    # The CA is removed from the trust store: the same chain must no longer be trusted.
    shutil.copy(other_pki.ca_file, ca_file)
    stat = ca_file.stat()
    os.utime(ca_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    verdict = judge(chain, ca_file)
    assert not verdict.chain_trusted
    assert VerifyFailure.UNKNOWN_ISSUER in verdict.errors or (
        VerifyFailure.INCOMPLETE_CHAIN in verdict.errors
    )


def test_a_changed_chain_is_judged_afresh(pki: TestPKI, other_pki: TestPKI) -> None:
    trusted = chain_of(pki, "chain.test")
    assert judge(trusted, pki.ca_file).chain_trusted
    # Same name, same store, a chain from a CA the store does not hold.
    assert not judge(chain_of(other_pki, "chain.test"), pki.ca_file).chain_trusted


def test_a_new_day_is_judged_afresh_and_the_same_day_is_not(pki: TestPKI) -> None:
    chain = chain_of(pki, "day.test")
    judge(chain, pki.ca_file)
    misses = verify._trust_errors.cache_info().misses
    judge(chain, pki.ca_file, NOW + timedelta(seconds=1))
    assert verify._trust_errors.cache_info().misses == misses
    assert judge(chain, pki.ca_file, NOW + timedelta(days=1)).chain_trusted
    assert verify._trust_errors.cache_info().misses == misses + 1


def test_the_cache_is_bounded() -> None:
    assert verify._trust_errors.cache_info().maxsize == 4096
    assert verify._store.cache_info().maxsize == 64
    assert verify._to_openssl.cache_info().maxsize == 256


def test_new_chains_behind_one_intermediate_parse_it_once(pki: TestPKI, other_pki: TestPKI) -> None:
    """Each new chain is judged afresh, but a certificate already parsed for an earlier chain
    is not parsed again; a different intermediate is its own entry, never confused."""
    first, second = chain_of(pki, "one.test"), chain_of(pki, "two.test")
    assert judge(first, pki.ca_file).chain_trusted
    assert verify._to_openssl.cache_info().misses == 2
    assert judge(second, pki.ca_file).chain_trusted
    assert verify._to_openssl.cache_info()[:2] == (1, 3)  # (hits, misses): the leaf only
    assert verify._trust_errors.cache_info().misses == 2
    assert not judge(chain_of(other_pki, "one.test"), pki.ca_file).chain_trusted
    assert verify._to_openssl.cache_info().misses == 5


def test_host_name_matches_are_cached_per_host_and_leaf_names(pki: TestPKI) -> None:
    """A target asks for the same name of the same leaf on every probe: judged once. The key
    is the leaf's names themselves, so facts with other names are judged on their own."""
    chain = chain_of(pki, "match.test")
    facts = [facts_from_der(der) for der in chain]
    verify._MATCHES.clear()
    assert verify.verify_chain(chain, facts, "match.test", str(pki.ca_file), NOW).hostname_match
    leaf = facts[0]
    assert list(verify._MATCHES.items()) == [
        (("match.test", leaf.sans, leaf.subject_cn, leaf.ip_sans), True)
    ]
    renamed = [dataclasses.replace(leaf, sans=("elsewhere.test",)), facts[1]]
    verdict = verify.verify_chain(chain, renamed, "match.test", str(pki.ca_file), NOW)
    assert not verdict.hostname_match
    assert VerifyFailure.HOSTNAME_MISMATCH in verdict.errors
    assert len(verify._MATCHES) == 2
