"""The key-exchange groups the probe offers, as a real ``openssl s_server -trace`` sees them.

The probe sets its own groups list through cryptography's bindings (no ML-KEM key share: a
tenth of a probe's CPU); when the bindings lack the setter it falls back to OpenSSL's defaults
silently, so only the ClientHello shows whether the list took effect.
"""

from __future__ import annotations

import re

from certscope.config import Target, TLSOptions
from certscope.probe import probe
from helpers.pki import TestPKI
from helpers.servers import OpenSSLServer

#: IANA codes of the probe's list, in its order: X25519, P-256, P-384, P-521, X448 and the
#: three FFDHE groups.
PROBE_GROUPS = (29, 23, 24, 25, 30, 256, 257, 258)


def _offered_groups(trace: str) -> tuple[int, ...]:
    """The codes in the first ClientHello's supported_groups extension of an s_server trace."""
    lines = trace.splitlines()
    start = next(i for i, line in enumerate(lines) if "extension_type=supported_groups" in line)
    codes = []
    for line in lines[start + 1 :]:
        match = re.fullmatch(r"\s+\S.*\((\d+)\)", line)
        if match is None or "extension_type=" in line:
            break
        codes.append(int(match.group(1)))
    return tuple(codes)


async def test_probe_offers_only_its_classical_groups(pki: TestPKI) -> None:
    leaf = pki.leaf("groups.test")
    with OpenSSLServer(leaf.cert, leaf.key, "-trace", chain=pki.intermediate.path) as srv:
        tls = TLSOptions(timeout=5.0, sni="groups.test", ca_file=str(pki.ca_file))
        result = await probe(Target(name="groups", host=srv.host, port=srv.port, tls=tls))
        trace = srv.output()
    assert result.outcome.error is None
    assert _offered_groups(trace) == PROBE_GROUPS
