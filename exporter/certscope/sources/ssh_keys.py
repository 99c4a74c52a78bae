"""The ``ssh_authorized_keys`` source: authorized_keys files, SSH user certificates and
trusted user CA keys on disk, as :class:`~certscope.results.StoredKey` records.

Each authorized key is a ``ssh_authorized_key`` at ``<path>:<line>``, with the account the
file belongs to (``/home/<account>/.ssh/authorized_keys``, ``/root/.ssh/…`` is ``root``,
otherwise the file name, as in ``/etc/ssh/authorized_keys/<account>``), its owner from the
optional people file (matched by fingerprint, else by comment), and the first time certscope
saw it. First-seen times live in ``state_file`` (JSON, written atomically when it changes) so a
key's age survives restarts; without one they are kept in memory only. A key is identified by
file and public key, so it keeps its age when lines above it are removed.

Files in ``certificate_paths`` hold user certificates (``ssh_user_certificate``, with their
validity); files in ``ca_key_paths`` are ``TrustedUserCAKeys`` files (``ssh_ca_key``).
A malformed line is an :class:`~certscope.results.ItemError` at ``<path>:<line>`` and the other
lines still count. A people file that cannot be read fails the whole refresh (the last good
keys stay): judging owners without it would report every departed owner's key as unknown.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from ..config import SSHKeysSource
from ..errors import ItemFailure, SourceFailure
from ..results import ItemError, SourceResult, StoredKey
from ..ssh.authorized_keys import AuthorizedKey, Person, parse_authorized_key, parse_people
from ..ssh.keys import KeyFacts, parse_line
from .base import failed, succeeded
from .files import MAX_FILE_BYTES, _NotRegular, _read_capped, expand_paths

__all__ = ["SSHKeysReader", "account_for"]

_T = TypeVar("_T")

#: More lines than this in one file is not an authorized_keys file; the rest is an error.
MAX_LINES = 100_000
_MAX_LINE = 8192  # sshd's own limit on an authorized_keys line (SSH_MAX_PUBKEY_BYTES 16 KiB)


def account_for(path: str) -> str:
    """The account an authorized_keys file belongs to, from its path."""
    parts = os.path.normpath(path).split(os.sep)
    if len(parts) >= 3 and parts[-2] == ".ssh":
        return parts[-3] or "/"
    return parts[-1]


def _stored(kind: str, location: str, f: KeyFacts, attrs: dict[str, str], **more: Any) -> StoredKey:
    """A key's facts as a StoredKey; empty attributes are left out."""
    return StoredKey(
        kind=kind,
        location=location,
        algorithm=f.algorithm,
        bits=f.bits,
        public_key_sha256=f.public_key_sha256,
        attributes=tuple(sorted((a, v) for a, v in attrs.items() if v)),
        **more,
    )


def _lines(path: str, data: bytes) -> Iterator[tuple[int, str | ItemError]]:
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if n > MAX_LINES:
            yield n, ItemError(f"{path}:{n}", ItemFailure.TOO_LARGE, f"more than {MAX_LINES} lines")
            return
        line = raw.rstrip(b"\r").strip()
        if not line or line.startswith(b"#"):
            continue
        if len(line) > _MAX_LINE:
            yield (
                n,
                ItemError(
                    f"{path}:{n}", ItemFailure.TOO_LARGE, f"line longer than {_MAX_LINE} bytes"
                ),
            )
            continue
        try:
            yield n, line.decode("utf-8")
        except UnicodeDecodeError:
            yield n, ItemError(f"{path}:{n}", ItemFailure.UNPARSEABLE, "not UTF-8 text")


class SSHKeysReader:
    kind = "ssh_authorized_keys"

    def __init__(self, source: SSHKeysSource) -> None:
        self.source = source
        self.name = source.name
        self._first_seen: dict[str, float] | None = None

    # -- first-seen state --------------------------------------------------------------------

    def _load_state(self) -> dict[str, float]:
        if self._first_seen is not None:
            return self._first_seen
        seen: dict[str, float] = {}
        path = self.source.state_file
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                raw = json.load(fh)
            keys = raw.get("first_seen", {}) if isinstance(raw, dict) else {}
            seen = {str(k): float(v) for k, v in keys.items() if isinstance(v, int | float)}
        self._first_seen = seen
        return seen

    def _save_state(self, seen: dict[str, float]) -> None:
        path = self.source.state_file
        if not path:
            return
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".certscope-ssh-state", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "first_seen": seen}, fh, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    # -- reading ---------------------------------------------------------------------------------

    def _people(self) -> Mapping[str, Person] | None:
        if self.source.people is None:
            return None
        return parse_people(_read_capped(self.source.people, MAX_FILE_BYTES), self.source.people)

    def _read(
        self, patterns: tuple[str, ...], errors: list[ItemError]
    ) -> Iterator[tuple[str, int, str]]:
        paths, expand_errors = expand_paths(patterns, self.source.exclude)
        errors.extend(expand_errors)
        for path in paths:
            try:
                data = _read_capped(path, MAX_FILE_BYTES)
            except (OSError, _NotRegular) as exc:
                reason = (
                    ItemFailure.NOT_FOUND
                    if isinstance(exc, FileNotFoundError)
                    else ItemFailure.UNREADABLE
                )
                errors.append(ItemError(path, reason, "cannot read the file"))
                continue
            if len(data) > MAX_FILE_BYTES:
                errors.append(
                    ItemError(path, ItemFailure.TOO_LARGE, f"larger than {MAX_FILE_BYTES} bytes")
                )
                continue
            for n, item in _lines(path, data):
                if isinstance(item, ItemError):
                    errors.append(item)
                else:
                    yield path, n, item

    def _parsed(
        self,
        patterns: tuple[str, ...],
        parse: Callable[[str], _T],
        errors: list[ItemError],
    ) -> Iterator[tuple[str, int, _T]]:
        """Each line of the files parsed; a line that does not parse is an item error."""
        for path, n, line in self._read(patterns, errors):
            try:
                yield path, n, parse(line)
            except ValueError as exc:
                errors.append(ItemError(f"{path}:{n}", ItemFailure.UNPARSEABLE, str(exc)[:200]))

    def _authorized(
        self,
        path: str,
        n: int,
        k: AuthorizedKey,
        people: Mapping[str, Person] | None,
        seen: dict[str, float],
        now: float,
        live: set[str],
    ) -> StoredKey:
        f = k.facts
        ident = f"{path}\t{f.public_key_sha256}"
        live.add(ident)
        first = seen.setdefault(ident, now)
        attrs: dict[str, str] = {
            "account": account_for(path),
            "fingerprint_sha256": f.fingerprint_sha256,
            "comment": k.comment,
            "options": ",".join(k.options),
            "cert_authority": "true" if k.cert_authority else "false",
            **{name.replace("-", "_"): value for name, value in k.values},
        }
        labels: tuple[tuple[str, str], ...] = ()
        if people is not None:
            person = people.get(f.fingerprint_sha256) or (
                people.get(k.comment) if k.comment else None
            )
            attrs["owner_status"] = person.status if person else "unknown"
            if person is not None:
                labels = (("owner", person.name),)
        return _stored(
            "ssh_authorized_key",
            f"{path}:{n}",
            f,
            attrs,
            labels=labels,
            created=first,
            not_after=k.not_after,
        )

    def _certificates(self, errors: list[ItemError]) -> Iterator[StoredKey]:
        for path, n, (f, comment) in self._parsed(
            self.source.certificate_paths, parse_line, errors
        ):
            c = f.certificate
            if c is None:
                errors.append(
                    ItemError(f"{path}:{n}", ItemFailure.NO_CERTIFICATE, "a key, not a certificate")
                )
                continue
            attrs = {
                "fingerprint_sha256": f.fingerprint_sha256,
                "certificate_type": c.type,
                "key_id": c.key_id,
                "serial": str(c.serial),
                "principals": ",".join(c.principals),
                "ca_fingerprint_sha256": c.ca_fingerprint_sha256,
                "signature_valid": "true" if c.signature_valid else "false",
                "comment": comment[:256],
            }
            yield _stored(
                "ssh_user_certificate",
                f"{path}:{n}",
                f,
                attrs,
                created=c.valid_after,
                not_after=c.valid_before,
            )

    def _ca_keys(self, errors: list[ItemError]) -> Iterator[StoredKey]:
        # TrustedUserCAKeys files take the authorized_keys line format
        for path, n, k in self._parsed(self.source.ca_key_paths, parse_authorized_key, errors):
            attrs = {"fingerprint_sha256": k.facts.fingerprint_sha256, "comment": k.comment}
            yield _stored("ssh_ca_key", f"{path}:{n}", k.facts, attrs)

    def _read_all(self) -> tuple[tuple[StoredKey, ...], tuple[ItemError, ...]]:
        people = self._people()
        seen = self._load_state()
        before = dict(seen)
        now = time.time()
        live: set[str] = set()
        errors: list[ItemError] = []
        keys: list[StoredKey] = []
        for path, n, k in self._parsed(self.source.paths, parse_authorized_key, errors):
            keys.append(self._authorized(path, n, k, people, seen, now, live))
        keys.extend(self._certificates(errors))
        keys.extend(self._ca_keys(errors))
        # Keys that are gone are forgotten: one that comes back is new again.
        for ident in set(seen) - live:
            del seen[ident]
        if seen != before:
            self._save_state(seen)
        return tuple(keys), tuple(errors)

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        started = time.perf_counter()
        try:
            keys, errors = await asyncio.to_thread(self._read_all)
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            # The people or state file: without it owners or ages would be wrong.
            what = f"{type(exc).__name__}: {str(exc)[:200]}"
            return failed(
                self, self.source.labels, started, previous, SourceFailure.PEOPLE_OR_STATE, what
            )
        except Exception as exc:  # a failing source keeps its last good data
            message = f"{type(exc).__name__}: {str(exc)[:200]}"
            return failed(
                self, self.source.labels, started, previous, SourceFailure.INTERNAL, message
            )
        return succeeded(self, self.source.labels, started, (), errors, keys)
