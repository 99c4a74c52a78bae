"""Where the operating system keeps its trust store.

A leaf: the embedded default configuration inventories these files, and verification loads
them when a target names no ``ca_file``.
"""

from __future__ import annotations

import os
import ssl

_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, BSDs
)


def system_ca_paths() -> tuple[str | None, str | None]:
    """Where the operating system keeps its trust store (file, directory)."""
    paths = ssl.get_default_verify_paths()
    cafile: str | None = os.environ.get(paths.openssl_cafile_env) or paths.cafile
    capath: str | None = os.environ.get(paths.openssl_capath_env) or paths.capath
    if not cafile or not os.path.exists(cafile):
        cafile = next((p for p in _SYSTEM_BUNDLES if os.path.exists(p)), None)
    if capath and not os.path.isdir(capath):
        capath = None
    return cafile, capath
