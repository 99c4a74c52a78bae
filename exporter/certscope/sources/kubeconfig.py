"""kubeconfig files: the certificates and client keys embedded in them, checked as kubectl
checks them. No I/O.

Every YAML document the files source reads goes through :func:`load_yaml`, which refuses a
document with more than :data:`MAX_YAML_ALIASES` alias references before building it: an alias
bomb (200,000 ``*ref`` in 1.4 MB) is one ``unparseable`` error, not 200,000 rows and gigabytes.
Two clusters or users with one name are a ``duplicate_name`` error (kubectl rejects such a
file too): exporting both would give two series one location and lose one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import ItemFailure
from ..results import ItemError, StoredCert, StoredKey
from . import keys as keyrec
from .formats import Parsed, _b64, _Collector, _pem_into, apply_key_match, key_hashes, keys_in

#: Alias references allowed in one YAML document (kubectl writes none).
MAX_YAML_ALIASES = 100


class YamlRefused(Exception):
    """The document is not loaded; the message says why without quoting it."""


def load_yaml(data: bytes) -> Any:
    """A YAML document through the safe loader, after counting its aliases on the event
    stream (which expands nothing). Raises :class:`YamlRefused`."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        aliases = 0
        for event in yaml.parse(data, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise YamlRefused(f"more than {MAX_YAML_ALIASES} YAML alias references")
        return yaml.load(data, Loader=loader)  # noqa: S506 -- a safe loader
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may be a key: only the line number.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise YamlRefused(f"not valid YAML{where}") from None


def _blob_into(out: _Collector, data: bytes) -> None:
    if b"-----BEGIN " in data:
        _pem_into(out, data)
    else:
        out.add_der(data)


def _named(
    path: str, items: object, key: str, errors: list[ItemError]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The named entries of a ``clusters``/``users`` list; a repeated name is an error and
    neither entry of that name is read."""
    if not isinstance(items, list):
        return
    entries = [
        (str(item.get("name", i)), item[key])
        for i, item in enumerate(items)
        if isinstance(item, dict) and isinstance(item.get(key), dict)
    ]
    counts: dict[str, int] = {}
    for name, _ in entries:
        counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        if count > 1:
            message = f"{count} {key}s are named {name!r}; kubectl rejects the file too"
            errors.append(ItemError(f"{path}#{key}:{name}", ItemFailure.DUPLICATE_NAME, message))
    for name, value in entries:
        if counts[name] == 1:
            yield name, value


def parse_kubeconfig(path: str, data: bytes) -> Parsed:
    """kubeconfig: each cluster's ``certificate-authority-data``, each user's
    ``client-certificate-data`` and ``client-key-data`` (a key record, compared with the
    user's certificate). File references (``certificate-authority``, ``client-certificate``,
    ``client-key``) are not followed: they lie outside the configured paths and excludes."""
    try:
        doc = load_yaml(data)
    except YamlRefused as exc:
        error = ItemError(path, ItemFailure.UNPARSEABLE, f"kubeconfig: {exc}")
        return Parsed("kubeconfig", errors=(error,))
    if not isinstance(doc, dict) or not any(
        isinstance(doc.get(k), list) for k in ("clusters", "users")
    ):
        return Parsed(
            "kubeconfig",
            errors=(ItemError(path, ItemFailure.UNKNOWN_FORMAT, "YAML, but not a kubeconfig"),),
        )
    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    records: list[StoredKey] = []
    for name, cluster in _named(path, doc.get("clusters"), "cluster", errors):
        out = _Collector(f"{path}#cluster:{name}")
        value = cluster.get("certificate-authority-data")
        if value is None:
            continue
        _decode_into(out, value, "certificate-authority-data")
        certs += out.certs
        errors += out.errors
    for name, user in _named(path, doc.get("users"), "user", errors):
        got, bad, keys = _user(f"{path}#user:{name}", user)
        certs += got
        errors += bad
        records += keys
    del doc
    if not certs and not errors and not records:
        errors.append(
            ItemError(
                path,
                ItemFailure.NO_CERTIFICATE,
                "no embedded certificate data (file references are not followed)",
            )
        )
    return Parsed(
        "kubeconfig", tuple(certs), tuple(errors), has_key=bool(records), keys=tuple(records)
    )


def _decode_into(out: _Collector, value: object, field: str) -> None:
    blob = _b64(str(value).encode("ascii", "replace"))
    if blob is None:
        out.fail(ItemFailure.UNPARSEABLE, f"{field} is not valid base64")
    else:
        _blob_into(out, blob)


def _user(
    location: str, user: dict[str, Any]
) -> tuple[tuple[StoredCert, ...], list[ItemError], tuple[StoredKey, ...]]:
    out = _Collector(location)
    if user.get("client-certificate-data") is not None:
        _decode_into(out, user["client-certificate-data"], "client-certificate-data")
    certs: tuple[StoredCert, ...] = tuple(out.certs)
    errors = list(out.errors)
    records: tuple[StoredKey, ...] = ()
    if user.get("client-key-data") is not None:
        key = _b64(str(user.get("client-key-data")).encode("ascii", "replace"))
        corrupt = key is None
        if key is not None:
            records, corrupt = keys_in(location, key)
            records = tuple(_kubeconfig_format(r) for r in records)
            del key
        if corrupt:
            errors.append(
                ItemError(location, ItemFailure.CORRUPT_KEY, "client-key-data is unreadable")
            )
        certs = apply_key_match(certs, key_hashes(records))
    return certs, errors, records


def _kubeconfig_format(record: StoredKey) -> StoredKey:
    return keyrec.with_attribute(record, "format", "kubeconfig")
