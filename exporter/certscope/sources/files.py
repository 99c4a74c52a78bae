"""Certificates in files: paths and globs (``**`` included), in every format that
:mod:`certscope.sources.formats` knows (PEM, DER, PKCS#7, PKCS#12, JKS/JCEKS, kubeconfig),
told apart by content.

Files are re-read only when their size or modification time changes, and re-parsed only when
their content hash changes, so a refresh of an unchanged tree costs one ``stat`` per file (two
for a PEM or DER certificate file: its sibling ``.key`` is watched too). PKCS#12 files and
keystores are also re-parsed when the configured password changes: their cache entry carries a
keyed hash of the passwords, never the passwords. Blocking file I/O runs in a worker thread; the
event loop keeps serving scrapes.

Reading is defensive: a file is opened non-blocking and checked on the open descriptor (a FIFO
or device is ``unreadable``, never a hang), at most ``MAX_FILE_BYTES + 1`` bytes are read (a file
that grew past the cap after ``stat`` is still ``too_large``), and one bad file is one
:class:`~certscope.results.ItemError` while the others keep working.

Private keys (a PRIVATE KEY block in the certificate's PEM file, or a sibling ``<stem>.key``)
are read only to set :attr:`~certscope.results.StoredCert.key_matches`; their bytes are dropped
as soon as the public key hash is known and never appear in results, logs or messages.

With ``revocation`` set, each leaf is checked against its issuer from the same file after the
read (:mod:`.revocation_check`); only then is each certificate's DER kept (in the cache, so an
unchanged file can be asked about again when a cached answer expires).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass, replace

from ..config import FilesSource
from ..errors import ItemFailure, SourceFailure
from ..results import ItemError, SourceResult, StoredCert, StoredKey
from . import formats, walk
from . import keys as keyrec
from .base import failed, succeeded
from .formats import Password, apply_key_match, key_hashes, keys_in
from .revocation_check import check_stored

#: Files larger than this are reported, not read (a 50 MB "certificate" is a mistake).
MAX_FILE_BYTES = 8 * 1024 * 1024
#: A sibling ``.key`` larger than this is not a private key; it is ignored.
MAX_KEY_BYTES = 1024 * 1024
#: A password file larger than this is a mistake.
MAX_PASSWORD_BYTES = 64 * 1024
#: Cache key of entries that must be retried on the next refresh (the file could not be read).
_RETRY = (-1, -1)

DepStat = tuple[int, int, int, int] | None


@dataclass(frozen=True)
class _Parsed:
    stat_key: tuple[int, int]
    sha256: str
    certs: tuple[StoredCert, ...]
    errors: tuple[ItemError, ...]
    #: Keyed hash of the passwords the file was parsed with; None: it needs no password.
    password_tag: str | None = None
    #: Other files the result depends on (the sibling ``.key``), with their stat when parsed.
    deps: tuple[tuple[str, DepStat], ...] = ()
    keys: tuple[StoredKey, ...] = ()


class _NotRegular(Exception):
    pass


def _read_capped(path: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a regular file (more than ``limit``: too large).

    Opened non-blocking and checked with ``fstat`` on the descriptor, so a FIFO or device that
    a glob matched (or that replaced the file since ``stat``) cannot block the worker thread.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def expand_paths(
    patterns: tuple[str, ...], exclude: tuple[str, ...], timeout: float = 60.0
) -> tuple[list[str], list[ItemError]]:
    """Files matching paths and globs (``**`` included), minus ``exclude``, found by the bounded
    walker (:mod:`.walk`: no directory symlinks under ``**``, at most 200,000 files,
    ``timeout`` seconds), with an item error for each pattern that matched nothing or could
    not be walked. For sources whose files are small text (authorized_keys)."""
    limits = walk.Limits(max_files=FilesSource.max_files, deadline=time.monotonic() + timeout)
    walked = walk.expand(patterns, exclude, limits)
    return walked.files, walked.errors


def _dep_stat(path: str) -> DepStat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: a chmod that makes a 0600 key readable changes nothing else.
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def parse_file_bytes(
    path: str, data: bytes, passwords: tuple[Password, ...] = ()
) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...]]:
    """Every certificate in one file's bytes, position kept; bad entries become errors."""
    parsed = formats.parse(path, data, passwords)
    return parsed.certs, parsed.errors


@dataclass(frozen=True)
class _Sibling:
    certs: tuple[StoredCert, ...]
    errors: tuple[ItemError, ...] = ()
    deps: tuple[tuple[str, DepStat], ...] = ()
    keys: tuple[StoredKey, ...] = ()


def _sibling_key(path: str, certs: tuple[StoredCert, ...]) -> _Sibling:
    """``key_matches`` from ``<stem>.key`` beside a certificate file, if there is one to read,
    and that key's record (an unencrypted key next to its certificate is what auditors ask
    about, whether or not ``paths`` names it).

    A missing or unreadable key file (``0600 root`` is the norm) notes nothing; it is still
    watched, so a key that appears or changes re-parses the certificate file.
    """
    stem, ext = os.path.splitext(path)
    if ext.lower() == ".key":
        return _Sibling(certs)
    key_path = stem + ".key"
    dep = _dep_stat(key_path)
    deps = ((key_path, dep),)
    if dep is None or dep[0] > MAX_KEY_BYTES:
        return _Sibling(certs, deps=deps)
    try:
        data = _read_capped(key_path, MAX_KEY_BYTES)
    except (OSError, _NotRegular):
        return _Sibling(certs, deps=deps)
    if len(data) > MAX_KEY_BYTES:  # it grew after the stat
        return _Sibling(certs, deps=deps)
    records, corrupt = keys_in(key_path, data)
    del data
    errors: tuple[ItemError, ...] = ()
    if corrupt:
        message = "the key file beside the certificate is not a readable private key"
        errors = (ItemError(key_path, ItemFailure.CORRUPT_KEY, message),)
    return _Sibling(apply_key_match(certs, key_hashes(records)), errors, deps, records)


def _os_error(path: str, exc: OSError) -> ItemError:
    """A file that could not be read, with the reason its errno gives."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ItemError(path, ItemFailure.PERMISSION_DENIED, exc.strerror or "permission denied")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return ItemError(path, ItemFailure.NOT_FOUND, exc.strerror or "no such file")
    return ItemError(path, ItemFailure.UNREADABLE, exc.strerror or type(exc).__name__)


def _read_password_file(path: str) -> tuple[str | None, str]:
    """The password in ``path`` without its trailing newline, or None and why not."""
    try:
        raw = _read_capped(path, MAX_PASSWORD_BYTES)
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    except _NotRegular:
        return None, "not a regular file"
    if len(raw) > MAX_PASSWORD_BYTES:
        return None, f"password file is larger than {MAX_PASSWORD_BYTES} bytes"
    try:
        return raw.decode("utf-8").rstrip("\r\n"), ""
    except UnicodeDecodeError:  # its message would quote a byte of the password
        return None, "password file is not UTF-8 text"


class FilesReader:
    kind = "files"

    def __init__(self, source: FilesSource) -> None:
        self.source = source
        self.name = source.name
        self._cache: dict[str, _Parsed] = {}
        # Keys the password hash in cache entries: equal passwords are recognised without a
        # plain hash of a low-entropy secret lying around in memory.
        self._tag_key = secrets.token_bytes(32)

    def _passwords(self) -> tuple[tuple[Password, ...], str, list[ItemError]]:
        """The configured passwords, read now (they may have been rotated), and their tag."""
        found: list[Password] = []
        errors: list[ItemError] = []
        env, path = self.source.password_env, self.source.password_file
        if env:
            value = os.environ.get(env)
            if value is None:
                message = f"environment variable {env} is not set"
                errors.append(ItemError(f"env:{env}", ItemFailure.PASSWORD_UNAVAILABLE, message))
            else:
                found.append(Password(f"password_env {env}", value))
        if path:
            value, problem = _read_password_file(path)
            if value is None:
                errors.append(ItemError(path, ItemFailure.PASSWORD_UNAVAILABLE, problem))
            else:
                found.append(Password(f"password_file {path}", value))
            del value
        tag = hashlib.blake2b(key=self._tag_key, digest_size=16)
        for p in found:
            encoded = p.value.encode("utf-8", "surrogatepass")
            tag.update(len(encoded).to_bytes(4, "big") + encoded)
        return tuple(found), tag.hexdigest(), errors

    def _read_all(
        self, stop: threading.Event
    ) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...], tuple[StoredKey, ...]]:
        src = self.source
        limits = walk.Limits(
            src.max_files, time.monotonic() + src.timeout, src.follow_symlinks, stop
        )
        walked = walk.expand(src.paths, src.exclude, limits)
        errors = walked.errors
        passwords, tag, password_errors = self._passwords()
        errors.extend(password_errors)
        certs: list[StoredCert] = []
        keys: dict[str, StoredKey] = {}
        fresh: dict[str, _Parsed] = {}
        for n, path in enumerate(walked.files):
            why = limits.exceeded(0)
            if why is not None:
                left = len(walked.files) - n
                errors.append(
                    ItemError(path, ItemFailure.LIMIT_REACHED, f"{why}; {left} files not read")
                )
                unread = set(walked.files[n:])
                fresh.update((p, v) for p, v in self._cache.items() if p in unread)
                break
            parsed = self._read_one(path, passwords, tag)
            fresh[path] = parsed
            certs.extend(parsed.certs)
            errors.extend(parsed.errors)
            for k in parsed.keys:  # a key read as a file and as a sibling is one key
                if k.location not in keys or keyrec.attribute(k, "certificate_location"):
                    keys[k.location] = k
        del passwords
        # Files that vanished drop out of the cache, so their series go too.
        self._cache = fresh
        return tuple(certs), tuple(errors), keyrec.link(keys.values(), certs)

    @staticmethod
    def _still_valid(old: _Parsed, tag: str) -> bool:
        if old.password_tag is not None and old.password_tag != tag:
            return False
        return all(_dep_stat(path) == st for path, st in old.deps)

    def _read_one(self, path: str, passwords: tuple[Password, ...], tag: str) -> _Parsed:
        try:
            st = os.stat(path)
        except OSError as exc:
            return _Parsed(_RETRY, "", (), (_os_error(path, exc),))
        key = (st.st_size, st.st_mtime_ns)
        old = self._cache.get(path)
        if old is not None and old.stat_key == key and self._still_valid(old, tag):
            return old
        if not stat.S_ISREG(st.st_mode):
            return _Parsed(
                _RETRY, "", (), (ItemError(path, ItemFailure.UNREADABLE, "not a regular file"),)
            )
        if st.st_size > MAX_FILE_BYTES:
            msg = f"file is {st.st_size} bytes, larger than {MAX_FILE_BYTES}"
            return _Parsed(key, "", (), (ItemError(path, ItemFailure.TOO_LARGE, msg),))
        try:
            data = _read_capped(path, MAX_FILE_BYTES)
        except OSError as exc:
            return _Parsed(_RETRY, "", (), (_os_error(path, exc),))
        except _NotRegular:
            return _Parsed(
                _RETRY, "", (), (ItemError(path, ItemFailure.UNREADABLE, "not a regular file"),)
            )
        if len(data) > MAX_FILE_BYTES:  # it grew after the stat
            msg = f"file is larger than {MAX_FILE_BYTES} bytes"
            return _Parsed(_RETRY, "", (), (ItemError(path, ItemFailure.TOO_LARGE, msg),))
        digest = hashlib.sha256(data).hexdigest()
        if old is not None and old.sha256 == digest and self._still_valid(old, tag):
            return replace(old, stat_key=key)
        try:
            parsed = formats.parse(path, data, passwords)
        except Exception as exc:  # a parser bug must not take the other files down
            message = f"parser error: {type(exc).__name__}"
            parsed = formats.Parsed(
                "unknown", errors=(ItemError(path, ItemFailure.UNPARSEABLE, message),)
            )
        del data
        certs, errors, keys = parsed.certs, parsed.errors, parsed.keys
        if not self.source.revocation.enabled:  # the DER is kept only to ask about revocation
            certs = tuple(replace(c, der=b"") for c in certs)
        deps: tuple[tuple[str, DepStat], ...] = ()
        if parsed.format in ("pem", "der") and certs and not parsed.has_key:
            sibling = _sibling_key(path, certs)
            certs, deps, keys = sibling.certs, sibling.deps, sibling.keys
            errors += sibling.errors
        password_tag = tag if parsed.used_password else None
        return _Parsed(key, digest, certs, errors, password_tag, deps, keys)

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        started = time.perf_counter()
        # The walk runs in a worker thread, which cancellation cannot interrupt: the event
        # tells it to stop at the next directory or file, so SIGTERM is not kept waiting.
        stop = threading.Event()
        try:
            certs, errors, keys = await asyncio.to_thread(self._read_all, stop)
        except asyncio.CancelledError:
            stop.set()
            raise
        except Exception as exc:  # a failing source keeps its last good data
            message = f"{type(exc).__name__}: {str(exc)[:200]}"
            return failed(
                self, self.source.labels, started, previous, SourceFailure.INTERNAL, message
            )
        certs = await check_stored(certs, self.source.revocation, self.source.timeout)
        return succeeded(self, self.source.labels, started, certs, errors, keys)
