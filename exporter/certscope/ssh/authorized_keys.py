"""authorized_keys lines and people files → records. Pure: text in, records or ValueError out.

The line format is sshd(8)'s "AUTHORIZED_KEYS FILE FORMAT": optional comma-separated options
(values in double quotes, which may hold commas, spaces and ``\\"``), the key type, the
base64 key and an optional comment. Only facts are kept: option *names*, and the values of
``from=``, ``principals=`` and ``expiry-time=``; never ``command=`` or ``environment=``
values, which can carry secrets.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from .keys import KeyFacts, parse_line

__all__ = ["AuthorizedKey", "Person", "parse_authorized_key", "parse_options", "parse_people"]

#: Options whose values are kept (restrictions an auditor reads); others keep only their name.
_KEPT_VALUES = ("from", "principals", "expiry-time")
_MAX_OPTIONS = 4096  # bytes of options on one line; sshd itself caps a line at 8 KiB
_MAX_COMMENT = 256
_OPTION_NAME = re.compile(r"^[a-z0-9-]+$")


@dataclass(frozen=True)
class AuthorizedKey:
    facts: KeyFacts
    comment: str
    options: tuple[str, ...]  # option names, lower case, in order
    values: tuple[tuple[str, str], ...]  # kept option values (from, principals, expiry-time)
    not_after: float | None  # expiry-time=, as unix seconds

    @property
    def cert_authority(self) -> bool:
        return "cert-authority" in self.options


def _looks_like_key_type(token: str) -> bool:
    return token.startswith(("ssh-", "ecdsa-", "sk-", "rsa-")) or token.endswith(
        "-cert-v01@openssh.com"
    )


def parse_options(text: str) -> tuple[list[tuple[str, str | None]], str]:
    """Leading options of a line → ([(name, value)], rest of the line). ValueError on an
    unterminated quote or an empty option."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while True:
        start = i
        while i < n and text[i] not in ',= \t"':
            i += 1
        name = text[start:i].lower()
        if not name:
            raise ValueError("an option has no name")
        if not _OPTION_NAME.match(name):
            raise ValueError("an option name has characters sshd does not know")
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            if i >= n or text[i] != '"':
                raise ValueError(f"option {name} needs a quoted value")
            i += 1
            chars: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] == '"':
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= n:
                raise ValueError(f"option {name} has an unterminated quote")
            i += 1
            value = "".join(chars)
        out.append((name, value))
        if i < n and text[i] == ",":
            i += 1
            continue
        if i < n and text[i] not in " \t":
            raise ValueError(f"unexpected character after option {name}")
        return out, text[i:].lstrip()


def _expiry(value: str) -> float:
    """sshd's expiry-time: YYYYMMDD[HHMM[SS]], optionally ending in Z. Read as UTC."""
    text = value.rstrip("Zz")
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(f"expiry-time {value!r} is not YYYYMMDD[HHMM[SS]]")


def _clean(text: str, limit: int) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


def parse_authorized_key(line: str) -> AuthorizedKey:
    """One non-blank, non-comment line. ValueError with a reason that holds no key material."""
    text = line.strip()
    first = text.split(None, 1)[0]
    options: list[tuple[str, str | None]] = []
    if not _looks_like_key_type(first):
        if len(text) > _MAX_OPTIONS and not _looks_like_key_type(text.split()[-1]):
            raise ValueError("options longer than 4096 bytes")
        options, text = parse_options(text)
        if not text:
            raise ValueError("options but no key")
    facts, comment = parse_line(text)
    values = tuple((k, v) for k, v in options if k in _KEPT_VALUES and v is not None)
    expiry = dict(values).get("expiry-time")
    return AuthorizedKey(
        facts=facts,
        comment=_clean(comment, _MAX_COMMENT),
        options=tuple(k for k, _ in options),
        values=tuple((k, _clean(v, 512)) for k, v in values),
        not_after=_expiry(expiry) if expiry is not None else None,
    )


# --- people ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    status: str  # "active" or "departed"


_STATUSES = ("active", "departed")


def parse_people(data: bytes, path: str) -> Mapping[str, Person]:
    """A people file → {key fingerprint (``SHA256:…``) or key comment: person}.

    YAML: a list of ``{person, status, keys: [fingerprint or comment, …]}``. CSV (``.csv``):
    columns ``person,status,key``, one row per key. ValueError names the first bad entry.
    """
    text = data.decode("utf-8-sig")
    if path.lower().endswith(".csv"):
        rows: list[Any] = [
            {"person": r.get("person"), "status": r.get("status"), "keys": [r.get("key")]}
            for r in csv.DictReader(io.StringIO(text))
        ]
    else:
        loaded = yaml.safe_load(text)
        rows = loaded.get("people", []) if isinstance(loaded, dict) else loaded
        if not isinstance(rows, list):
            raise ValueError("must be a list of {person, status, keys}")
    out: dict[str, Person] = {}
    for i, row in enumerate(rows):
        where = f"entry {i + 1}"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: must be a mapping")
        name, status, keys = row.get("person"), row.get("status", "active"), row.get("keys")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: person is required")
        if status not in _STATUSES:
            raise ValueError(f"{where}: status must be active or departed")
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"{where}: keys must list fingerprints or comments")
        for k in keys:
            out[k.strip()] = Person(name.strip(), status)
    return out
